"""The audit writer's SQLite path: a whole batch in one synchronous call.

Through SQLAlchemy and aiosqlite every statement of a batch (lock the head, insert, move
the head, commit) is a hop to the driver's thread and back. Here a batch is one call on a
stdlib ``sqlite3`` connection, made on the event loop's own thread: a batch of hundreds
of records takes a millisecond or two, and a thread would cost more than it saves. The
GIL is taken back after every row SQLite steps through, so a thread of its own waits for
the busy event loop row after row (up to the switch interval each time), and a busy
server's records pile up.

The event loop must never wait for another process, so that connection has no busy
timeout: when another process holds SQLite's write lock (the CLI, another uvicorn
worker), the batch is written on a helper thread instead, on a connection that waits
for the lock up to ``BUSY_TIMEOUT_MS``. The event loop's connection never checkpoints by
itself: the rows it appends count towards the file's ``Checkpoints``
(``storage.sqlite_files``), which runs them on a thread of its own.

The transaction is the one of ``audit.log``: ``BEGIN IMMEDIATE`` (SQLite's write lock,
so every process writing to the file joins one chain, and the head can be read with a
plain SELECT), store command attempts, read the chain head, insert the chained rows,
move the head, delete the attempts those records end, commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from audit.chain import chained_rows
from audit.sql_store import (
    PROBE,
    READ_HEAD,
    Batch,
    attempt_statements,
    head_update_statement,
    insert_statement,
)
from storage.database import Database
from storage.sqlite_files import BUSY_TIMEOUT_MS, Checkpoints, is_busy
from storage.times import sqlite_time_of, utc_now


def bind_common_values_directly() -> None:
    """Make the stdlib driver bind ``None`` and ``bool`` without its adaptation search.

    ``sqlite3`` binds ``int``, ``float``, ``str`` and ``bytearray`` at once, but looks
    for an adapter for anything else: it asks its ``PrepareProtocol`` type for
    ``__adapt__``, and that failed lookup raises and clears an ``AttributeError``. An
    audit row has a few NULLs and a boolean, so that search cost about a microsecond per
    value, a fifth of the row. Registered adapters are found first: ``None`` maps to
    ``None`` (``{}.get``, a C function) and ``bool`` to ``int``, which the driver would
    bind as NULL and as 0 or 1 anyway, so nothing stored changes, for any connection of
    the process. Idempotent."""
    sqlite3.register_adapter(type(None), _NOTHING.get)
    sqlite3.register_adapter(bool, int)


#: ``_NOTHING.get(value)`` is None for any value.
_NOTHING: dict[object, None] = {}


class RecordsRefused(Exception):
    """The insert failed: maybe a record's fault (``__cause__`` says how)."""


class HeadMissing(LookupError):
    """``audit_chain_head`` has no row: the schema is not migrated."""


class SqliteAppender:
    """Appends chained batches to the ``audit_events`` table of one SQLite file."""

    def __init__(
        self,
        path: str,
        *,
        insert: str,
        insert_attempt: str,
        upsert_owner: str,
        close_attempt: str,
        read_head: str,
        update_head: str,
        probe: str,
        checkpoints: Checkpoints | None = None,
    ):
        self.path = path
        self._insert = insert
        self._insert_attempt = insert_attempt
        self._upsert_owner = upsert_owner
        self._close_attempt = close_attempt
        self._read_head = read_head
        self._update_head = update_head
        self._probe = probe
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        bind_common_values_directly()
        #: The event loop's connection (never waits for a lock, never checkpoints) and
        #: the helper thread's (waits for the lock).
        self._conn: sqlite3.Connection | None = None
        self._thread_conn: sqlite3.Connection | None = None
        self._checkpoints = checkpoints
        #: Batches the event loop found locked by another process, written by the thread.
        self.deferred = 0

    async def append(self, batch: Batch) -> None:
        """Store ``batch`` in one transaction. Raises ``RecordsRefused`` when an insert
        failed, ``HeadMissing``, or the driver's error otherwise."""
        try:
            self._append(self._loop_connection(), batch)
        except _Locked:
            self.deferred += 1
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self._append_waiting, batch
            )
        if self._checkpoints is not None:
            self._checkpoints.note(len(batch.contents) + len(batch.attempts) + len(batch.closed))

    async def probe(self) -> None:
        """Raise unless both audit tables answer."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._run_probe)

    async def reset(self) -> None:
        """Drop the connections; the next call opens new ones."""
        self._close_loop_connection()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)

    async def close(self) -> None:
        await self.reset()
        self._executor.shutdown(wait=False)

    # -- on the event loop's thread -------------------------------------------------------

    def _loop_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # another process' lock, and checkpoints: the helper thread's
            self._conn = self._open("busy_timeout=0", "wal_autocheckpoint=0")
        return self._conn

    def _close_loop_connection(self) -> None:
        _close(self._conn)
        self._conn = None

    def _open(self, *pragmas: str) -> sqlite3.Connection:
        """A connection of ours to the file, synchronous as the engine's (WAL: the
        file's), with ``pragmas`` besides."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in ("synchronous=NORMAL", *pragmas):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def _append(self, conn: sqlite3.Connection, batch: Batch) -> None:
        """One transaction: take the write lock, store the process' row and the attempts,
        read the head, insert the chained rows, move the head, delete the attempts the
        records end. Raises ``_Locked`` when the lock is taken and ``conn`` does not
        wait."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise _Locked() from exc
            raise
        try:
            if batch.owner is not None:
                conn.execute(self._upsert_owner, batch.owner)
            if batch.attempts:
                _insert(conn, self._insert_attempt, batch.attempts)
            if batch.contents:
                head = conn.execute(self._read_head).fetchone()
                if head is None:
                    raise HeadMissing("audit_chain_head has no row: is the schema migrated?")
                rows, seq, prev_hash = chained_rows(
                    batch.contents, int(head[0]), str(head[1]), sqlite_time_of
                )
                _insert(conn, self._insert, rows)
                now = sqlite_time_of(utc_now().isoformat(timespec="microseconds"))
                conn.execute(self._update_head, (seq, prev_hash, now))
            if batch.closed:
                conn.executemany(self._close_attempt, batch.closed)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    # -- on the helper thread -------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._thread_conn is None:
            self._thread_conn = self._open(f"busy_timeout={BUSY_TIMEOUT_MS}")
        return self._thread_conn

    def _append_waiting(self, batch: Batch) -> None:
        self._append(self._connection(), batch)

    def _run_probe(self) -> None:
        try:
            if self._connection().execute(self._probe).fetchone() is None:
                raise HeadMissing("audit_chain_head has no row")
        except sqlite3.Error:
            self._close()
            raise

    def _close(self) -> None:
        _close(self._thread_conn)
        self._thread_conn = None


def _insert(conn: sqlite3.Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """``executemany``; ``RecordsRefused`` when SQLite refuses a row (not the store)."""
    try:
        conn.executemany(statement, rows)
    except sqlite3.OperationalError:
        raise  # the store (locked, gone, full), not the records
    except sqlite3.Error as exc:
        raise RecordsRefused() from exc


def _close(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


class _Locked(Exception):
    """Another process holds the write lock (the event loop's connection does not wait)."""


def sqlite_store(db: Database) -> SqliteAppender | None:
    """The inline writer for a SQLite file; None for other databases (and in-memory
    SQLite, which only the engine's own connection sees)."""
    if db.sqlite_path is None:
        return None
    insert_attempt, upsert_owner, close_attempt = attempt_statements("qmark")
    return SqliteAppender(
        db.sqlite_path,
        insert=insert_statement("qmark"),
        insert_attempt=insert_attempt,
        upsert_owner=upsert_owner,
        close_attempt=close_attempt,
        read_head=READ_HEAD,
        update_head=head_update_statement("qmark"),
        probe=PROBE,
        checkpoints=db.checkpoints,
    )
