"""Test-only: the specops app plus the GraphQL endpoints, and a running server with them.

    python -m uvicorn --factory tests.support.graphql_app:create_app --host 127.0.0.1 --port N

One process serves two endpoints over one pipeline, so one server covers the settings:

    /graphql          the defaults (introspection on, default limits)
    /graphql-locked   production-like: introspection off, tight limits (LOCKED_LIMITS)

The routes are put first, so they answer even once transports/app.py mounts /graphql too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from policy.api_keys import ApiKeyStore
from specops.app import Server
from specops.logging import configure_logging
from specops.settings import Settings
from storage import migrate
from storage.database import Database
from storage.tables import audit_events
from tests.support.processes import ROOT, Running, free_port, wait_for
from transports.graphql import GraphQLLimits, GraphQLTransport

LOCKED_LIMITS = GraphQLLimits(max_depth=2, max_aliases=2, max_root_fields=2)
STRIPE_TEST_KEY = "sk_test_x"


def create_app() -> Starlette:
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    server = Server.build(settings)
    app = server.asgi()
    endpoints = [
        GraphQLTransport(server.pipeline),
        GraphQLTransport(
            server.pipeline, path="/graphql-locked", introspection=False, limits=LOCKED_LIMITS
        ),
    ]
    app.router.routes[0:0] = [route for endpoint in endpoints for route in endpoint.routes()]
    return app


def start_graphql_app(tmp: Path, env: dict[str, str]) -> Running:
    """Serve ``create_app`` with uvicorn on a free port (the database must be migrated)."""
    port = free_port()
    log_path = tmp / f"specops-graphql-{port}.log"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--factory", "tests.support.graphql_app:create_app"),
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
class GraphQLStack:
    """A running server with the GraphQL endpoints, and its database (keys, audit rows)."""

    url: str
    db: Database
    server: Running

    @classmethod
    @asynccontextmanager
    async def start(
        cls, tmp: Path, database_url: str, stripe_url: str
    ) -> AsyncIterator[GraphQLStack]:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
            "STRIPE_API_BASE": stripe_url,
            "SPECOPS_EXTRA_OPERATIONS": "",
            "SPECOPS_LOG_FORMAT": "json",
            "SPECOPS_LOG_LEVEL": "info",
        }
        db = Database(database_url)
        await migrate.upgrade(db)  # in-process: a CLI subprocess would import everything again
        server = start_graphql_app(tmp, env)
        try:
            yield cls(server.url, db, server)
        finally:
            server.stop()
            await db.dispose()

    async def key(self, tenant: str, user: str, roles: Sequence[str] = ("user",)) -> str:
        _, token = await ApiKeyStore(self.db).create(
            tenant_id=tenant, actor_id=user, roles=tuple(roles)
        )
        return token

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def audit(
        self, request_id: str, *, count: int = 1, wait: float = 5.0
    ) -> list[dict[str, Any]]:
        """The audit rows of one request, once ``count`` of them are there (query records
        are written asynchronously) or ``wait`` seconds have passed."""
        deadline = time.monotonic() + wait
        while True:
            async with self.db.connect() as conn:
                rows = await conn.execute(
                    select(audit_events)
                    .where(audit_events.c.request_id == request_id)
                    .order_by(audit_events.c.id)
                )
                found = [dict(r) for r in rows.mappings().all()]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)
