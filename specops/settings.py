"""Configuration, from the environment only.

Settings are grouped by owner (``settings.jwt``, ``.mcp``, ``.audit``, ``.stripe``); each
group reads its variables under its own prefix, so every variable keeps its flat name
(``SPECOPS_JWT_ISSUER`` is ``settings.jwt.issuer``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.database import DEFAULT_URL


def _empty_is_unset(value: object) -> object:
    return None if value == "" else value


#: An optional setting for which an empty variable means unset.
Unset = BeforeValidator(_empty_is_unset)


class JwtSettings(BaseSettings):
    """Signed bearer tokens: ``SPECOPS_JWT_*``."""

    model_config = SettingsConfigDict(env_prefix="SPECOPS_JWT_", extra="ignore")

    hs256_secret: Annotated[SecretStr | None, Unset] = Field(
        None, description="HS256 shared secret (32+ bytes): accept JWTs signed with it"
    )
    public_key_file: Annotated[str | None, Unset] = Field(
        None, description="PEM public key file: accept JWTs it verifies (RSA: RS256, P-256: ES256)"
    )
    jwks_file: Annotated[str | None, Unset] = Field(
        None, description="JWKS file: accept JWTs signed by its keys, chosen by kid"
    )
    issuer: Annotated[str | None, Unset] = Field(None, description="Required iss of JWTs")
    audience: Annotated[str | None, Unset] = Field(None, description="Required aud of JWTs")
    subject_claim: str = "sub"
    tenant_claim: str = "tenant"
    roles_claim: str = Field("roles", description="A list, or a space-separated string")
    kind_claim: str = Field("kind", description="user (default), service or agent")
    leeway_seconds: float = Field(30.0, ge=0, le=300, description="Clock skew for exp/nbf")


class McpSettings(BaseSettings):
    """The MCP endpoint at /mcp: ``SPECOPS_MCP_*``."""

    model_config = SettingsConfigDict(env_prefix="SPECOPS_MCP_", extra="ignore")

    require_auth: bool = Field(True, description="false: /mcp accepts callers without a key")
    stateless: bool = Field(False, description="true: no MCP sessions (horizontal scaling)")
    json_response: bool = Field(
        False, description="true: answer tools/call with JSON instead of an event stream"
    )
    allowed_hosts: list[str] | None = Field(None, description="JSON list; None: loopback")
    allowed_origins: list[str] | None = None


class AuditSettings(BaseSettings):
    """The audit trail: ``SPECOPS_AUDIT_*``."""

    model_config = SettingsConfigDict(env_prefix="SPECOPS_AUDIT_", extra="ignore")

    queries_when_unavailable: Literal["refuse", "log-only"] = Field(
        "refuse",
        description="When the audit store is unavailable, commands are always refused; "
        "queries are refused too (refuse) or run with the structlog line only (log-only)",
    )
    wait_for_every_record: Annotated[bool | None, Unset] = Field(
        None,
        description="Queries and refusals answer once their audit record is committed "
        "(with the commands' group commit), while the store works; false: at once, their "
        "records gathered for a later commit; unset: true on SQLite, false on PostgreSQL "
        "(see docs/performance.md)",
    )
    durable_timeout_seconds: float = Field(
        5.0, gt=0, description="How long a command waits for its audit record to commit"
    )
    platform_tenant: Annotated[str | None, Unset] = Field(
        None,
        description="Callers of this tenant granted audit:read_any_tenant may read every "
        "tenant's audit events; unset: everyone sees only their own tenant",
    )


class StripeSettings(BaseSettings):
    """The Stripe client: ``STRIPE_SECRET_KEY``, ``STRIPE_API_BASE``, ``SPECOPS_STRIPE_*``."""

    model_config = SettingsConfigDict(
        env_prefix="SPECOPS_STRIPE_", extra="ignore", populate_by_name=True
    )

    secret_key: SecretStr | None = Field(None, validation_alias=AliasChoices("STRIPE_SECRET_KEY"))
    api_base: str | None = Field(None, validation_alias=AliasChoices("STRIPE_API_BASE"))
    timeout_seconds: float = Field(
        20.0, gt=0, description="How long the Stripe client waits for an answer"
    )
    max_network_retries: int = Field(
        2, ge=0, le=10, description="Retries of a Stripe request, under the same idempotency key"
    )


class Settings(BaseSettings):
    """Every setting the server reads. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(env_prefix="SPECOPS_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        DEFAULT_URL, validation_alias=AliasChoices("DATABASE_URL", "SPECOPS_DATABASE_URL")
    )
    environment: Literal["development", "production", "test"] = "development"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graphql_introspection: bool | None = Field(
        None, description="GraphQL introspection; default: on except in production"
    )
    identity_cache_seconds: float = 10.0
    policy_refresh_seconds: float = Field(
        1.0,
        ge=0,
        description="How often, at most, a decision checks whether the stored policy changed "
        "(another process granted or revoked); 0: before every decision",
    )
    rate_limit_storage: str = Field(
        "async+memory://", description="A `limits` async storage URI, e.g. async+redis://..."
    )
    rate_limits: dict[str, Annotated[int, Field(ge=1)] | None] = Field(
        default_factory=dict,
        description="Calls a minute per operation key, replacing what its contract declares "
        '(JSON, e.g. {"billing.capturePayment": 120}; null: no limit)',
    )
    extra_operations: str = Field(
        "",
        description="Comma-separated 'module:function' installers called as "
        "function(registry, db, settings) after the built-in operations",
    )
    idempotency_wait_seconds: float = 10.0
    jwt: JwtSettings = Field(default_factory=JwtSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    stripe: StripeSettings = Field(default_factory=StripeSettings)

    @property
    def graphql_introspection_enabled(self) -> bool:
        if self.graphql_introspection is None:
            return self.environment != "production"
        return self.graphql_introspection

    @property
    def graphql_suggestions_enabled(self) -> bool:
        """GraphQL validation errors that suggest names ("Did you mean ...?"): never in
        production, nor where introspection is off."""
        return self.environment != "production" and self.graphql_introspection_enabled
