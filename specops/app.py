"""Wiring: from settings to a running pipeline and ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette

from audit.log import AuditLog
from policy.api_keys import ApiKeyIdentity, ApiKeyStore
from policy.enforcer import CasbinAuthorizer
from policy.rate_limit import LimitsRateLimiter
from registry.invocation import Invocation, Outcome
from registry.pipeline import Pipeline
from registry.registry import Registry
from specops.operations import build_registry
from specops.settings import Settings
from storage import migrate
from storage.database import Database
from storage.idempotency import SqlIdempotencyStore
from transports.app import create_asgi_app
from transports.mcp import McpHttp


@dataclass
class Server:
    """Everything one server process holds."""

    settings: Settings
    db: Database
    registry: Registry
    api_keys: ApiKeyStore
    identity: ApiKeyIdentity
    authorizer: CasbinAuthorizer
    audit: AuditLog
    pipeline: Pipeline

    @classmethod
    def build(cls, settings: Settings | None = None) -> Server:
        settings = settings or Settings()
        db = Database(settings.database_url)
        registry = build_registry(db, settings)
        api_keys = ApiKeyStore(db)
        identity = ApiKeyIdentity(api_keys, cache_seconds=settings.identity_cache_seconds)
        authorizer = CasbinAuthorizer()
        audit = AuditLog(db)
        pipeline = Pipeline(
            registry,
            identity=identity,
            authorizer=authorizer,
            idempotency=SqlIdempotencyStore(db),
            audit=audit,
            rate_limiter=LimitsRateLimiter(settings.rate_limit_storage),
            idempotency_wait_seconds=settings.idempotency_wait_seconds,
        )
        return cls(settings, db, registry, api_keys, identity, authorizer, audit, pipeline)

    async def invoke(self, invocation: Invocation) -> Outcome:
        return await self.pipeline.invoke(invocation)

    async def readiness(self) -> dict[str, str]:
        try:
            current = await migrate.is_current(self.db)
        except Exception:
            return {"database": "unreachable"}
        return {"database": "ok" if current else "schema not at head"}

    async def close(self) -> None:
        await self.audit.close()
        await self.db.dispose()

    def asgi(self) -> Starlette:
        mcp = McpHttp(
            self.pipeline,
            require_auth=self.settings.mcp_require_auth,
            stateless=self.settings.mcp_stateless,
            allowed_hosts=self.settings.mcp_allowed_hosts,
            allowed_origins=self.settings.mcp_allowed_origins,
        )

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            try:
                async with mcp.run():  # a mounted app's lifespan does not run: the parent's does
                    yield
            finally:
                await self.close()

        return create_asgi_app(self.pipeline, readiness=self.readiness, lifespan=lifespan, mcp=mcp)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app for ``uvicorn --factory specops.app:create_app``."""
    return Server.build(settings).asgi()
