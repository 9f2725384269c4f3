"""A SQLite file locked by another process: writes wait for the lock (up to the busy
timeout) without holding up the event loop, then go through or are refused."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import database as database_module
from storage.database import Database
from storage.sqlite_files import is_busy


async def _database(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await _database(tmp_path / "locks.db")
    try:
        yield database
    finally:
        await database.dispose()


async def test_a_write_waits_for_another_process_lock_without_holding_up_the_loop(
    db: Database, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "locks.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> None:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))

    clock = asyncio.create_task(ticker())
    writing = asyncio.create_task(write())
    try:
        await asyncio.sleep(0.3)
        assert not writing.done()  # waiting for the lock...
        assert ticks >= 10  # ...without holding up the event loop
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
    finally:
        clock.cancel()
        other.close()
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [2]


async def test_a_lock_held_beyond_the_busy_timeout_refuses_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_MS", 100)
    db = await _database(tmp_path / "locks.db")
    other = sqlite3.connect(tmp_path / "locks.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Exception, match="database is locked"):
            async with db.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (3)"))
        other.execute("ROLLBACK")
        async with db.begin() as conn:  # the connection still works
            await conn.execute(text("INSERT INTO t VALUES (4)"))
        async with db.connect() as conn:
            assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [4]
    finally:
        other.close()
        await db.dispose()


def test_busy_means_another_connections_lock() -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
    assert is_busy(busy)
    assert not is_busy(sqlite3.OperationalError("no such table: t"))
