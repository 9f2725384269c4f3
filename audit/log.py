"""The audit log: a structlog line at once, and the table row through group commit.

Records queue up and a single writer task inserts them in batches, one transaction per
batch. ``write(..., durable=True)`` returns only after the batch holding the record has
committed, so a command's response is never sent before its record is stored; concurrent
calls share one commit. ``write(..., wait=True)`` (the pipeline's queries and refusals,
where it is set to wait for every record) waits for that commit too while the store takes
records, but never fails its caller: when the store fails meanwhile, or the record is not
stored within the durable timeout, the caller goes on and the record stays queued.
Records nobody waits for are gathered for up to ``flush_seconds`` first, so that they
cost a few commits a second.

Each batch joins the hash chain (``audit.chain``). Its transaction first locks the one row
of ``audit_chain_head`` (an UPDATE: the row lock on PostgreSQL, the write lock on SQLite),
so the records of every process writing to the database (uvicorn workers, the CLI) form
one gapless chain; then it reads the head, inserts the batch with its ``seq``,
``prev_hash`` and ``hash``, and moves the head.

When the store is unavailable (connection lost, table missing, lock timeout ...) no record
is dropped: they stay queued (up to ``max_queued``) and the writer retries with backoff.
Meanwhile ``available()`` answers False, and a durable write raises ``AuditUnavailable``
after ``durable_timeout_seconds``; its record is still written once the store is back.
A record the database refuses while the store works (a NOT NULL column left empty) costs
only itself: the batch is retried record by record.

A command's attempt (``record_attempt``, ``audit.attempts``) is queued like a durable
record and stored by the same group commit, in ``audit_attempts``; the record that
``closes`` it deletes it in its own batch's transaction. ``close_interrupted`` records the
attempts of processes that are gone as ``INTERRUPTED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import time
from collections import deque
from itertools import islice

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from audit import sql_store
from audit.attempts import (
    HEARTBEAT_SECONDS,
    Process,
    attempt_text,
    is_gone,
)
from audit.chain import (
    Content,
    record_content,
)
from audit.sql_store import Batch, Rejected, StoreDown
from audit.sqlite_appender import (
    RecordsRefused,
    SqliteAppender,
    sqlite_store,
)
from registry.audit_record import AuditRecord
from registry.ports import AttemptNotStored, AuditUnavailable
from storage.database import Database
from storage.tables import audit_attempts, audit_owners
from storage.times import (
    EncodeTime,
    naive_utc,
    sqlite_time_of,
    timestamp_text,
    utc_now,
)

log = structlog.get_logger("specops.audit")

MIN_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0
#: ``available()`` looks at a failing store at most this often.
PROBE_INTERVAL_SECONDS = 1.0


class _Item:
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
        self._pending: deque[_Item] = deque()
        self._durable_pending = 0
        self._wakeup = asyncio.Event()  # a record was queued
        self._urgent = asyncio.Event()  # a durable record was queued
        self._retry_now = asyncio.Event()  # cut the backoff short
        self._attempted = asyncio.Event()  # the writer finished an attempt
        self._writer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        # The store's health: when the writer's failures began (None: it works), when
        # its current attempt began, and available()'s last look.
        self._failing_since: float | None = None
        self._attempt_started: float | None = None
        self._check: asyncio.Task[bool] | None = None
        self._checked_at = -PROBE_INTERVAL_SECONDS
        self._check_answer = True
        self._dropped = 0
        #: Batches committed so far (group commit at work: far fewer than records).
        self.commits = 0
        #: SQLite files are written by a thread of their own, a batch per call.
        self._sqlite = sqlite_store(db)
        #: This process, as ``audit_owners`` names it once it stores an attempt.
        self.process = process or Process.current()
        self.owner = secrets.token_hex(16)
        self._attempts = 0
        self._owner_renewed_at: float | None = None
        self._heartbeat: asyncio.Task[None] | None = None

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
        if optional and (not wait or self._failing_since is not None):
            item = _Item(record, None)
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
        self._attempts += 1
        attempt = f"{self.owner}.{self._attempts}"
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

    def _queue_waited(self, record: AuditRecord, optional: bool) -> _Item:
        """Queue ``record`` with a future that the commit (or a deadline) settles."""
        done = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + self.durable_timeout_seconds
        item = _Item(record, done, deadline, optional)
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
        """Fail the durable writes whose record is not stored by their deadline: one task
        looking a few times a second, rather than a timer per write (a heap of timers
        costs every command microseconds). The records stay queued."""
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
        started = self._attempt_started
        now = time.monotonic()
        if started is not None and now - started > self.durable_timeout_seconds:
            return False  # the writer is stuck (waiting for a lock, a dead connection)
        if self._failing_since is None:
            return True
        if self._check is None:
            if now - self._checked_at < PROBE_INTERVAL_SECONDS:
                return self._check_answer
            self._check = asyncio.create_task(self._check_store(), name="audit-probe")
        check = self._check
        return await asyncio.shield(check)

    async def close(self) -> None:
        """Store what is queued (waiting at most ``close_seconds``) and stop the writer;
        log the number of records that could not be stored."""
        writer = self._writer
        if writer is not None and not writer.done():
            if self._pending:
                self._closing = True
                for event in (self._wakeup, self._urgent, self._retry_now):
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
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
            self._owner_renewed_at = None
        if self._check is not None:
            self._check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._check
            self._check = None
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
        self._failing_since = None
        self._attempt_started = None
        self._report_dropped()

    # -- the writer ----------------------------------------------------------------------

    async def _run(self) -> None:
        conn: AsyncConnection | None = None
        backoff = MIN_BACKOFF_SECONDS
        pending = self._pending
        try:
            while True:
                if not pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._durable_pending == 0 and self._failing_since is None:
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
                self._attempt_started = time.monotonic()
                failure: Exception | None = None
                try:
                    if self._sqlite is None and (conn is None or conn.closed or conn.invalidated):
                        conn = await self.db.engine.connect()
                    await self._store(conn, batch)
                except Exception as exc:
                    failure = exc
                self._release_resolved()
                if failure is None:
                    self._note_success()
                    self._attempt_done()
                    backoff = MIN_BACKOFF_SECONDS
                    continue
                self._note_failure(failure)
                self._release_optional_waiters()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
                if self._sqlite is not None:
                    await self._sqlite.reset()
                self._attempt_done()
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        finally:
            self._attempt_started = None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close())

    async def _store(self, conn: AsyncConnection | None, batch: list[_Item]) -> None:
        """One transaction for the batch; if the database refuses it while the store
        works, each record alone, so that one bad record never costs the others theirs.
        Raises ``StoreDown`` when the store failed (the records stay queued)."""
        ready = []
        for item in batch:
            if item.content is None:
                try:
                    item.content = self._content(item)
                except (TypeError, ValueError, OverflowError) as exc:
                    self._reject(item, exc)
                    continue
            ready.append(item)
        if not ready:
            return
        try:
            await self._commit(conn, ready)
        except Rejected as rejected:
            cause = rejected.__cause__ or rejected
            if not await self._blames_records(conn, cause):
                raise StoreDown("the audit store failed") from cause
            if len(ready) == 1:
                self._reject(ready[0], cause)
                return
            for item in ready:
                await self._store(conn, [item])
            return
        self.commits += 1
        if any(item.attempt is not None for item in ready):
            self._owner_stored()
        for item in ready:
            item.resolved = True
            if item.done is not None and not item.done.done():
                item.done.set_result(None)

    def _content(self, item: _Item) -> Content:
        """A record's content (``audit.chain``), or an attempt's row: id, owner, time (as
        ``timestamp_text``), the record as JSON."""
        if item.attempt is None:
            return record_content(item.record)
        record = item.record
        return (item.attempt, self.owner, timestamp_text(record.at), attempt_text(record))

    def _batch(self, items: list[_Item], encode_at: EncodeTime) -> Batch:
        """The rows of ``items``: records, attempts (with this process' row while it is
        new or due for renewal), and the attempts the records end."""
        contents: list[Content] = []
        attempts: list[tuple[object, ...]] = []
        closed: list[tuple[str]] = []
        for item in items:
            content = item.content
            if content is None:
                continue
            if item.attempt is not None:
                attempts.append((content[0], content[1], encode_at(content[2]), content[3]))
                continue
            contents.append(content)
            if item.closes is not None:
                closed.append((item.closes,))
        owner = self._owner_row(encode_at) if attempts and self._owner_due() else None
        return Batch(contents, attempts, closed, owner)

    async def _commit(self, conn: AsyncConnection | None, items: list[_Item]) -> None:
        """One transaction for ``items`` (``audit.sql_store.commit``, or the SQLite
        file's store)."""
        if self._sqlite is not None:
            return await self._commit_sqlite(self._sqlite, items)
        assert conn is not None
        await sql_store.commit(conn, self._batch(items, sql_store.encoder(conn)))

    async def _commit_sqlite(self, appender: SqliteAppender, items: list[_Item]) -> None:
        lock = self.db.write_lock
        assert lock is not None  # a SQLite file: the process' other writers wait on it
        batch = self._batch(items, sqlite_time_of)
        try:
            async with lock:
                await appender.append(batch)
        except RecordsRefused as refused:
            raise Rejected() from refused.__cause__
        except Exception as exc:
            raise StoreDown("the audit store failed") from exc

    # -- attempts of processes that are gone -----------------------------------------------

    async def close_interrupted(self) -> int:
        """Record the attempts of processes that are gone as ``INTERRUPTED`` (chained like
        any record), deleting them and their processes' rows in the same transaction;
        returns how many. Processes starting together each record a different share."""
        now = utc_now()
        async with self.db.connect() as conn:
            owners = (await conn.execute(select(audit_owners))).mappings().all()
            with_attempts = set(
                (await conn.execute(select(audit_attempts.c.owner).distinct())).scalars()
            )
        alive = {
            row["id"]
            for row in owners
            if row["id"] == self.owner
            or not is_gone(
                Process(row["host"], row["pid"], row["pid_started"]),
                naive_utc(row["heartbeat_at"]),
                now,
                self.process,
            )
        }
        gone = sorted(({row["id"] for row in owners} | with_attempts) - alive)
        closed = 0
        while gone:
            async with self.db.begin() as conn:
                records, more = await sql_store.close_attempts_of(conn, gone)
            closed += len(records)
            for record in records:
                self._log_line(record)
            if not more:
                break
        if closed:
            log.warning("audit_attempts_interrupted", count=closed, processes=len(gone))
        return closed

    # -- this process' row ---------------------------------------------------------------

    def _owner_due(self) -> bool:
        renewed = self._owner_renewed_at
        return renewed is None or time.monotonic() - renewed >= HEARTBEAT_SECONDS / 2

    def _owner_row(self, encode_at: EncodeTime) -> tuple[object, ...]:
        now = encode_at(timestamp_text(time.time()))
        process = self.process
        return (self.owner, process.host, process.pid, process.started, now, now)

    def _owner_stored(self) -> None:
        """A batch with attempts committed (and this process' row with the first): renew
        the row every ``HEARTBEAT_SECONDS`` from now on, attempts or not."""
        if self._owner_renewed_at is None:
            self._heartbeat = asyncio.create_task(self._renew_owner(), name="audit-heartbeat")
        self._owner_renewed_at = time.monotonic()

    async def _renew_owner(self) -> None:
        """Keep this process' row fresh, so that other hosts do not take it for gone."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if not self._owner_due():
                continue
            try:
                async with self.db.begin() as conn:
                    row = self._owner_row(sql_store.encoder(conn))
                    await sql_store.renew_owner(conn, row)
                self._owner_renewed_at = time.monotonic()
            except Exception as exc:
                log.warning("audit_heartbeat_failed", error=type(exc).__name__)

    async def _blames_records(self, conn: AsyncConnection | None, exc: BaseException) -> bool:
        """Whether an insert failed because of a record (the store works) rather than
        because of the store (connection, missing table, full disk, lock timeout)."""
        if conn is not None and (conn.invalidated or conn.closed):
            return False
        if isinstance(exc, OperationalError | sqlite3.OperationalError):
            return False
        message = str(getattr(exc, "orig", exc))
        if "ux_audit_events_seq" in message or "audit_events.seq" in message:
            return False  # the chain head is behind the table: the store's fault
        if isinstance(exc, IntegrityError | DataError | sqlite3.IntegrityError):
            return True
        try:
            if self._sqlite is not None:
                await self._sqlite.probe()
            else:
                assert conn is not None
                await sql_store.probe(conn)
        except Exception:
            return False
        return True

    # -- health --------------------------------------------------------------------------

    def _note_failure(self, exc: BaseException) -> None:
        cause = exc.__cause__ or exc
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            self._check_answer = False
            self._checked_at = time.monotonic()
            log.error(
                "audit_store_unavailable",
                error=type(cause).__name__,
                detail=str(cause)[:300],
                queued=self._unresolved(),
                exc_info=cause,
            )
        else:
            log.debug("audit_store_still_unavailable", error=type(cause).__name__)

    def _note_success(self) -> None:
        if self._failing_since is not None:
            log.warning(
                "audit_store_available",
                unavailable_seconds=round(time.monotonic() - self._failing_since, 3),
                queued=self._unresolved(),
            )
        self._failing_since = None
        self._check_answer = True

    def _attempt_done(self) -> None:
        self._attempt_started = None
        self._attempted.set()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` before the next attempt, or less when told to retry now."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._retry_now.wait(), seconds)
        self._retry_now.clear()

    async def _check_store(self) -> bool:
        """available()'s look at a failing store: a probe; when it answers, the writer
        retries at once, and the answer is whether that attempt succeeded."""
        try:
            try:
                async with asyncio.timeout(PROBE_INTERVAL_SECONDS):
                    async with self.db.engine.connect() as conn:
                        await sql_store.probe(conn)
            except Exception:
                answer = False
            else:
                answer = True
                if self._failing_since is not None and self._writer is not None:
                    self._attempted.clear()
                    self._retry_now.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._attempted.wait(), PROBE_INTERVAL_SECONDS)
                    answer = self._failing_since is None
            self._check_answer = answer
            return answer
        finally:
            self._checked_at = time.monotonic()
            self._check = None

    # -- the queue -----------------------------------------------------------------------

    def _reject(self, item: _Item, exc: BaseException) -> None:
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


def _fail(items: list[_Item], exc: BaseException) -> None:
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
