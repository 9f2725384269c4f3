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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from datetime import UTC, datetime
from itertools import islice

import structlog
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from audit.chain import CONTENT_COLUMNS, Content, chained_rows, record_content
from audit.errors import AuditUnavailable
from audit.record import AuditRecord
from audit.sqlite_appender import RecordsRefused, SqliteAppender, sqlite_time, sqlite_time_of
from storage.database import Database

log = structlog.get_logger("specops.audit")

#: The columns the writer fills, in statement order (``id`` is the database's).
COLUMNS: tuple[str, ...] = (*CONTENT_COLUMNS, "seq", "prev_hash", "hash")

#: First statement of every batch: takes the chain head's lock and reads it.
LOCK_HEAD = "UPDATE audit_chain_head SET seq = seq WHERE id = 1 RETURNING seq, hash"
#: SQLite's first statement after ``BEGIN IMMEDIATE``, which already holds the lock.
READ_HEAD = "SELECT seq, hash FROM audit_chain_head WHERE id = 1"
#: A cheap look at both tables, for ``available()`` and to tell a broken store from a
#: bad record.
PROBE = "SELECT seq, (SELECT max(seq) FROM audit_events) FROM audit_chain_head WHERE id = 1"

MIN_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0
#: ``available()`` looks at a failing store at most this often.
PROBE_INTERVAL_SECONDS = 1.0


def _marks(paramstyle: str, count: int) -> list[str]:
    if paramstyle == "qmark":
        return ["?"] * count
    if paramstyle == "numeric_dollar":
        return [f"${i}" for i in range(1, count + 1)]
    if paramstyle == "format":
        return ["%s"] * count
    raise ValueError(f"unsupported parameter style {paramstyle}")


def insert_statement(paramstyle: str) -> str:
    """``INSERT INTO audit_events (...) VALUES (...)`` in the driver's parameter style."""
    marks = _marks(paramstyle, len(COLUMNS))
    return f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({', '.join(marks)})"


def head_update_statement(paramstyle: str) -> str:
    """``UPDATE audit_chain_head SET seq, hash, updated_at`` in the driver's style."""
    seq, digest, at = _marks(paramstyle, 3)
    return (
        f"UPDATE audit_chain_head SET seq = {seq}, hash = {digest}, updated_at = {at} WHERE id = 1"
    )


def _aware_time(at: datetime) -> datetime:
    """A naive UTC time as asyncpg takes it for ``timestamptz``."""
    return at.replace(tzinfo=UTC)


def _aware_time_of(iso: str) -> datetime:
    """A time given as naive UTC ISO text, as asyncpg takes it for ``timestamptz``."""
    return _aware_time(datetime.fromisoformat(iso))


class _StoreDown(Exception):
    """The store, not a record, failed (``__cause__`` says how)."""


class _Rejected(Exception):
    """The insert failed; maybe a record's fault (``__cause__`` says how)."""


class _Item:
    """A queued record, its content once computed, and who waits for it."""

    __slots__ = ("content", "deadline", "done", "optional", "record", "resolved")

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
        self._statements: tuple[str, str] | None = None
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
        self._sqlite = _sqlite_appender(db)

    # -- the sink ------------------------------------------------------------------------

    async def write(self, record: AuditRecord, *, durable: bool, wait: bool = False) -> None:
        """Log the record's line, queue its row; with ``durable``, wait until it commits.

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
            self._pending.append(_Item(record, None))
            self._start_writer()
            return
        done = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + self.durable_timeout_seconds
        self._pending.append(_Item(record, done, deadline, optional))
        self._durable_pending += 1
        self._start_writer()
        self._urgent.set()
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._expire_overdue(), name="audit-deadlines")
        if not optional:
            await done
            return
        with contextlib.suppress(Exception):  # the writer logged why; the record is queued
            await done

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
        Raises ``_StoreDown`` when the store failed (the records stay queued)."""
        ready = []
        for item in batch:
            if item.content is None:
                try:
                    item.content = record_content(item.record)
                except (TypeError, ValueError, OverflowError) as exc:
                    self._reject(item, exc)
                    continue
            ready.append(item)
        if not ready:
            return
        try:
            await self._commit(conn, ready)
        except _Rejected as rejected:
            cause = rejected.__cause__ or rejected
            if not await self._blames_records(conn, cause):
                raise _StoreDown("the audit store failed") from cause
            if len(ready) == 1:
                self._reject(ready[0], cause)
                return
            for item in ready:
                await self._store(conn, [item])
            return
        self.commits += 1
        for item in ready:
            item.resolved = True
            if item.done is not None and not item.done.done():
                item.done.set_result(None)

    async def _commit(self, conn: AsyncConnection | None, items: list[_Item]) -> None:
        """Lock the chain head, chain ``items`` after it, insert them, move the head."""
        if self._sqlite is not None:
            return await self._commit_sqlite(self._sqlite, items)
        assert conn is not None
        insert, update_head = self._statements_for(conn)
        sqlite = conn.dialect.name == "sqlite"
        encode_at = sqlite_time if sqlite else _aware_time
        try:
            async with conn.begin():
                head = (await conn.exec_driver_sql(LOCK_HEAD)).first()
                if head is None:
                    raise _StoreDown("audit_chain_head has no row: is the schema migrated?")
                head_seq, head_hash = tuple(head)
                rows, seq, prev_hash = chained_rows(
                    _contents(items),
                    int(head_seq),
                    str(head_hash),
                    sqlite_time_of if sqlite else _aware_time_of,
                )
                try:
                    await conn.exec_driver_sql(insert, rows)
                except Exception as exc:
                    raise _Rejected() from exc
                now = datetime.now(UTC).replace(tzinfo=None)
                await conn.exec_driver_sql(update_head, (seq, prev_hash, encode_at(now)))
        except (_Rejected, _StoreDown):
            raise
        except Exception as exc:
            raise _StoreDown("the audit store failed") from exc

    async def _commit_sqlite(self, appender: SqliteAppender, items: list[_Item]) -> None:
        lock = self.db.write_lock
        assert lock is not None  # a SQLite file: the process' other writers wait on it
        try:
            async with lock:
                await appender.append(_contents(items))
        except RecordsRefused as refused:
            raise _Rejected() from refused.__cause__
        except Exception as exc:
            raise _StoreDown("the audit store failed") from exc

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
                await _probe(conn)
        except Exception:
            return False
        return True

    def _statements_for(self, conn: AsyncConnection) -> tuple[str, str]:
        if self._statements is None:
            paramstyle = conn.dialect.paramstyle
            self._statements = (insert_statement(paramstyle), head_update_statement(paramstyle))
        return self._statements

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
                        await _probe(conn)
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


def _contents(items: list[_Item]) -> list[Content]:
    """The computed contents of ``items`` (``_store`` computes them before committing)."""
    return [item.content for item in items if item.content is not None]


def _sqlite_appender(db: Database) -> SqliteAppender | None:
    """The inline writer for a SQLite file; None for other databases (and in-memory
    SQLite, which only the engine's own connection sees)."""
    if db.sqlite_path is None:
        return None
    return SqliteAppender(
        db.sqlite_path,
        insert=insert_statement("qmark"),
        read_head=READ_HEAD,
        update_head=head_update_statement("qmark"),
        probe=PROBE,
        checkpoints=db.checkpoints,
    )


def _expire(done: asyncio.Future[None], request_id: str, audit: AuditLog) -> None:
    """A durable write's timeout: its caller stops waiting; the record stays queued."""
    if not done.done():
        done.set_exception(
            AuditUnavailable(
                f"the audit record of request {request_id} was not stored within "
                f"{audit.durable_timeout_seconds:g}s; it stays queued"
            )
        )


async def _probe(conn: AsyncConnection) -> None:
    """Raise unless both audit tables answer."""
    async with conn.begin():
        if (await conn.exec_driver_sql(PROBE)).first() is None:
            raise LookupError("audit_chain_head has no row")


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


__all__ = ["COLUMNS", "AuditLog", "AuditUnavailable", "insert_statement", "log_level"]
