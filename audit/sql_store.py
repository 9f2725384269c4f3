"""The audit tables' SQL, and the writer's transactions through a SQLAlchemy connection
(PostgreSQL, and in-memory SQLite; a SQLite file has its own store,
``audit.sqlite_appender``). Statements are written in the driver's parameter style."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from audit.attempts import interrupted_record
from audit.chain import CONTENT_COLUMNS, Content, chained_rows, record_content
from registry.audit_record import AuditRecord
from storage.tables import audit_attempts, audit_owners
from storage.times import EncodeTime, aware_time_of, sqlite_time_of, utc_now

#: The columns the writer fills, in statement order (``id`` is the database's).
COLUMNS: tuple[str, ...] = (*CONTENT_COLUMNS, "seq", "prev_hash", "hash")

#: First statement of every batch: takes the chain head's lock and reads it.
LOCK_HEAD = "UPDATE audit_chain_head SET seq = seq WHERE id = 1 RETURNING seq, hash"
#: SQLite's first statement after ``BEGIN IMMEDIATE``, which already holds the lock.
READ_HEAD = "SELECT seq, hash FROM audit_chain_head WHERE id = 1"
#: A cheap look at both tables, for ``available()`` and to tell a broken store from a
#: bad record.
PROBE = "SELECT seq, (SELECT max(seq) FROM audit_events) FROM audit_chain_head WHERE id = 1"

#: A command's attempt, its process' row (new, or renewed), and the end of an attempt.
INSERT_ATTEMPT = "INSERT INTO audit_attempts (id, owner, started_at, record) VALUES ({})"
UPSERT_OWNER = (
    "INSERT INTO audit_owners (id, host, pid, pid_started, started_at, heartbeat_at) "
    "VALUES ({}) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
)
CLOSE_ATTEMPT = "DELETE FROM audit_attempts WHERE id = {}"


@dataclass(slots=True)
class Batch:
    """What one transaction of the audit writer stores (times as the driver takes them)."""

    #: Records to chain (``audit.chain``).
    contents: list[Content]
    #: Command attempts: id, owner, time, record as JSON.
    attempts: list[tuple[Any, ...]]
    #: Ids of the attempts the records end.
    closed: list[tuple[str]]
    #: This process' row in ``audit_owners``, to store or renew first; or None.
    owner: tuple[Any, ...] | None = None


def placeholders(paramstyle: str, count: int) -> list[str]:
    if paramstyle == "qmark":
        return ["?"] * count
    if paramstyle == "numeric_dollar":
        return [f"${i}" for i in range(1, count + 1)]
    if paramstyle == "format":
        return ["%s"] * count
    raise ValueError(f"unsupported parameter style {paramstyle}")


def insert_statement(paramstyle: str) -> str:
    """``INSERT INTO audit_events (...) VALUES (...)`` in the driver's parameter style."""
    values = ", ".join(placeholders(paramstyle, len(COLUMNS)))
    return f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({values})"


def attempt_statements(paramstyle: str) -> tuple[str, str, str]:
    """``INSERT_ATTEMPT``, ``UPSERT_OWNER`` and ``CLOSE_ATTEMPT`` in the driver's style."""
    return (
        INSERT_ATTEMPT.format(", ".join(placeholders(paramstyle, 4))),
        UPSERT_OWNER.format(", ".join(placeholders(paramstyle, 6))),
        CLOSE_ATTEMPT.format(placeholders(paramstyle, 1)[0]),
    )


def head_update_statement(paramstyle: str) -> str:
    """``UPDATE audit_chain_head SET seq, hash, updated_at`` in the driver's style."""
    seq, digest, at = placeholders(paramstyle, 3)
    return (
        f"UPDATE audit_chain_head SET seq = {seq}, hash = {digest}, updated_at = {at} WHERE id = 1"
    )


class StoreDown(Exception):
    """The store, not a record, failed (``__cause__`` says how)."""


class Rejected(Exception):
    """The insert failed; maybe a record's fault (``__cause__`` says how)."""


@cache
def statements(paramstyle: str) -> tuple[str, str, str, str, str]:
    """Insert a record, move the head, insert an attempt, upsert the owner, close an
    attempt: in the driver's parameter style, made once per style."""
    return (
        insert_statement(paramstyle),
        head_update_statement(paramstyle),
        *attempt_statements(paramstyle),
    )


def encoder(conn: AsyncConnection) -> EncodeTime:
    """How ``conn``'s driver takes a time given as naive UTC ISO text."""
    return sqlite_time_of if conn.dialect.name == "sqlite" else aware_time_of


async def commit(conn: AsyncConnection, batch: Batch) -> None:
    """Store this process' row and the attempts, lock the chain head, chain the records
    after it, insert them, move the head, and delete the attempts they end: one
    transaction. Raises ``Rejected`` (maybe a record's fault) or ``StoreDown``."""
    _, _, insert_attempt, upsert_owner, close_attempt = statements(conn.dialect.paramstyle)
    try:
        async with conn.begin():
            if batch.owner is not None:
                await conn.exec_driver_sql(upsert_owner, batch.owner)
            if batch.attempts:
                try:
                    await conn.exec_driver_sql(insert_attempt, batch.attempts)
                except Exception as exc:
                    raise Rejected() from exc
            if batch.contents:
                head = await lock_head(conn)
                await chain(conn, batch.contents, head)
            if batch.closed:
                await conn.exec_driver_sql(close_attempt, batch.closed)
    except (Rejected, StoreDown):
        raise
    except Exception as exc:
        raise StoreDown("the audit store failed") from exc


async def chain(conn: AsyncConnection, contents: list[Content], head: tuple[int, str]) -> None:
    """Insert ``contents`` chained after ``head`` (locked by ``lock_head``) and move the
    head past them."""
    insert, update_head, *_ = statements(conn.dialect.paramstyle)
    encode_at = encoder(conn)
    rows, seq, prev_hash = chained_rows(contents, head[0], head[1], encode_at)
    try:
        await conn.exec_driver_sql(insert, rows)
    except Exception as exc:
        raise Rejected() from exc
    now = encode_at(utc_now().isoformat(timespec="microseconds"))
    await conn.exec_driver_sql(update_head, (seq, prev_hash, now))


async def renew_owner(conn: AsyncConnection, row: tuple[object, ...]) -> None:
    """Store or renew this process' row in ``audit_owners``."""
    _, _, _, upsert_owner, _ = statements(conn.dialect.paramstyle)
    await conn.exec_driver_sql(upsert_owner, row)


async def close_attempts_of(
    conn: AsyncConnection, owners: list[str], limit: int = 500
) -> tuple[list[AuditRecord], bool]:
    """One transaction: up to ``limit`` attempts of ``owners`` become INTERRUPTED
    records; the owners' rows go with their last attempts. Returns the records and
    whether attempts remain."""
    head = await lock_head(conn)  # first: the attempts read are then this writer's
    rows = (
        await conn.execute(
            select(audit_attempts.c.id, audit_attempts.c.record)
            .where(audit_attempts.c.owner.in_(owners))
            .order_by(audit_attempts.c.started_at, audit_attempts.c.id)
            .limit(limit + 1)
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    records = [interrupted_record(text) for _, text in rows]
    if records:
        await chain(conn, [record_content(r) for r in records], head)
        ids = [attempt for attempt, _ in rows]
        await conn.execute(delete(audit_attempts).where(audit_attempts.c.id.in_(ids)))
    if not more:
        await conn.execute(delete(audit_owners).where(audit_owners.c.id.in_(owners)))
    return records, more


async def lock_head(conn: AsyncConnection) -> tuple[int, str]:
    """Take the chain head's lock (for the rest of the transaction) and read it."""
    head = (await conn.exec_driver_sql(LOCK_HEAD)).first()
    if head is None:
        raise StoreDown("audit_chain_head has no row: is the schema migrated?")
    seq, digest = tuple(head)
    return int(seq), str(digest)


async def probe(conn: AsyncConnection) -> None:
    """Raise unless both audit tables answer."""
    async with conn.begin():
        if (await conn.exec_driver_sql(PROBE)).first() is None:
            raise LookupError("audit_chain_head has no row")
