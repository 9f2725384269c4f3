"""Reading the audit trail: filtered pages of ``audit_events``, newest first, and single
events by their chain position.

Pages are ordered by ``seq`` (the gapless chain position) and continue below the last
``seq`` a page showed, so events written meanwhile (they get higher positions) never
shift a page, and no event is shown twice or skipped. The cursor is that position,
encoded; ``decode_cursor`` refuses what this module did not make.

Every read is scoped: to one tenant, or, for the platform's auditors only, to
``EVERY_TENANT`` (events of anonymous callers, which have no tenant, included). Deciding
who may use which scope is the caller's business (``handlers.audit``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, RowMapping, select

from registry.fields import as_utc
from storage.database import Database
from storage.tables import audit_events as t


class _EveryTenant(Enum):
    EVERY_TENANT = "every tenant"


#: The scope of a platform auditor: the events of every tenant, and of no tenant.
EVERY_TENANT: Final = _EveryTenant.EVERY_TENANT
Scope = str | Literal[_EveryTenant.EVERY_TENANT]

_CURSOR_PREFIX = "seq:"
_MAX_SEQ = 2**63 - 1


class CursorError(ValueError):
    """A cursor this module did not issue."""


def encode_cursor(seq: int) -> str:
    """The opaque cursor of the page after the event at ``seq``."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The ``seq`` a cursor continues below; ``CursorError`` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise CursorError("not a cursor this server issued") from exc
    digits = raw.removeprefix(_CURSOR_PREFIX)
    if digits == raw or not digits.isdigit() or len(digits) > 19:
        raise CursorError("not a cursor this server issued")
    seq = int(digits)
    if not 1 <= seq <= _MAX_SEQ or encode_cursor(seq) != cursor.rstrip("="):
        raise CursorError("not a cursor this server issued")
    return seq


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What to select; None leaves a field unfiltered. ``since`` is inclusive, ``until``
    exclusive; both are aware times."""

    tenant_id: str | None = None
    actor_id: str | None = None
    operation_key: str | None = None
    outcome: str | None = None
    transport: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One ``audit_events`` row, with ``at`` in UTC and ``input`` parsed."""

    id: int
    seq: int
    at: datetime
    request_id: str
    trace_id: str | None
    transport: str
    client: str | None
    tenant_id: str | None
    actor_id: str | None
    actor_kind: str | None
    credential_id: str | None
    operation_key: str
    operation_version: str | None
    decision: str
    outcome: str
    status: int
    latency_ms: float
    idempotency_key: str | None
    replayed: bool
    input_digest: str | None
    input: dict[str, Any] | None
    detail: str | None
    policy_rule: str | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: RowMapping) -> StoredEvent:
        values = {name: row[name] for name in _EVENT_FIELDS}
        values["at"] = as_utc(row["at"])
        values["input"] = parse_input(row["input"])
        values["replayed"] = bool(row["replayed"])
        return cls(**values)


_EVENT_FIELDS = tuple(f.name for f in fields(StoredEvent))


def parse_input(text: str | None) -> dict[str, Any] | None:
    """The recorded input (already redacted) as a JSON object. An input that was not an
    object (a refused request body) comes back as ``{"_value": ...}``; text that is not
    JSON at all as ``{"_unparsed": true}``, never as the text itself."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"_unparsed": True}
    return value if isinstance(value, dict) else {"_value": value}


def _conditions(scope: Scope, filters: EventFilter) -> list[ColumnElement[bool]]:
    found = conditions(filters)
    if scope is not EVERY_TENANT:
        found.append(t.c.tenant_id == scope)
    return found


def conditions(filters: EventFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``filters`` (for ``audit.listEvents`` and the CLI)."""
    found: list[ColumnElement[bool]] = []
    equal = {
        t.c.tenant_id: filters.tenant_id,
        t.c.actor_id: filters.actor_id,
        t.c.operation_key: filters.operation_key,
        t.c.outcome: filters.outcome,
        t.c.transport: filters.transport,
        t.c.request_id: filters.request_id,
        t.c.trace_id: filters.trace_id,
    }
    found.extend(column == value for column, value in equal.items() if value is not None)
    if filters.since is not None:
        found.append(t.c.at >= filters.since.astimezone(UTC))
    if filters.until is not None:
        found.append(t.c.at < filters.until.astimezone(UTC))
    return found


class AuditQuery:
    """Read-only access to the ``audit_events`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self,
        scope: Scope,
        filters: EventFilter,
        *,
        limit: int,
        before_seq: int | None = None,
    ) -> tuple[list[StoredEvent], bool]:
        """Up to ``limit`` events of ``scope`` matching ``filters``, newest (highest seq)
        first, below ``before_seq`` when given; and whether more follow."""
        query = select(t).where(*_conditions(scope, filters))
        if before_seq is not None:
            query = query.where(t.c.seq < before_seq)
        query = query.order_by(t.c.seq.desc()).limit(limit + 1)
        async with self.db.scan() as conn:
            rows = (await conn.execute(query)).mappings().all()
        events = [StoredEvent.of(row) for row in rows[:limit]]
        return events, len(rows) > limit

    async def get(self, scope: Scope, seq: int) -> StoredEvent | None:
        """The event at chain position ``seq``, if it lies within ``scope``."""
        query = select(t).where(t.c.seq == seq, *_conditions(scope, EventFilter()))
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return StoredEvent.of(row) if row is not None else None
