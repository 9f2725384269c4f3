"""SQLite statements run on the event loop's own thread instead of a thread hop each.

The engine's SQLite driver, aiosqlite, runs every statement on a thread of its own
connection: the loop queues it, the thread wakes, runs it, and wakes the loop again. A
statement takes SQLite microseconds; the hop costs tens of microseconds of CPU (two
context switches, two wake-ups), and a write transaction makes several (begin, insert,
commit, the pool's reset), so hops were most of what storing an invoice cost.

``InlineConnection`` is aiosqlite's connection with its one funnel, ``_execute``, run
inline: the statement runs at once on the calling (event loop) thread, on a connection
that never waits for a lock (``busy_timeout=0``). The event loop must never wait for
another process, so when another process holds SQLite's write lock (the CLI, another
uvicorn worker) the statement is run again on the connection's own thread, which waits
for the lock up to ``BUSY_TIMEOUT_MS``. A statement SQLite refused as busy changed
nothing, so running it again is safe. This process' own writers do not meet each other's
locks: they queue on ``Database.write_lock`` first.

Reads that may take long (verifying, exporting or searching the whole audit trail) must
not hold up the event loop: within ``on_own_thread()`` every statement takes the thread.

WAL checkpoints copy the log back into the database file and flush it to disk: inline,
that would stall the event loop inside a commit. These connections never checkpoint by
themselves (``wal_autocheckpoint=0``), nor does the audit writer's; the file's
``Checkpoints`` runs one on a thread of its own every ``CHECKPOINT_WRITES`` writes (a
commit of these connections, or a row of the audit writer's).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

import aiosqlite

#: How long a statement on a connection's own thread waits for another process' lock.
BUSY_TIMEOUT_MS = 10_000
#: Writes (commits, audit rows) between two WAL checkpoints.
CHECKPOINT_WRITES = 1000

#: True within ``on_own_thread()``.
_own_thread: ContextVar[bool] = ContextVar("sqlite_on_own_thread", default=False)


@contextlib.contextmanager
def on_own_thread() -> Iterator[None]:
    """Within: statements of this task run on their connection's thread (long reads)."""
    token = _own_thread.set(True)
    try:
        yield
    finally:
        _own_thread.reset(token)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused for a lock another connection holds."""
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class Checkpoints:
    """Runs a passive WAL checkpoint of one file every ``every`` writes, on a thread and a
    connection of its own."""

    def __init__(self, path: str, every: int = CHECKPOINT_WRITES) -> None:
        self.path = path
        self.every = every
        self.writes = 0
        #: Checkpoints run so far.
        self.done = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-wal")
        self._conn: sqlite3.Connection | None = None
        self._running: asyncio.Future[None] | None = None
        self._closed = False

    def note(self, writes: int = 1) -> None:
        """Count ``writes``; start a checkpoint when ``every`` have gone by (and none runs)."""
        self.writes += writes
        if self.writes < self.every or self._closed:
            return
        if self._running is not None and not self._running.done():
            return
        self.writes = 0
        self._running = asyncio.get_running_loop().run_in_executor(self._executor, self._run)

    def _run(self) -> None:
        """A passive checkpoint never waits (nor calls a busy handler): it copies what no
        reader still needs."""
        with contextlib.suppress(sqlite3.Error):
            if self._conn is None:
                self._conn = sqlite3.connect(self.path, check_same_thread=False)
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.done += 1

    async def close(self) -> None:
        """Wait for a running checkpoint, then close the connection and the thread.
        Idempotent; a commit noted afterwards starts no checkpoint."""
        if self._closed:
            return
        self._closed = True
        if self._running is not None:
            with contextlib.suppress(Exception):
                await self._running
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection, its statements run on the calling thread (see the module)."""

    def __init__(
        self,
        connector: Callable[[], sqlite3.Connection],
        checkpoints: Checkpoints | None = None,
    ) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._thread.daemon = True  # as the aiosqlite dialect sets its connections'
        self._checkpoints = checkpoints
        #: Statements another process' lock sent to the connection's thread.
        self.deferred = 0

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        conn = self._connection
        if not _own_thread.get():
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
            self.deferred += 1
        return await super()._execute(  # type: ignore[no-untyped-call]
            _waiting_for_locks, conn, fn, args, kwargs
        )

    async def commit(self) -> None:
        await super().commit()
        if self._checkpoints is not None:
            self._checkpoints.note()


def _waiting_for_locks(
    conn: sqlite3.Connection, fn: Callable[..., Any], args: Any, kwargs: Any
) -> Any:
    """``fn(*args, **kwargs)`` on the connection's thread, waiting for locks meanwhile."""
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return fn(*args, **kwargs)
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA busy_timeout=0")


def inline_creator(
    path: str, checkpoints: Checkpoints | None
) -> Callable[[], Awaitable[InlineConnection]]:
    """SQLAlchemy's ``async_creator`` for a SQLite file: a new inline connection, opened
    (on its thread) as the aiosqlite dialect opens its own (``check_same_thread=False``)."""

    async def create() -> InlineConnection:
        conn = InlineConnection(lambda: sqlite3.connect(path, check_same_thread=False), checkpoints)
        await conn  # opens it, on its thread
        return conn

    return create


#: The pragmas of an inline connection: never wait for a lock, never checkpoint.
INLINE_PRAGMAS = ("busy_timeout=0", "wal_autocheckpoint=0")

__all__ = [
    "BUSY_TIMEOUT_MS",
    "INLINE_PRAGMAS",
    "Checkpoints",
    "InlineConnection",
    "inline_creator",
    "is_busy",
    "on_own_thread",
]
