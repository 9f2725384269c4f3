"""Configuration, from the environment only (and a .env file in development)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
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
    environment: Literal["development", "production", "test"] = "development"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graphql_introspection: bool | None = Field(
        None, description="GraphQL introspection; default: on except in production"
    )
    mcp_require_auth: bool = Field(True, description="false: /mcp accepts callers without a key")
    mcp_stateless: bool = Field(False, description="true: no MCP sessions (horizontal scaling)")
    mcp_allowed_hosts: list[str] | None = Field(None, description="JSON list; None: loopback")
    mcp_allowed_origins: list[str] | None = None
    identity_cache_seconds: float = 10.0
    rate_limit_storage: str = Field(
        "async+memory://", description="A `limits` async storage URI, e.g. async+redis://..."
    )
    extra_operations: str = Field(
        "",
        description="Comma-separated 'module:function' installers called as "
        "function(registry, db, settings) after the built-in operations",
    )
    idempotency_wait_seconds: float = 10.0

    @property
    def graphql_introspection_enabled(self) -> bool:
        if self.graphql_introspection is None:
            return self.environment != "production"
        return self.graphql_introspection
