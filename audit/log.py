"""The audit log: a structlog line at once, and the table row through group commit.

Records queue up and a single writer task inserts them in batches, one transaction per
batch. ``write(..., durable=True)`` returns only after the batch holding the record has
committed, so a command's response is never sent before its record is stored; concurrent
commands share one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import structlog

from audit.record import AuditRecord
from storage.database import Database
from storage.tables import audit_events

log = structlog.get_logger("specops.audit")

_Item = tuple[AuditRecord, asyncio.Future[None] | None]


def _row(record: AuditRecord) -> dict[str, Any]:
    row = record.as_dict()
    row["at"] = datetime.fromtimestamp(record.at, UTC)
    return row


class AuditLog:
    """Writes every record to structlog and to the ``audit_events`` table."""

    def __init__(self, db: Database, *, max_batch: int = 500) -> None:
        self.db = db
        self.max_batch = max_batch
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
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._store(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _store(self, batch: list[_Item]) -> None:
        """One transaction for the batch; if it fails, each record alone, so that one bad
        record never costs the others theirs."""
        try:
            async with self.db.begin() as conn:
                await conn.execute(audit_events.insert(), [_row(r) for r, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                record, done = batch[0]
                log.exception("audit_store_failed", request_id=record.request_id)
                if done is not None and not done.done():
                    done.set_exception(exc)
                return
            for item in batch:
                await self._store([item])
            return
        for _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)

    @staticmethod
    def _log_line(record: AuditRecord) -> None:
        fields = record.as_dict()
        fields.pop("at")
        if record.status >= 500:
            log.error("invocation", **fields)
        elif record.status >= 400:
            log.warning("invocation", **fields)
        else:
            log.info("invocation", **fields)
