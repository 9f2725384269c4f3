"""Schema migrations (Alembic), run on the server's own async engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from storage.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    head: str | None = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head


async def current_revision(db: Database) -> str | None:
    """The revision the database is at; None for an empty database."""

    def read(conn: Connection) -> str | None:
        revision: str | None = MigrationContext.configure(conn).get_current_revision()
        return revision

    async with db.connect() as conn:
        return await conn.run_sync(read)


async def _run(db: Database, step: Callable[[Config, str], None], revision: str) -> None:
    """Run an Alembic command on the server's own engine, in one transaction."""
    config = alembic_config()

    def run(conn: Connection) -> None:
        config.attributes["connection"] = conn
        step(config, revision)

    async with db.begin() as conn:
        await conn.run_sync(run)


async def upgrade(db: Database, revision: str = "head") -> None:
    """Apply pending migrations up to ``revision``."""
    await _run(db, command.upgrade, revision)


async def downgrade(db: Database, revision: str) -> None:
    """Revert to ``revision`` (used by tests of the migrations themselves)."""
    await _run(db, command.downgrade, revision)


async def is_current(db: Database) -> bool:
    return await current_revision(db) == head_revision()
