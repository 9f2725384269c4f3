"""The Alembic migrations against real, EMPTY databases (SQLite file and PostgreSQL).

Besides upgrade/downgrade round trips, the migrated schema is compared with
``storage.tables.metadata`` through Alembic's autogenerate, so a table change made
without a migration fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from specops.app import Server
from specops.settings import Settings
from storage import migrate
from storage.database import Database, normalize_url
from storage.tables import api_keys, metadata
from tests.support.databases import postgres_available, postgres_database, sqlite_url
from tests.support.processes import free_port

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
VERSION_TABLE = "alembic_version"


@pytest.fixture(params=BACKENDS)
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a database with no tables at all, of each backend."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        assert not (tmp_path / "specops.db").exists()
        yield url
        return
    reason = await postgres_available()
    if reason:
        pytest.skip(f"PostgreSQL migrations not tested: {reason}")
    async with postgres_database() as url:
        yield url


@pytest.fixture
async def empty_db(empty_url: str) -> AsyncIterator[Database]:
    db = Database(empty_url)
    try:
        yield db
    finally:
        await db.dispose()


async def table_names(db: Database) -> set[str]:
    async with db.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def schema_diff(db: Database) -> list[Any]:
    """What autogenerate would write into a new migration: [] when the database's schema
    is exactly ``storage.tables.metadata``."""

    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "render_as_batch": conn.dialect.name == "sqlite",
            },
        )
        return list(compare_metadata(context, metadata))

    async with db.connect() as conn:
        return await conn.run_sync(compare)


async def insert_key(db: Database) -> str:
    key_id = uuid.uuid4().hex[:12]
    async with db.begin() as conn:
        await conn.execute(
            api_keys.insert().values(
                id=key_id,
                tenant_id="acme",
                actor_id="alice",
                kind="user",
                roles="user",
                secret_hash="0" * 64,
                description="kept across upgrades",
                created_at=datetime.now(UTC),
            )
        )
    return key_id


async def key_ids(db: Database) -> list[str]:
    async with db.connect() as conn:
        return list((await conn.execute(select(api_keys.c.id))).scalars())


def revisions_base_to_head() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


# -- the revision history itself -------------------------------------------------------------


def test_the_history_has_one_head_and_no_branches() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert script.get_heads() == [migrate.head_revision()]
    assert migrate.head_revision() is not None
    assert len(script.get_bases()) == 1
    revisions = revisions_base_to_head()
    assert revisions[-1] == migrate.head_revision()
    assert len(revisions) == len(set(revisions))


# -- against empty databases ----------------------------------------------------------------


async def test_an_empty_database_has_no_revision_and_no_tables(empty_db: Database) -> None:
    assert await migrate.current_revision(empty_db) is None
    assert await migrate.is_current(empty_db) is False
    assert await table_names(empty_db) == set()


async def test_upgrade_reaches_head_and_creates_every_table(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)

    assert await migrate.current_revision(empty_db) == migrate.head_revision()
    assert await migrate.is_current(empty_db) is True
    assert await table_names(empty_db) == {*metadata.tables, VERSION_TABLE}


async def test_the_migrated_schema_is_exactly_the_table_metadata(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)
    assert await schema_diff(empty_db) == []


async def test_compare_catches_a_table_change_without_a_migration(empty_db: Database) -> None:
    """The check above is not vacuous: an empty database differs from the metadata."""
    diff = await schema_diff(empty_db)
    added = {d[1].name for d in diff if d[0] == "add_table"}
    assert added == set(metadata.tables)


async def test_indexes_of_the_metadata_exist_after_upgrade(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)

    def indexes(conn: Connection) -> set[tuple[str, str]]:
        inspector = inspect(conn)
        return {
            (table, ix["name"])
            for table in metadata.tables
            for ix in inspector.get_indexes(table)
            if ix["name"]
        }

    async with empty_db.connect() as conn:
        found = await conn.run_sync(indexes)
    expected = {(t.name, ix.name) for t in metadata.tables.values() for ix in t.indexes}
    assert expected
    assert expected <= found


async def test_upgrade_twice_is_a_no_op_and_keeps_rows(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)
    key_id = await insert_key(empty_db)

    await migrate.upgrade(empty_db)
    await migrate.upgrade(empty_db, "head")

    assert await migrate.current_revision(empty_db) == migrate.head_revision()
    assert await key_ids(empty_db) == [key_id]
    assert await schema_diff(empty_db) == []


async def test_downgrade_to_base_then_upgrade_again(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)
    await insert_key(empty_db)

    await migrate.downgrade(empty_db, "base")

    assert await migrate.current_revision(empty_db) is None
    assert await migrate.is_current(empty_db) is False
    assert await table_names(empty_db) <= {VERSION_TABLE}

    await migrate.upgrade(empty_db)

    assert await migrate.current_revision(empty_db) == migrate.head_revision()
    assert await table_names(empty_db) == {*metadata.tables, VERSION_TABLE}
    assert await key_ids(empty_db) == []
    assert await schema_diff(empty_db) == []


async def test_every_revision_upgrades_and_downgrades_one_step_at_a_time(
    empty_db: Database,
) -> None:
    revisions = revisions_base_to_head()
    for revision in revisions:
        await migrate.upgrade(empty_db, revision)
        assert await migrate.current_revision(empty_db) == revision
    for previous in [*reversed(revisions[:-1]), None]:
        await migrate.downgrade(empty_db, "-1")
        assert await migrate.current_revision(empty_db) == previous
    assert await table_names(empty_db) <= {VERSION_TABLE}


# -- readiness ------------------------------------------------------------------------------


async def server_readiness(url: str) -> dict[str, str]:
    server = Server.build(Settings(DATABASE_URL=url))
    try:
        return await server.readiness()
    finally:
        await server.close()


async def test_readiness_reports_an_unmigrated_database(empty_url: str) -> None:
    assert await server_readiness(empty_url) == {"database": "schema not at head"}


async def test_readiness_reports_ok_at_head(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()
    assert await server_readiness(empty_url) == {"database": "ok"}


async def test_readiness_reports_a_database_behind_head(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        await migrate.upgrade(db)
        await migrate.downgrade(db, "base")
    finally:
        await db.dispose()
    assert await server_readiness(empty_url) == {"database": "schema not at head"}


async def test_readiness_reports_an_unreachable_database() -> None:
    url = f"postgresql://specops@127.0.0.1:{free_port()}/nowhere"
    assert await server_readiness(url) == {"database": "unreachable"}


async def test_settings_take_the_database_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, empty_url: str
) -> None:
    monkeypatch.delenv("SPECOPS_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", empty_url)
    assert Settings().database_url == empty_url
    server = Server.build()
    try:
        assert server.db.url == normalize_url(empty_url)
        assert await server.readiness() == {"database": "schema not at head"}
    finally:
        await server.close()


async def test_counting_rows_needs_the_schema(empty_db: Database) -> None:
    """Sanity check of the fixtures: the database really starts empty, so a query on a
    table fails until it is migrated."""
    with pytest.raises(DBAPIError, match="api_keys"):
        async with empty_db.connect() as conn:
            await conn.execute(select(func.count()).select_from(api_keys))
    await migrate.upgrade(empty_db)
    async with empty_db.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(api_keys))).scalar() == 0
