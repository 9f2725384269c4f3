"""The audit log: a structlog line at once, and the table row through group commit.

Records queue up and a single writer task inserts them in batches, one transaction per
batch. ``write(..., durable=True)`` returns only after the batch holding the record has
committed, so a command's response is never sent before its record is stored; concurrent
commands share one commit. Records nobody waits for (queries, refusals) are gathered for
up to ``flush_seconds`` first, so that a busy server commits a few times a second rather
than once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from audit.record import AuditRecord
from storage.database import Database
from storage.tables import audit_events

log = structlog.get_logger("specops.audit")

_Item = tuple[AuditRecord, asyncio.Future[None] | None]


#: The columns an audit record fills, in statement order (``id`` is the database's).
COLUMNS: tuple[str, ...] = tuple(c.name for c in audit_events.columns if c.name != "id")


def insert_statement(paramstyle: str) -> str:
    """``INSERT INTO audit_events (...) VALUES (...)`` in the driver's parameter style."""
    if paramstyle == "qmark":
        marks = ["?"] * len(COLUMNS)
    elif paramstyle == "numeric_dollar":
        marks = [f"${i}" for i in range(1, len(COLUMNS) + 1)]
    elif paramstyle == "format":
        marks = ["%s"] * len(COLUMNS)
    else:
        raise ValueError(f"unsupported parameter style {paramstyle}")
    return f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({', '.join(marks)})"


def _aware_time(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _sqlite_time(at: float) -> str:
    """SQLAlchemy's SQLite DATETIME storage format (naive UTC)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class AuditLog:
    """Writes every record to structlog and to the ``audit_events`` table."""

    def __init__(self, db: Database, *, max_batch: int = 500, flush_seconds: float = 0.05) -> None:
        self.db = db
        self.max_batch = max_batch
        self.flush_seconds = flush_seconds
        self._urgent = asyncio.Event()
        self._log = structlog.get_logger("specops.audit").bind()  # bound to the current config
        self._statement: str | None = None
        self._queue: asyncio.Queue[_Item] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def write(self, record: AuditRecord, *, durable: bool) -> None:
        self._log_line(record)
        if self._writer is None or self._writer.done():
            self._queue = asyncio.Queue()
            self._writer = asyncio.create_task(self._run(self._queue), name="audit-writer")
        assert self._queue is not None
        done: asyncio.Future[None] | None = (
            asyncio.get_running_loop().create_future() if durable else None
        )
        self._queue.put_nowait((record, done))
        if done is not None:
            self._urgent.set()
            await done

    async def close(self) -> None:
        """Flush what is queued and stop the writer."""
        if self._queue is not None and self._writer is not None and not self._writer.done():
            await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._writer = None

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        conn: AsyncConnection | None = None
        try:
            while True:
                batch = [await queue.get()]
                if batch[0][1] is None:
                    # Nobody waits on this record: gather more for up to flush_seconds,
                    # unless a durable record arrives, which is written at once.
                    self._urgent.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._urgent.wait(), self.flush_seconds)
                else:
                    await asyncio.sleep(0)  # let requests of this loop turn join the commit
                while len(batch) < self.max_batch and not queue.empty():
                    batch.append(queue.get_nowait())
                try:
                    if conn is None or conn.closed:
                        conn = await self.db.engine.connect()
                    await self._store(conn, batch)
                except Exception:
                    log.exception("audit_connection_failed")
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    conn = None
                    _fail(batch, CATALOGUE_UNAVAILABLE)
                finally:
                    for _ in batch:
                        queue.task_done()
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close())

    async def _store(self, conn: AsyncConnection, batch: list[_Item]) -> None:
        """One transaction for the batch; if it fails, each record alone, so that one bad
        record never costs the others theirs."""
        try:
            async with conn.begin():
                await conn.exec_driver_sql(*self._insert(conn, batch))
        except Exception as exc:
            if conn.invalidated or conn.closed:
                raise
            if len(batch) == 1:
                log.exception("audit_store_failed", request_id=batch[0][0].request_id)
                _fail(batch, exc)
                return
            for item in batch:
                await self._store(conn, [item])
            return
        for _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)

    def _insert(
        self, conn: AsyncConnection, batch: list[_Item]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """The batch as one driver-level executemany: SQLAlchemy's per-row parameter
        processing would cost more than the insert itself."""
        if self._statement is None:
            self._statement = insert_statement(conn.dialect.paramstyle)
        encode_at = _sqlite_time if conn.dialect.name == "sqlite" else _aware_time
        rows = [
            tuple(
                encode_at(record.at) if name == "at" else getattr(record, name) for name in COLUMNS
            )
            for record, _ in batch
        ]
        return self._statement, rows

    def _log_line(self, record: AuditRecord) -> None:
        level = log_level(record.status)
        if not self._log.is_enabled_for(level):
            return
        fields = record.as_dict()
        fields.pop("at")
        self._log.log(level, "invocation", **fields)


CATALOGUE_UNAVAILABLE = ConnectionError("the audit store is unavailable")


def _fail(batch: list[_Item], exc: BaseException) -> None:
    for _, done in batch:
        if done is not None and not done.done():
            done.set_exception(exc)


def log_level(status: int) -> int:
    """Server errors are errors; refusals that matter for security (401, 403, 429) are
    warnings; other outcomes, client mistakes included, are information."""
    if status >= 500:
        return logging.ERROR
    if status in (401, 403, 429):
        return logging.WARNING
    return logging.INFO
