"""A running specops server plus direct access to its database, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from policy.api_keys import ApiKeyStore
from storage import migrate
from storage.database import Database
from storage.tables import audit_events
from tests.support.processes import Running, start_specops

STRIPE_TEST_KEY = "sk_test_specops_e2e_0123456789"


async def audit_rows(
    db: Database, request_id: str, *, count: int = 1, wait: float = 5.0
) -> list[dict[str, Any]]:
    """The audit rows of one request, in the order written, once ``count`` of them are
    there (query records are written asynchronously) or ``wait`` seconds have passed."""
    deadline = time.monotonic() + wait
    while True:
        async with db.connect() as conn:
            rows = await conn.execute(
                select(audit_events)
                .where(audit_events.c.request_id == request_id)
                .order_by(audit_events.c.id)
            )
            found = [dict(r) for r in rows.mappings().all()]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


@dataclass
class Stack:
    url: str
    database_url: str
    stripe_url: str
    #: The variables set for the server process, over this process' environment.
    env: dict[str, str]
    db: Database
    server: Running
    #: Every token ``key()`` handed out, so tests can check none of them leaks.
    issued: list[str] = field(default_factory=list)

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        tmp: Path,
        database_url: str,
        stripe_url: str,
        env: Mapping[str, str | None] | None = None,
        factory: str | None = None,
    ) -> AsyncIterator[Stack]:
        """Start a server: ``specops serve``, or given ``factory`` (``module:function``),
        uvicorn serving that app factory on a database migrated here first.

        ``env`` adds or overrides variables of the server process; a value of None leaves
        the variable out (``{"STRIPE_SECRET_KEY": None}`` starts a server without Stripe
        credentials)."""
        settings: dict[str, str | None] = {
            "DATABASE_URL": database_url,
            "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
            "STRIPE_API_BASE": stripe_url,
            "SPECOPS_EXTRA_OPERATIONS": None,
            "SPECOPS_LOG_FORMAT": "json",
            **(env or {}),
        }
        # start_specops layers these over os.environ; an empty value is as good as unset
        # for a variable this environment happens to define.
        server_env = {
            name: value if value is not None else ""
            for name, value in settings.items()
            if value is not None or name in os.environ
        }
        db = Database(database_url)
        try:
            if factory is not None:
                await migrate.upgrade(db)  # in-process: a CLI would import everything again
            server = start_specops(tmp, server_env, factory)
            try:
                yield cls(server.url, database_url, stripe_url, server_env, db, server)
            finally:
                server.stop()
        finally:
            await db.dispose()

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)

    async def key(
        self, tenant: str, user: str, roles: Sequence[str] = ("user",), kind: str = "user"
    ) -> str:
        _, token = await ApiKeyStore(self.db).create(
            tenant_id=tenant,
            actor_id=user,
            roles=tuple(roles),
            kind=kind,  # type: ignore[arg-type]
        )
        self.issued.append(token)
        return token

    async def audit(
        self, request_id: str, *, count: int = 1, wait: float = 5.0
    ) -> list[dict[str, Any]]:
        """The audit rows of one request (see ``audit_rows``)."""
        return await audit_rows(self.db, request_id, count=count, wait=wait)
