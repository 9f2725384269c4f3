"""One async SQLAlchemy engine for SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage.sqlite_files import BUSY_TIMEOUT_MS, Checkpoints

DEFAULT_URL = "sqlite+aiosqlite:///var/specops.db"


def normalize_url(url: str) -> str:
    """Accept the usual ``postgresql://`` and ``sqlite:///`` forms; pick async drivers."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


#: Every SQLite connection's settings.
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON")


def _pragmas_setter(*pragmas: str) -> Any:
    """A ``connect`` listener that sets ``pragmas`` on each new connection."""

    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    return set_pragmas


def sqlite_file(url: str | URL) -> str | None:
    """The file of a SQLite URL; None for an in-memory or ``file:`` URI database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path


class Database:
    """The engine plus the few things every part of the server asks of it."""

    def __init__(self, url: str = DEFAULT_URL, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        #: The SQLite file, if the database is one (not in memory).
        self.sqlite_path = path = sqlite_file(parsed)
        #: WAL checkpoints of a SQLite file for the audit writer (``audit.sqlite_appender``).
        self.checkpoints: Checkpoints | None = None
        pragmas = (*SQLITE_PRAGMAS, f"busy_timeout={BUSY_TIMEOUT_MS}")
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.checkpoints = Checkpoints(path)
        elif not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        #: This process' SQLite write transactions (``begin``, the audit writer's batches)
        #: take turns here rather than in SQLite's busy handler (docs/performance.md).
        self.write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _pragmas_setter(*pragmas))

    def connect(self) -> AsyncConnection:
        """``async with db.connect() as conn`` for reads."""
        return self.engine.connect()

    def scan(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """``async with db.scan() as conn`` for reads that may take long (the whole audit
        trail, say); the driver runs them off the event loop's thread."""
        return self.engine.connect()

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """``async with db.begin() as conn`` for a transaction that commits on success.
        On SQLite it first takes ``write_lock`` (see there)."""
        if self.write_lock is None:
            return self.engine.begin()
        return self._locked_begin(self.write_lock)

    @asynccontextmanager
    async def _locked_begin(self, lock: asyncio.Lock) -> AsyncIterator[AsyncConnection]:
        async with lock, self.engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.checkpoints is not None:
            await self.checkpoints.close()

    def safe_url(self) -> str:
        """The URL with any password masked, for logs and messages."""
        return make_url(self.url).render_as_string(hide_password=True)


__all__ = ["AsyncConnection", "Database", "normalize_url"]
