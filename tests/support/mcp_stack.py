"""A running specops server with the MCP endpoints (tests/support/mcp_app.py) on a free port,
plus direct access to its database (keys, audit rows)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy.api_keys import ApiKeyStore
from storage.database import Database
from tests.support.mcp_client import audit_rows
from tests.support.processes import ROOT, Running, free_port, wait_for

STRIPE_TEST_KEY = "sk_test_x"


def server_env(database_url: str, stripe_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_API_BASE": stripe_url,
        "SPECOPS_LOG_FORMAT": "json",
        "SPECOPS_LOG_LEVEL": "info",
    }


def start_mcp_app(tmp: Path, env: dict[str, str]) -> Running:
    """Migrate, then serve ``tests.support.mcp_app:create_app`` with uvicorn."""
    subprocess.run(
        [sys.executable, "-m", "specops.cli", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log_path = tmp / f"specops-mcp-{port}.log"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--factory", "tests.support.mcp_app:create_app"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/healthz", proc, timeout=60)
    return Running(url, proc, log_path)


@dataclass
class McpStack:
    url: str
    database_url: str
    env: dict[str, str]
    db: Database
    server: Running

    @classmethod
    @asynccontextmanager
    async def start(cls, tmp: Path, database_url: str, stripe_url: str) -> AsyncIterator[McpStack]:
        env = server_env(database_url, stripe_url)
        server = start_mcp_app(tmp, env)
        db = Database(database_url)
        try:
            yield cls(server.url, database_url, env, db, server)
        finally:
            server.stop()
            await db.dispose()

    async def key(self, tenant: str, user: str, roles: Sequence[str] = ("user",)) -> str:
        _, token = await ApiKeyStore(self.db).create(
            tenant_id=tenant, actor_id=user, roles=tuple(roles)
        )
        return token

    async def audit(self, request_id: str, *, wait: float = 5.0) -> list[dict[str, Any]]:
        return await audit_rows(self.db, request_id, wait=wait)
