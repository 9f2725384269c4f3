"""The audit store's health, as the writer sees it: failures and their backoff, the
look ``AuditLog.available()`` takes at a failing store, and whether a failed insert
blames its records or the store."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable

import structlog
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from audit import sql_store
from audit.sqlite_appender import SqliteAppender
from storage.database import Database

log = structlog.get_logger("specops.audit")

MIN_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0
#: ``available()`` looks at a failing store at most this often.
PROBE_INTERVAL_SECONDS = 1.0


class StoreHealth:
    """Whether the store takes records: when the writer's failures began (None: it
    works), when its current attempt began, and ``available()``'s last look."""

    def __init__(
        self,
        db: Database,
        sqlite: SqliteAppender | None,
        *,
        durable_timeout_seconds: float,
        unresolved: Callable[[], int],
        writing: Callable[[], bool],
    ) -> None:
        self.db = db
        self._sqlite = sqlite
        self.durable_timeout_seconds = durable_timeout_seconds
        #: How many queued records are not stored yet (for the log lines).
        self._unresolved = unresolved
        #: Whether a writer task is there to retry.
        self._writing = writing
        self.failing_since: float | None = None
        self.attempt_started: float | None = None
        self.retry_now = asyncio.Event()  # cut the backoff short
        self._attempted = asyncio.Event()  # the writer finished an attempt
        self._backoff = MIN_BACKOFF_SECONDS
        self._check: asyncio.Task[bool] | None = None
        self._checked_at = -PROBE_INTERVAL_SECONDS
        self._check_answer = True

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    async def available(self) -> bool:
        """True while writes succeed. After a failure, looks at the store (at most once
        per ``PROBE_INTERVAL_SECONDS``) and answers False while it is down; True once it
        answers and the queued records go in again."""
        started = self.attempt_started
        now = time.monotonic()
        if started is not None and now - started > self.durable_timeout_seconds:
            return False  # the writer is stuck (waiting for a lock, a dead connection)
        if self.failing_since is None:
            return True
        if self._check is None:
            if now - self._checked_at < PROBE_INTERVAL_SECONDS:
                return self._check_answer
            self._check = asyncio.create_task(self._check_store(), name="audit-probe")
        check = self._check
        return await asyncio.shield(check)

    async def blames_records(self, conn: AsyncConnection | None, exc: BaseException) -> bool:
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

    def attempt_begins(self) -> None:
        self.attempt_started = time.monotonic()

    def attempt_done(self) -> None:
        self.attempt_started = None
        self._attempted.set()

    def note_failure(self, exc: BaseException) -> None:
        cause = exc.__cause__ or exc
        if self.failing_since is None:
            self.failing_since = time.monotonic()
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

    def note_success(self) -> None:
        if self.failing_since is not None:
            log.warning(
                "audit_store_available",
                unavailable_seconds=round(time.monotonic() - self.failing_since, 3),
                queued=self._unresolved(),
            )
        self.failing_since = None
        self._check_answer = True
        self._backoff = MIN_BACKOFF_SECONDS

    async def pause(self) -> None:
        """Wait the backoff before the next attempt (or less when told to retry now);
        the next one waits twice as long, up to ``MAX_BACKOFF_SECONDS``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.retry_now.wait(), self._backoff)
        self.retry_now.clear()
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)

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
                if self.failing_since is not None and self._writing():
                    self._attempted.clear()
                    self.retry_now.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._attempted.wait(), PROBE_INTERVAL_SECONDS)
                    answer = self.failing_since is None
            self._check_answer = answer
            return answer
        finally:
            self._checked_at = time.monotonic()
            self._check = None

    async def stop_check(self) -> None:
        """Stop a look under way."""
        if self._check is not None:
            self._check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._check
            self._check = None

    def reset(self) -> None:
        """The writer stopped: the store counts as working again."""
        self.failing_since = None
        self.attempt_started = None
        self._backoff = MIN_BACKOFF_SECONDS


__all__ = ["MAX_BACKOFF_SECONDS", "MIN_BACKOFF_SECONDS", "PROBE_INTERVAL_SECONDS", "StoreHealth"]
