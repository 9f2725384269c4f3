"""SQLite file helpers shared by the engine and the audit writer: the busy timeout, what
a busy refusal looks like, and WAL checkpoints run on a thread of their own.

The audit writer's event-loop connection never checkpoints by itself
(``wal_autocheckpoint=0``: a checkpoint flushes to disk and would stall the loop); the
rows it appends count towards the file's ``Checkpoints``, which runs a passive checkpoint
on its own thread every ``CHECKPOINT_WRITES`` writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor

#: How long a statement on a connection's own thread waits for another process' lock.
BUSY_TIMEOUT_MS = 10_000
#: Writes (commits, audit rows) between two WAL checkpoints.
CHECKPOINT_WRITES = 1000


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


__all__ = ["BUSY_TIMEOUT_MS", "CHECKPOINT_WRITES", "Checkpoints", "is_busy"]
