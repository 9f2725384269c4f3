"""The audit log: a structlog line at once, and the table row through group commit.

Records queue up and a single writer task inserts them in batches, one transaction per
batch. Each batch joins the hash chain (``audit.chain``): its transaction first locks
the one row of ``audit_chain_head``, so the records of every process writing to the
database form one gapless chain. ``write(..., durable=True)`` returns only after its
record has committed, so a command's response is never sent before its record is
stored; ``wait=True`` waits for that commit while the store takes records but never
fails its caller.

No record is dropped while the store is unavailable: they stay queued (up to
``max_queued``) and the writer retries with backoff (``audit.health``); a durable write
raises ``AuditUnavailable`` after ``durable_timeout_seconds``, its record still queued. A
record the database refuses while the store works costs only itself.

A command's attempt (``record_attempt``, ``audit.attempts``) is stored by the same group
commit; the record that ``closes`` it deletes it in its own transaction.
``close_interrupted`` records the attempts of processes that are gone (``audit.owners``).

Why it batches and gathers the way it does: docs/performance.md, "Pipeline and audit".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from itertools import islice

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from audit.attempts import Process
from audit.batches import Item, commit, content
from audit.health import StoreHealth
from audit.owners import OwnerLease
from audit.owners import close_interrupted as close_attempts_of_gone
from audit.sql_store import Rejected, StoreDown
from audit.sqlite_appender import sqlite_store
from registry.audit_record import AuditRecord
from registry.ports import AttemptNotStored, AuditUnavailable
from storage.database import Database

log = structlog.get_logger("specops.audit")


class AuditLog:
    """Writes every record to structlog and to the ``audit_events`` table."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 500,
        flush_seconds: float = 0.05,
        durable_timeout_seconds: float = 5.0,
        max_queued: int = 100_000,
        close_seconds: float = 5.0,
        process: Process | None = None,
    ) -> None:
        self.db = db
        self.max_batch = max_batch
        self.flush_seconds = flush_seconds
        self.durable_timeout_seconds = durable_timeout_seconds
        self.max_queued = max_queued
        self.close_seconds = close_seconds
        self._log = structlog.get_logger("specops.audit").bind()  # bound to the current config
        self._pending: deque[Item] = deque()
        self._durable_pending = 0
        self._wakeup = asyncio.Event()  # a record was queued
        self._urgent = asyncio.Event()  # a durable record was queued
        self._writer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        self._dropped = 0
        #: Batches committed so far (group commit at work: far fewer than records).
        self.commits = 0
        #: SQLite files are written by a thread of their own, a batch per call.
        self._sqlite = sqlite_store(db)
        self._health = StoreHealth(
            db,
            self._sqlite,
            durable_timeout_seconds=durable_timeout_seconds,
            unresolved=self._unresolved,
            writing=lambda: self._writer is not None,
        )
        #: This process, as ``audit_owners`` names it once it stores an attempt.
        self.process = process or Process.current()
        self._lease = OwnerLease(db, self.process)
        self.owner = self._lease.id

    # -- the sink ------------------------------------------------------------------------

    async def write(
        self,
        record: AuditRecord,
        *,
        durable: bool,
        wait: bool = False,
        closes: str | None = None,
    ) -> None:
        """Log the record's line, queue its row; with ``durable``, wait until it commits.
        The row's transaction deletes the attempt ``closes`` (``record_attempt``).

        Raises ``AuditUnavailable`` when a durable record is not stored within
        ``durable_timeout_seconds`` (it stays queued), and the database's error when the
        database refused the record itself. With ``wait`` (and not ``durable``), waits
        for the commit while the store takes records, and never raises."""
        self._log_line(record)
        if len(self._pending) >= self.max_queued:
            self._drop(record)
            if durable:
                raise AuditUnavailable("the audit queue is full")
            return
        optional = not durable
        if optional and (not wait or self._health.failing):
            item = Item(record, None)
            item.closes = closes
            self._pending.append(item)
            self._start_writer()
            return
        item = self._queue_waited(record, optional)
        item.closes = closes
        done = item.done
        assert done is not None
        if not optional:
            await done
            return
        with contextlib.suppress(Exception):  # the writer logged why; the record is queued
            await done

    async def record_attempt(self, record: AuditRecord) -> str:
        """Store a command's attempt before its handler runs: ``record`` is what the
        trail keeps should the process die before the command's own record (which
        ``closes`` it) is stored. Returns the attempt's id once it has committed, in the
        same group commit as concurrent records.

        Raises ``AttemptNotStored`` when it is not stored within
        ``durable_timeout_seconds`` (its ``attempt`` stays queued: the command's record
        must close it), or was refused or dropped (``attempt`` None)."""
        if len(self._pending) >= self.max_queued:
            self._drop(record)
            raise AttemptNotStored("the audit queue is full", None)
        attempt = self._lease.next_attempt()
        item = self._queue_waited(record, False)
        item.attempt = attempt
        assert item.done is not None
        try:
            await item.done
        except AuditUnavailable as exc:
            raise AttemptNotStored(str(exc), attempt) from None
        except Exception as exc:
            raise AttemptNotStored(f"the attempt was refused: {exc}", None) from None
        return attempt

    def _queue_waited(self, record: AuditRecord, optional: bool) -> Item:
        """Queue ``record`` with a future that the commit (or a deadline) settles."""
        done = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + self.durable_timeout_seconds
        item = Item(record, done, deadline, optional)
        self._pending.append(item)
        self._durable_pending += 1
        self._start_writer()
        self._urgent.set()
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._expire_overdue(), name="audit-deadlines")
        return item

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._run(), name="audit-writer")
        self._wakeup.set()

    async def _expire_overdue(self) -> None:
        """Fail the durable writes whose record is not stored by their deadline (one task
        a few times a second: docs/performance.md). The records stay queued."""
        interval = min(0.1, self.durable_timeout_seconds / 5)
        while self._durable_pending:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for item in self._pending:  # oldest first, so deadlines ascend
                if item.done is None or item.resolved:
                    continue
                if item.deadline > now:
                    break
                _expire(item.done, item.record.request_id, self)

    async def available(self) -> bool:
        """True while writes succeed. After a failure, looks at the store (at most once
        per ``PROBE_INTERVAL_SECONDS``) and answers False while it is down; True once it
        answers and the queued records go in again."""
        return await self._health.available()

    async def close(self) -> None:
        """Store what is queued (waiting at most ``close_seconds``) and stop the writer;
        log the number of records that could not be stored."""
        writer = self._writer
        if writer is not None and not writer.done():
            if self._pending:
                self._closing = True
                for event in (self._wakeup, self._urgent, self._health.retry_now):
                    event.set()
                await asyncio.wait((writer,), timeout=self.close_seconds)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        await self._lease.close()
        await self._health.stop_check()
        lost = [item for item in self._pending if not item.resolved]
        if lost:
            log.error(
                "audit_records_lost",
                count=len(lost),
                reason="the audit store did not take them before shutdown",
                first_request_id=lost[0].record.request_id,
            )
            _fail(lost, AuditUnavailable("the audit log was closed"))
        self._pending.clear()
        self._durable_pending = 0
        if self._sqlite is not None:
            await self._sqlite.reset()
        self._writer = None
        self._closing = False
        self._health.reset()
        self._report_dropped()

    # -- the writer ----------------------------------------------------------------------

    async def _run(self) -> None:
        conn: AsyncConnection | None = None
        health = self._health
        pending = self._pending
        try:
            while True:
                if not pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._durable_pending == 0 and not health.failing:
                    if not self._closing and len(pending) < self.max_batch:
                        # Nobody waits on these records: gather more for up to
                        # flush_seconds, unless a durable record arrives or a whole
                        # batch is waiting (a busy server must not fall behind).
                        self._urgent.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._urgent.wait(), self.flush_seconds)
                else:
                    await asyncio.sleep(0)  # let requests of this loop turn join the commit
                batch = list(islice(pending, self.max_batch))
                health.attempt_begins()
                failure: Exception | None = None
                try:
                    if self._sqlite is None and (conn is None or conn.closed or conn.invalidated):
                        conn = await self.db.engine.connect()
                    await self._store(conn, batch)
                except Exception as exc:
                    failure = exc
                self._release_resolved()
                if failure is None:
                    health.note_success()
                    health.attempt_done()
                    continue
                health.note_failure(failure)
                self._release_optional_waiters()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
                if self._sqlite is not None:
                    await self._sqlite.reset()
                health.attempt_done()
                await health.pause()
        finally:
            health.attempt_started = None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close())

    async def _store(self, conn: AsyncConnection | None, batch: list[Item]) -> None:
        """One transaction for the batch; if the database refuses it while the store
        works, each record alone, so that one bad record never costs the others theirs.
        Raises ``StoreDown`` when the store failed (the records stay queued)."""
        ready = []
        for item in batch:
            if item.content is None:
                try:
                    item.content = content(item, self.owner)
                except (TypeError, ValueError, OverflowError) as exc:
                    self._reject(item, exc)
                    continue
            ready.append(item)
        if not ready:
            return
        try:
            await commit(self.db, self._sqlite, conn, ready, self._lease)
        except Rejected as rejected:
            cause = rejected.__cause__ or rejected
            if not await self._health.blames_records(conn, cause):
                raise StoreDown("the audit store failed") from cause
            if len(ready) == 1:
                self._reject(ready[0], cause)
                return
            for item in ready:
                await self._store(conn, [item])
            return
        self.commits += 1
        if any(item.attempt is not None for item in ready):
            self._lease.stored()
        for item in ready:
            item.resolved = True
            if item.done is not None and not item.done.done():
                item.done.set_result(None)

    # -- attempts of processes that are gone -----------------------------------------------

    async def close_interrupted(self) -> int:
        """Record the attempts of processes that are gone as ``INTERRUPTED`` (chained like
        any record), deleting them and their processes' rows in the same transaction;
        returns how many. Processes starting together each record a different share."""
        return await close_attempts_of_gone(self.db, self._lease, self._log_line)

    # -- the queue -----------------------------------------------------------------------

    def _reject(self, item: Item, exc: BaseException) -> None:
        """The database (or the encoding) refused this record: only it is lost."""
        log.error(
            "audit_record_rejected",
            request_id=item.record.request_id,
            error=type(exc).__name__,
            detail=str(exc)[:300],
        )
        item.resolved = True
        if item.done is not None and not item.done.done():
            item.done.set_exception(exc)

    def _release_optional_waiters(self) -> None:
        """The store failed: callers that need not wait for a failing store go on; their
        records stay queued, as records nobody waits for."""
        for item in self._pending:
            done = item.done
            if item.optional and done is not None and not item.resolved:
                if not done.done():
                    done.set_result(None)
                item.done = None
                self._durable_pending -= 1

    def _release_resolved(self) -> None:
        pending = self._pending
        while pending and pending[0].resolved:
            if pending.popleft().done is not None:
                self._durable_pending -= 1
        if self._dropped and len(pending) < self.max_queued // 2:
            self._report_dropped()

    def _unresolved(self) -> int:
        return sum(1 for item in self._pending if not item.resolved)

    def _drop(self, record: AuditRecord) -> None:
        self._dropped += 1
        if self._dropped == 1 or self._dropped % 1000 == 0:
            log.error(
                "audit_queue_full",
                queued=len(self._pending),
                dropped=self._dropped,
                request_id=record.request_id,
            )

    def _report_dropped(self) -> None:
        if self._dropped:
            log.error("audit_records_dropped", count=self._dropped, reason="queue full")
            self._dropped = 0

    def _log_line(self, record: AuditRecord) -> None:
        level = log_level(record.status)
        if not self._log.is_enabled_for(level):
            return
        fields = record.as_dict()
        fields.pop("at")
        self._log.log(level, "invocation", **fields)


def _expire(done: asyncio.Future[None], request_id: str, audit: AuditLog) -> None:
    """A durable write's timeout: its caller stops waiting; the record stays queued."""
    if not done.done():
        done.set_exception(
            AuditUnavailable(
                f"the audit record of request {request_id} was not stored within "
                f"{audit.durable_timeout_seconds:g}s; it stays queued"
            )
        )


def _fail(items: list[Item], exc: BaseException) -> None:
    for item in items:
        if item.done is not None and not item.done.done():
            item.done.set_exception(exc)


def log_level(status: int) -> int:
    """Server errors are errors; refusals that matter for security (401, 403, 429) are
    warnings; other outcomes, client mistakes included, are information."""
    if status >= 500:
        return logging.ERROR
    if status in (401, 403, 429):
        return logging.WARNING
    return logging.INFO


__all__ = ["AuditLog", "AuditUnavailable", "log_level"]
