"""Configuration, from the environment only (and a .env file in development)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.database import DEFAULT_URL


class Settings(BaseSettings):
    """Every setting the server reads. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(env_prefix="SPECOPS_", extra="ignore")

    database_url: str = Field(
        DEFAULT_URL, validation_alias=AliasChoices("DATABASE_URL", "SPECOPS_DATABASE_URL")
    )
    stripe_secret_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("STRIPE_SECRET_KEY")
    )
    stripe_webhook_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("STRIPE_WEBHOOK_SECRET")
    )
    stripe_api_base: str | None = Field(None, validation_alias=AliasChoices("STRIPE_API_BASE"))
    stripe_timeout_seconds: float = Field(
        20.0, gt=0, description="How long the Stripe client waits for an answer"
    )
    stripe_max_network_retries: int = Field(
        2, ge=0, le=10, description="Retries of a Stripe request, under the same idempotency key"
    )
    environment: Literal["development", "production", "test"] = "development"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graphql_introspection: bool | None = Field(
        None, description="GraphQL introspection; default: on except in production"
    )
    mcp_require_auth: bool = Field(True, description="false: /mcp accepts callers without a key")
    mcp_stateless: bool = Field(False, description="true: no MCP sessions (horizontal scaling)")
    mcp_json_response: bool = Field(
        False, description="true: answer tools/call with JSON instead of an event stream"
    )
    mcp_allowed_hosts: list[str] | None = Field(None, description="JSON list; None: loopback")
    mcp_allowed_origins: list[str] | None = None
    identity_cache_seconds: float = 10.0
    policy_refresh_seconds: float = Field(
        1.0,
        ge=0,
        description="How often, at most, a decision checks whether the stored policy changed "
        "(another process granted or revoked); 0: before every decision",
    )
    jwt_hs256_secret: SecretStr | None = Field(
        None, description="HS256 shared secret (32+ bytes): accept JWTs signed with it"
    )
    jwt_public_key_file: str | None = Field(
        None, description="PEM public key file: accept JWTs it verifies (RSA: RS256, P-256: ES256)"
    )
    jwt_jwks_file: str | None = Field(
        None, description="JWKS file: accept JWTs signed by its keys, chosen by kid"
    )
    jwt_issuer: str | None = Field(None, description="Required iss of JWTs")
    jwt_audience: str | None = Field(None, description="Required aud of JWTs")
    jwt_subject_claim: str = "sub"
    jwt_tenant_claim: str = "tenant"
    jwt_roles_claim: str = Field("roles", description="A list, or a space-separated string")
    jwt_kind_claim: str = Field("kind", description="user (default), service or agent")
    jwt_leeway_seconds: float = Field(30.0, ge=0, le=300, description="Clock skew for exp/nbf")
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
    audit_queries_when_unavailable: Literal["refuse", "log-only"] = Field(
        "refuse",
        description="When the audit store is unavailable, commands are always refused; "
        "queries are refused too (refuse) or run with the structlog line only (log-only)",
    )
    audit_wait_for_every_record: bool | None = Field(
        None,
        description="Queries and refusals answer once their audit record is committed "
        "(with the commands' group commit), while the store works; false: at once, their "
        "records gathered for a later commit (lower latency when idle, no such guarantee); "
        "unset: true on SQLite, false on PostgreSQL (whose commit waits for a WAL flush)",
    )
    audit_durable_timeout_seconds: float = Field(
        5.0, gt=0, description="How long a command waits for its audit record to commit"
    )
    audit_platform_tenant: str | None = Field(
        None,
        description="Callers of this tenant granted audit:read_any_tenant may read every "
        "tenant's audit events; unset: everyone sees only their own tenant",
    )

    @field_validator(
        "jwt_hs256_secret",
        "jwt_public_key_file",
        "jwt_jwks_file",
        "jwt_issuer",
        "jwt_audience",
        "audit_platform_tenant",
        "audit_wait_for_every_record",
        mode="before",
    )
    @classmethod
    def empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

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
