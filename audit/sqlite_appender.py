"""The audit writer's SQLite path: a whole batch in one call, on a thread of its own.

Through SQLAlchemy and aiosqlite every statement of a batch (lock the head, insert, move
the head, commit) is a hop to the driver's thread and back; here the batch is one hop,
made on a stdlib ``sqlite3`` connection that only this thread uses. The transaction is
the one of ``audit.log``: ``BEGIN IMMEDIATE`` (SQLite's write lock, so every process
writing to the file joins one chain, and the head can be read with a plain SELECT), read
the chain head, insert the chained rows, move the head, commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from audit.chain import Content, chained_rows

#: How long a batch waits for another process' write lock before the store counts as down.
BUSY_TIMEOUT_MS = 10_000


class RecordsRefused(Exception):
    """The insert failed: maybe a record's fault (``__cause__`` says how)."""


class HeadMissing(LookupError):
    """``audit_chain_head`` has no row: the schema is not migrated."""


def sqlite_time(at: datetime) -> str:
    """A naive UTC time in SQLAlchemy's SQLite DATETIME storage format."""
    return at.isoformat(sep=" ", timespec="microseconds")


class SqliteAppender:
    """Appends chained batches to the ``audit_events`` table of one SQLite file."""

    def __init__(self, path: str, *, insert: str, read_head: str, update_head: str, probe: str):
        self.path = path
        self._insert = insert
        self._read_head = read_head
        self._update_head = update_head
        self._probe = probe
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def append(self, contents: list[Content]) -> None:
        """Chain and insert ``contents`` in one transaction. Raises ``RecordsRefused``
        when the insert failed, ``HeadMissing``, or the driver's error otherwise."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._append, contents)

    async def probe(self) -> None:
        """Raise unless both audit tables answer."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._run_probe)

    async def reset(self) -> None:
        """Drop the connection; the next call opens a new one."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)

    async def close(self) -> None:
        await self.reset()
        self._executor.shutdown(wait=False)

    # -- on the appender's thread ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")  # as the engine's (WAL: the file's)
            self._conn = conn
        return self._conn

    def _append(self, contents: list[Content]) -> None:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute(self._read_head).fetchone()
            if head is None:
                raise HeadMissing("audit_chain_head has no row: is the schema migrated?")
            rows, seq, prev_hash = chained_rows(contents, int(head[0]), str(head[1]), sqlite_time)
            try:
                conn.executemany(self._insert, rows)
            except sqlite3.OperationalError:
                raise  # the store (locked, gone, full), not the records
            except sqlite3.Error as exc:
                raise RecordsRefused() from exc
            now = sqlite_time(datetime.now(UTC).replace(tzinfo=None))
            conn.execute(self._update_head, (seq, prev_hash, now))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _run_probe(self) -> None:
        try:
            if self._connection().execute(self._probe).fetchone() is None:
                raise HeadMissing("audit_chain_head has no row")
        except sqlite3.Error:
            self._close()
            raise

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
