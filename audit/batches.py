"""A queued record (or a command's attempt) and the one transaction that stores a batch
of them: its rows, this process' row when due, and the attempts its records close."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncConnection

from audit import sql_store
from audit.attempts import attempt_text
from audit.chain import Content, record_content
from audit.owners import OwnerLease
from audit.sql_store import Batch, Rejected, StoreDown
from audit.sqlite_appender import RecordsRefused, SqliteAppender
from registry.audit_record import AuditRecord
from storage.database import Database
from storage.times import EncodeTime, sqlite_time_of, timestamp_text


class Item:
    """A queued record (or a command's attempt), its content once computed, and who
    waits for it."""

    __slots__ = (
        "attempt",
        "closes",
        "content",
        "deadline",
        "done",
        "optional",
        "record",
        "resolved",
    )

    def __init__(
        self,
        record: AuditRecord,
        done: asyncio.Future[None] | None,
        deadline: float = 0.0,
        optional: bool = False,
    ) -> None:
        self.record = record
        self.done = done
        #: When a durable write stops waiting (``time.monotonic()``).
        self.deadline = deadline
        #: Its waiter goes on when the store fails (``write(..., wait=True)``).
        self.optional = optional
        self.content: Content | None = None
        self.resolved = False
        #: The id of the attempt this item stores (its record is the INTERRUPTED one).
        self.attempt: str | None = None
        #: The id of the attempt this record ends.
        self.closes: str | None = None


def content(item: Item, owner: str) -> Content:
    """A record's content (``audit.chain``), or an attempt's row: id, owner, time (as
    ``timestamp_text``), the record as JSON."""
    if item.attempt is None:
        return record_content(item.record)
    record = item.record
    return (item.attempt, owner, timestamp_text(record.at), attempt_text(record))


def batch(items: list[Item], lease: OwnerLease, encode_at: EncodeTime) -> Batch:
    """The rows of ``items``: records, attempts (with this process' row while it is
    new or due for renewal), and the attempts the records end."""
    contents: list[Content] = []
    attempts: list[tuple[object, ...]] = []
    closed: list[tuple[str]] = []
    for item in items:
        row = item.content
        if row is None:
            continue
        if item.attempt is not None:
            attempts.append((row[0], row[1], encode_at(row[2]), row[3]))
            continue
        contents.append(row)
        if item.closes is not None:
            closed.append((item.closes,))
    owner = lease.row(encode_at) if attempts and lease.due() else None
    return Batch(contents, attempts, closed, owner)


async def commit(
    db: Database,
    sqlite: SqliteAppender | None,
    conn: AsyncConnection | None,
    items: list[Item],
    lease: OwnerLease,
) -> None:
    """One transaction for ``items`` (``audit.sql_store.commit``, or the SQLite file's
    store). Raises ``Rejected`` when the database refused a record, ``StoreDown`` (on
    a SQLite file) when the store failed."""
    if sqlite is not None:
        return await _commit_sqlite(db, sqlite, items, lease)
    assert conn is not None
    await sql_store.commit(conn, batch(items, lease, sql_store.encoder(conn)))


async def _commit_sqlite(
    db: Database, appender: SqliteAppender, items: list[Item], lease: OwnerLease
) -> None:
    lock = db.write_lock
    assert lock is not None  # a SQLite file: the process' other writers wait on it
    rows = batch(items, lease, sqlite_time_of)
    try:
        async with lock:
            await appender.append(rows)
    except RecordsRefused as refused:
        raise Rejected() from refused.__cause__
    except Exception as exc:
        raise StoreDown("the audit store failed") from exc


__all__ = ["Item", "batch", "commit", "content"]
