"""What the ``specops`` command groups share: running async work on a server or a database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from specops.app import Server
from specops.settings import Settings
from storage.database import Database

T = TypeVar("T")


def run_on_server(work: Callable[[Server], Awaitable[T]]) -> T:
    """Build a server (no HTTP) on the configured database, run ``work`` on it, close it."""

    async def main() -> T:
        server = Server.build()
        try:
            return await work(server)
        finally:
            await server.close()

    return asyncio.run(main())


def run_on_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the configured database alone (no server), run ``work`` on it, close it."""

    async def main() -> T:
        db = Database(Settings().database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())
