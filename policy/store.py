"""The policy in the database: the ``policy_rules`` lines and the ``policy_state`` version.

The database is the truth; ``policy/policy.csv`` only seeds an empty one, once. Every
change bumps ``policy_state.version`` in the same transaction, so that each server process
notices a change made by another (``CasbinAuthorizer`` compares versions) and reloads.

Writers start by updating the version row: on PostgreSQL that row lock, on SQLite the
database write lock, serializes policy changes, so that a check-then-write inside one
transaction cannot race another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from policy.rules import PolicyLine, unique
from storage.database import Database
from storage.tables import policy_rules, policy_state

STATE_ID = 1


@dataclass(frozen=True, slots=True)
class StoredLine:
    """A line as stored, with who added it and when."""

    line: PolicyLine
    created_at: datetime | None
    created_by: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole policy at one version."""

    version: int
    lines: tuple[StoredLine, ...]


class _Unchanged(Exception):
    """Rolls back a write that turned out to change nothing."""


class PolicyStore:
    """Reads and changes the stored policy."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def seed(self, lines: Sequence[PolicyLine], *, by: str = "seed") -> bool:
        """Insert ``lines`` into a never-seeded database (version 0, no lines) and set the
        version to 1. Safe when several processes start at once: the guarded update lets
        exactly one of them through. True when this call seeded."""
        try:
            async with self.db.begin() as conn:
                claimed = await conn.execute(
                    update(policy_state)
                    .where(policy_state.c.id == STATE_ID, policy_state.c.version == 0)
                    .values(version=1, updated_at=_now())
                )
                if claimed.rowcount != 1:
                    raise _Unchanged
                present = await conn.scalar(select(func.count()).select_from(policy_rules))
                if present:
                    return False  # lines were put there another way: keep them, mark seeded
                rows = [_row(line, by) for line in unique(lines)]
                if rows:
                    await conn.execute(policy_rules.insert(), rows)
                return True
        except _Unchanged:
            return False

    async def version(self) -> int:
        """The current policy version (0: never seeded)."""
        async with self.db.connect() as conn:
            return await _version(conn)

    async def snapshot(self) -> Snapshot:
        """Every line, in the order added, with the version they belong to. The version is
        read first: a change landing between the two reads makes the version older than
        the lines, never newer, so the next check reloads again rather than missing it."""
        async with self.db.connect() as conn:
            version = await _version(conn)
            rows = await conn.execute(select(policy_rules).order_by(policy_rules.c.id))
            lines = tuple(
                StoredLine(
                    PolicyLine.from_columns(r.ptype, r.v0, r.v1, r.v2, r.v3, r.v4),
                    r.created_at,
                    r.created_by,
                )
                for r in rows
            )
        return Snapshot(version, lines)

    async def find(self, line: PolicyLine) -> StoredLine | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(policy_rules).where(_matches(line)))).first()
        return None if row is None else StoredLine(line, row.created_at, row.created_by)

    async def add(self, line: PolicyLine, *, by: str | None) -> tuple[StoredLine, bool, int]:
        """Add ``line`` unless present: ``(the stored line, whether added, version after)``."""
        created_at = _now()
        try:
            async with self.db.begin() as conn:
                version = await _bump(conn)
                if await conn.scalar(select(func.count()).where(_matches(line))):
                    raise _Unchanged
                await conn.execute(policy_rules.insert().values(_row(line, by, created_at)))
                return StoredLine(line, created_at, by), True, version
        except _Unchanged:
            pass
        stored = await self.find(line)
        return stored or StoredLine(line, None, None), False, await self.version()

    async def remove(self, line: PolicyLine) -> tuple[bool, int]:
        """Remove ``line`` if present; ``(removed, version after)``."""
        try:
            async with self.db.begin() as conn:
                version = await _bump(conn)
                deleted = await conn.execute(policy_rules.delete().where(_matches(line)))
                if deleted.rowcount == 0:
                    raise _Unchanged
                return True, version
        except _Unchanged:
            return False, await self.version()


def _now() -> datetime:
    return datetime.now(UTC)


def _row(line: PolicyLine, by: str | None, at: datetime | None = None) -> dict[str, object]:
    return {**line.columns(), "created_at": at or _now(), "created_by": by}


def _matches(line: PolicyLine) -> ColumnElement[bool]:
    columns = line.columns()
    return and_(*(policy_rules.c[name] == value for name, value in columns.items()))


async def _version(conn: AsyncConnection) -> int:
    version = await conn.scalar(select(policy_state.c.version).where(policy_state.c.id == STATE_ID))
    return int(version or 0)


async def _bump(conn: AsyncConnection) -> int:
    await conn.execute(
        update(policy_state)
        .where(policy_state.c.id == STATE_ID)
        .values(version=policy_state.c.version + 1, updated_at=_now())
    )
    return await _version(conn)
