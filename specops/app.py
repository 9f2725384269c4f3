"""Wiring: from settings to a running pipeline and ASGI app."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from starlette.applications import Starlette

from audit.log import AuditLog
from policy.api_keys import ApiKeyIdentity, ApiKeyStore
from policy.enforcer import CasbinAuthorizer
from policy.identity import BearerIdentity
from policy.jwt_tokens import ClaimNames, JwtVerifier
from policy.rate_limit import LimitsRateLimiter
from policy.store import PolicyStore
from registry.access import granted_rules
from registry.contract import Rule
from registry.invocation import Invocation, Outcome
from registry.pipeline import Pipeline
from registry.recording import waits_for_every_record
from registry.registry import Registry
from specops.operations import build_registry
from specops.settings import Settings
from storage import migrate
from storage.database import Database
from storage.idempotency import SqlIdempotencyStore
from transports.app import create_asgi_app
from transports.mcp import McpHttp

log = structlog.get_logger("specops.app")


@dataclass
class Server:
    """Everything one server process holds."""

    settings: Settings
    db: Database
    registry: Registry
    api_keys: ApiKeyStore
    #: Every transport's resolver: API keys, and signed tokens when configured.
    identity: BearerIdentity
    authorizer: CasbinAuthorizer
    audit: AuditLog
    pipeline: Pipeline

    @classmethod
    def build(cls, settings: Settings | None = None) -> Server:
        settings = settings or Settings()
        db = Database(settings.database_url)
        api_keys = ApiKeyStore(db)
        key_identity = ApiKeyIdentity(api_keys, cache_seconds=settings.identity_cache_seconds)
        identity = BearerIdentity(key_identity, jwt_verifier(settings))
        authorizer = CasbinAuthorizer(
            PolicyStore(db), refresh_seconds=settings.policy_refresh_seconds
        )
        registry = build_registry(db, settings, key_identity=key_identity, authorizer=authorizer)
        audit = AuditLog(db, durable_timeout_seconds=settings.audit.durable_timeout_seconds)
        pipeline = Pipeline(
            registry,
            identity=identity,
            authorizer=authorizer,
            idempotency=SqlIdempotencyStore(db),
            audit=audit,
            rate_limiter=LimitsRateLimiter(settings.rate_limit_storage),
            idempotency_wait_seconds=settings.idempotency_wait_seconds,
            audit_queries_when_unavailable=settings.audit.queries_when_unavailable,
            audit_wait_for_every_record=waits_for_every_record(
                settings.audit.wait_for_every_record, sqlite=db.is_sqlite
            ),
        )
        return cls(settings, db, registry, api_keys, identity, authorizer, audit, pipeline)

    @property
    def key_identity(self) -> ApiKeyIdentity:
        """The API key resolver (revoke through it: this process forgets the key at once)."""
        return self.identity.api_keys

    async def invoke(self, invocation: Invocation) -> Outcome:
        return await self.pipeline.invoke(invocation)

    async def start(self) -> None:
        """Record the commands that processes now gone left without an outcome as
        ``INTERRUPTED``, load the policy (seeding a new database from policy.csv) and warn
        of contract rules no policy line can satisfy. A database not yet migrated or
        unreachable is only logged: the policy then loads on first use, and /readyz tells."""
        try:
            await self.audit.close_interrupted()
        except Exception as exc:
            log.warning(
                "audit_attempts_not_closed", error=type(exc).__name__, detail=str(exc)[:200]
            )
        try:
            await self.authorizer.reload()
        except Exception as exc:
            log.warning("policy_not_loaded", error=type(exc).__name__, detail=str(exc)[:200])
            return
        for ref, rule in unsatisfiable_rules(self.registry, self.authorizer):
            log.warning(
                "policy_rule_unsatisfiable",
                operation=ref,
                rule=f"{rule.resource}:{rule.action}",
                hint="no policy line grants it to any role in any tenant",
            )

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
            require_auth=self.settings.mcp.require_auth,
            stateless=self.settings.mcp.stateless,
            json_response=self.settings.mcp.json_response,
            allowed_hosts=self.settings.mcp.allowed_hosts,
            allowed_origins=self.settings.mcp.allowed_origins,
        )

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            try:
                await self.start()
                async with mcp.run():  # a mounted app's lifespan does not run: the parent's does
                    yield
            finally:
                await self.close()

        return create_asgi_app(
            self.pipeline,
            readiness=self.readiness,
            lifespan=lifespan,
            mcp=mcp,
            graphql_introspection=self.settings.graphql_introspection_enabled,
            graphql_suggestions=self.settings.graphql_suggestions_enabled,
        )


def unsatisfiable_rules(registry: Registry, authorizer: CasbinAuthorizer) -> list[tuple[str, Rule]]:
    """``(contract ref, rule)`` for every rule of an installed contract that no loaded policy
    line grants to any role in any tenant (admin-only contracts: to a caller that also
    holds ``admin``, whose deny lines count too). Anonymous contracts need no grant."""
    found: list[tuple[str, Rule]] = []
    for op in registry.operations():
        contract = op.contract
        if contract.policy.auth == "anonymous":
            continue
        holds = ("admin",) if contract.policy.auth == "admin" else ()
        for rule in granted_rules(contract):
            if not authorizer.satisfiable(rule.resource, rule.action, with_roles=holds):
                found.append((contract.ref, rule))
    return found


def jwt_verifier(settings: Settings) -> JwtVerifier | None:
    """The verifier of signed bearer tokens the settings configure; None when they name no
    key (then only API keys are accepted)."""
    secret = settings.jwt.hs256_secret
    return JwtVerifier.configure(
        hs256_secret=secret.get_secret_value() if secret else None,
        public_key_file=settings.jwt.public_key_file,
        jwks_file=settings.jwt.jwks_file,
        issuer=settings.jwt.issuer,
        audience=settings.jwt.audience,
        claims=ClaimNames(
            subject=settings.jwt.subject_claim,
            tenant=settings.jwt.tenant_claim,
            roles=settings.jwt.roles_claim,
            kind=settings.jwt.kind_claim,
        ),
        leeway_seconds=settings.jwt.leeway_seconds,
        cache_seconds=settings.identity_cache_seconds,
    )


def freeze_startup_objects() -> None:
    """Move everything built so far (modules, schemas, models, the registry) out of the
    garbage collector's sight (why: docs/performance.md)."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app for ``uvicorn --factory specops.app:create_app``."""
    app = Server.build(settings).asgi()
    freeze_startup_objects()
    return app
