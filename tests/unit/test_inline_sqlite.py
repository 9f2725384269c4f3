"""SQLite statements run inline on the event loop's thread, and on the connection's own
thread only while another process holds the write lock, or for long reads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import inline_sqlite
from storage.database import Database
from storage.inline_sqlite import InlineConnection


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'inline.db'}")
    async with database.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    try:
        yield database
    finally:
        await database.dispose()


async def _driver(conn: AsyncConnection) -> InlineConnection:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, InlineConnection)
    return driver


async def _threads_of_statements(conn: AsyncConnection, *statements: str) -> set[int]:
    """The threads SQLite ran ``statements`` on."""
    driver = await _driver(conn)
    seen: set[int] = set()
    driver._conn.set_trace_callback(lambda _sql: seen.add(threading.get_ident()))
    try:
        for statement in statements:
            await conn.execute(text(statement))
    finally:
        driver._conn.set_trace_callback(None)
    return seen


async def test_statements_run_on_the_event_loops_thread(db: Database) -> None:
    async with db.begin() as conn:
        threads = await _threads_of_statements(conn, "INSERT INTO t VALUES (1)", "SELECT x FROM t")
    assert threads == {threading.get_ident()}
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1


async def test_long_reads_run_on_the_connections_own_thread(db: Database) -> None:
    async with db.scan() as conn:
        threads = await _threads_of_statements(conn, "SELECT x FROM t")
    assert threads and threading.get_ident() not in threads
    async with db.connect() as conn:  # and the next checkout is inline again
        assert await _threads_of_statements(conn, "SELECT 1") == {threading.get_ident()}


async def test_a_write_waits_on_its_thread_while_another_process_holds_the_lock(
    db: Database, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> InlineConnection:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            return await _driver(conn)

    clock = asyncio.create_task(ticker())
    writing = asyncio.create_task(write())
    try:
        await asyncio.sleep(0.3)
        assert not writing.done()  # waiting for the lock...
        assert ticks >= 10  # ...without holding up the event loop
        other.execute("COMMIT")
        driver = await asyncio.wait_for(writing, 5)
    finally:
        clock.cancel()
        other.close()
    assert driver.deferred >= 1
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [2]


async def test_a_lock_held_beyond_the_busy_timeout_refuses_the_write(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sqlite, "BUSY_TIMEOUT_MS", 100)
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Exception, match="database is locked"):
            async with db.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (3)"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with db.begin() as conn:  # the connection still works, inline again
        await conn.execute(text("INSERT INTO t VALUES (4)"))
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [4]


async def test_connections_leave_checkpoints_to_a_thread_every_so_many_writes(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    checkpoints = database.checkpoints
    assert checkpoints is not None
    checkpoints.every = 3
    try:
        async with database.connect() as conn:
            pragma = await conn.execute(text("PRAGMA wal_autocheckpoint"))
            assert pragma.scalar_one() == 0
        async with database.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        for x in range(2):
            async with database.begin() as conn:
                await conn.execute(text(f"INSERT INTO t VALUES ({x})"))
        for _ in range(100):
            if checkpoints.done:
                break
            await asyncio.sleep(0.01)
        assert checkpoints.done == 1
    finally:
        await database.dispose()


def test_in_memory_databases_keep_the_plain_driver() -> None:
    assert Database("sqlite://").checkpoints is None
    assert Database("sqlite:///file:inline-test.db?uri=true").checkpoints is None


def test_busy_means_another_connections_lock() -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
    assert inline_sqlite.is_busy(busy)
    assert not inline_sqlite.is_busy(sqlite3.OperationalError("no such table: t"))
