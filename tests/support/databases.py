"""Test databases: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

POSTGRES_ADMIN_URL = os.environ.get(
    "SPECOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}"
    await conn.close()
    return None


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A new, empty database on the test server; yields its URL."""
    name = f"specops_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'specops.db'}"
