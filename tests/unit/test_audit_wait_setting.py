"""Which records the server's pipeline waits for: SPECOPS_AUDIT_WAIT_FOR_EVERY_RECORD, and
its default by database (building a server connects to nothing, so no PostgreSQL is
needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specops.app import Server
from specops.settings import Settings

POSTGRES_URL = "postgresql://specops@127.0.0.1:5432/not_connected"


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'wait.db'}"


@pytest.mark.parametrize(
    ("backend", "setting", "waits"),
    [
        ("sqlite", None, True),
        ("postgresql", None, False),
        ("sqlite", "false", False),
        ("postgresql", "true", True),
        ("sqlite", "", True),  # set but empty: unset, as with the other optional settings
        ("postgresql", "", False),
    ],
)
async def test_queries_wait_for_their_record_by_default_on_sqlite_only(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    setting: str | None,
    waits: bool,
) -> None:
    if setting is None:
        monkeypatch.delenv("SPECOPS_AUDIT_WAIT_FOR_EVERY_RECORD", raising=False)
    else:
        monkeypatch.setenv("SPECOPS_AUDIT_WAIT_FOR_EVERY_RECORD", setting)
    url = sqlite_url(tmp_path) if backend == "sqlite" else POSTGRES_URL
    server = Server.build(Settings(DATABASE_URL=url))
    try:
        assert server.db.is_sqlite == (backend == "sqlite")
        assert server.pipeline.recorder.wait_for_every_record is waits
    finally:
        await server.close()
