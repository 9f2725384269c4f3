"""Fixtures: real databases (SQLite, PostgreSQL), localstripe, and running servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from specops.logging import configure_logging
from storage import migrate
from storage.database import Database
from tests.support.databases import postgres_available, postgres_database, sqlite_url
from tests.support.processes import start_localstripe
from tests.support.stack import Stack
from tests.support.tokens import JWT_ENV

configure_logging("console", "warning")

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A localstripe server on 127.0.0.1, for the real stripe SDK."""
    running = start_localstripe(tmp_path_factory.mktemp("localstripe"))
    try:
        yield running.url
    finally:
        running.stop()


async def _database_url(backend: str, tmp: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield sqlite_url(tmp)
        return
    reason = await postgres_available()
    if reason:
        pytest.skip(reason)
    async with postgres_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database of each backend, for in-process tests."""
    async for url in _database_url(request.param, tmp_path):
        db = Database(url)
        await migrate.upgrade(db)
        try:
            yield db
        finally:
            await db.dispose()


async def _running_stack(
    name: str,
    backend: str,
    localstripe: str,
    tmp_path_factory: pytest.TempPathFactory,
    env: dict[str, str | None] | None = None,
    factory: str | None = None,
) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"{name}-{backend}")
    async for url in _database_url(backend, tmp):
        async with Stack.start(tmp, url, localstripe, env=env, factory=factory) as running:
            yield running


@pytest.fixture(scope="session", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, localstripe: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A running specops server (uvicorn, a free port) on each backend, with localstripe."""
    async for running in _running_stack("stack", request.param, localstripe, tmp_path_factory):
        yield running


#: The test-only ``testing.*`` operations, a short wait for a running duplicate of an
#: idempotent command (so a second one answers 409 busy), no identity cache (so a revoked
#: key is refused at once), and no Stripe credentials (payments answer
#: UPSTREAM_UNAVAILABLE while every other operation works).
TESTING_ENV: dict[str, str | None] = {
    "SPECOPS_EXTRA_OPERATIONS": "tests.support.extra_ops:install",
    "SPECOPS_IDEMPOTENCY_WAIT_SECONDS": "0.2",
    "SPECOPS_IDENTITY_CACHE_SECONDS": "0",
    "STRIPE_SECRET_KEY": None,
}


@pytest.fixture(scope="session", params=BACKENDS)
async def testing_stack(
    request: pytest.FixtureRequest, localstripe: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A running server configured by TESTING_ENV: it also offers the ``testing.*``
    operations of ``tests.support.extra_ops`` (callable with role ``admin``), and has no
    Stripe credentials."""
    async for running in _running_stack(
        "testing", request.param, localstripe, tmp_path_factory, TESTING_ENV
    ):
        yield running


@pytest.fixture(scope="session", params=BACKENDS)
async def variants(
    request: pytest.FixtureRequest, localstripe: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A running server of ``tests.support.variants_app``: the real app plus variants of
    its GraphQL and MCP endpoints (``/graphql-locked``, ``/mcp-stateless``, ``/mcp-open``),
    shared by the GraphQL and MCP end-to-end tests."""
    async for running in _running_stack(
        "variants",
        request.param,
        localstripe,
        tmp_path_factory,
        factory="tests.support.variants_app:create_app",
    ):
        yield running


@pytest.fixture(scope="session", params=BACKENDS)
async def identity_stack(
    request: pytest.FixtureRequest, localstripe: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A running server that also accepts HS256 bearer tokens (``tests.support.tokens``),
    with the default identity cache (so revocations must clear it)."""
    async for running in _running_stack(
        "identity", request.param, localstripe, tmp_path_factory, JWT_ENV
    ):
        yield running
