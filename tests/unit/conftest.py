"""Fixtures shared by the unit tests: small contracts and their IO models."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from registry.contract import Contract, command, query
from registry.model import WireModel
from registry.registry import Registry
from specops.app import Server
from specops.operations import build_registry
from specops.settings import Settings
from storage.database import Database
from tests.support.databases import sqlite_url


class ThingInput(WireModel):
    thing_id: str
    note: str | None = None


class ThingOutput(WireModel):
    ok: bool


def contract_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "key": "things.doThing",
        "version": "1.0.0",
        "title": "Do thing",
        "description": "Does a thing",
        "goal": "Have the thing done",
        "context": "Tests",
        "owners": ["team-tests"],
        "input": ThingInput,
        "output": ThingOutput,
    }
    fields.update(overrides)
    return fields


Declare = Callable[..., Contract]


@pytest.fixture
def declare_command() -> Declare:
    """``declare_command(**overrides)``: a valid command contract with some fields changed."""
    return lambda **overrides: command(**contract_fields(**overrides))


@pytest.fixture
def declare_query() -> Declare:
    """``declare_query(**overrides)``: a valid query contract with some fields changed."""
    return lambda **overrides: query(**contract_fields(**overrides))


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The server's real registry, every operation installed (building it touches no
    database). Shared: tests that install more build a ``Registry()`` of their own."""
    db = Database(sqlite_url(tmp_path_factory.mktemp("server-registry")))
    return build_registry(db, Settings(extra_operations=""))


@pytest.fixture
async def server(database: Database) -> AsyncIterator[Server]:
    """A server built on each backend's fresh database, not started (no lifespan); test
    modules that need a started one define their own."""
    built = Server.build(Settings(DATABASE_URL=database.url))
    try:
        yield built
    finally:
        await built.close()
