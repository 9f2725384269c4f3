"""Settings: every documented environment variable, and where it lands in the groups."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from specops.settings import Settings, StripeSettings

README = Path(__file__).resolve().parents[2] / "README.md"

#: (variable, value set, path in Settings, value read)
VARIABLES: list[tuple[str, str, str, Any]] = [
    ("DATABASE_URL", "sqlite+aiosqlite:///x.db", "database_url", "sqlite+aiosqlite:///x.db"),
    ("STRIPE_SECRET_KEY", "sk_test_1", "stripe.secret_key", "sk_test_1"),
    ("STRIPE_API_BASE", "http://127.0.0.1:1", "stripe.api_base", "http://127.0.0.1:1"),
    ("SPECOPS_STRIPE_TIMEOUT_SECONDS", "7.5", "stripe.timeout_seconds", 7.5),
    ("SPECOPS_STRIPE_MAX_NETWORK_RETRIES", "4", "stripe.max_network_retries", 4),
    ("SPECOPS_LOG_FORMAT", "json", "log_format", "json"),
    ("SPECOPS_LOG_LEVEL", "warning", "log_level", "warning"),
    ("SPECOPS_POLICY_REFRESH_SECONDS", "0", "policy_refresh_seconds", 0.0),
    ("SPECOPS_ENVIRONMENT", "production", "environment", "production"),
    ("SPECOPS_GRAPHQL_INTROSPECTION", "true", "graphql_introspection", True),
    ("SPECOPS_RATE_LIMITS", '{"system.ping": 5}', "rate_limits", {"system.ping": 5}),
    ("SPECOPS_RATE_LIMIT_STORAGE", "memory://", "rate_limit_storage", "memory://"),
    ("SPECOPS_MCP_STATELESS", "true", "mcp.stateless", True),
    ("SPECOPS_MCP_JSON_RESPONSE", "true", "mcp.json_response", True),
    ("SPECOPS_MCP_REQUIRE_AUTH", "false", "mcp.require_auth", False),
    ("SPECOPS_MCP_ALLOWED_HOSTS", '["ops.example.com"]', "mcp.allowed_hosts", ["ops.example.com"]),
    ("SPECOPS_MCP_ALLOWED_ORIGINS", '["https://a.example"]', "mcp.allowed_origins",
     ["https://a.example"]),
    ("SPECOPS_EXTRA_OPERATIONS", "a.b:c", "extra_operations", "a.b:c"),
    ("SPECOPS_IDENTITY_CACHE_SECONDS", "3", "identity_cache_seconds", 3.0),
    ("SPECOPS_IDEMPOTENCY_WAIT_SECONDS", "2", "idempotency_wait_seconds", 2.0),
    ("SPECOPS_JWT_HS256_SECRET", "s" * 32, "jwt.hs256_secret", "s" * 32),
    ("SPECOPS_JWT_PUBLIC_KEY_FILE", "/k.pem", "jwt.public_key_file", "/k.pem"),
    ("SPECOPS_JWT_JWKS_FILE", "/k.jwks", "jwt.jwks_file", "/k.jwks"),
    ("SPECOPS_JWT_ISSUER", "https://issuer", "jwt.issuer", "https://issuer"),
    ("SPECOPS_JWT_AUDIENCE", "specops", "jwt.audience", "specops"),
    ("SPECOPS_JWT_SUBJECT_CLAIM", "uid", "jwt.subject_claim", "uid"),
    ("SPECOPS_JWT_TENANT_CLAIM", "org", "jwt.tenant_claim", "org"),
    ("SPECOPS_JWT_ROLES_CLAIM", "groups", "jwt.roles_claim", "groups"),
    ("SPECOPS_JWT_KIND_CLAIM", "typ", "jwt.kind_claim", "typ"),
    ("SPECOPS_JWT_LEEWAY_SECONDS", "5", "jwt.leeway_seconds", 5.0),
    ("SPECOPS_AUDIT_QUERIES_WHEN_UNAVAILABLE", "log-only", "audit.queries_when_unavailable",
     "log-only"),
    ("SPECOPS_AUDIT_WAIT_FOR_EVERY_RECORD", "false", "audit.wait_for_every_record", False),
    ("SPECOPS_AUDIT_DURABLE_TIMEOUT_SECONDS", "9", "audit.durable_timeout_seconds", 9.0),
    ("SPECOPS_AUDIT_PLATFORM_TENANT", "platform", "audit.platform_tenant", "platform"),
]  # fmt: skip


def read(settings: Settings, path: str) -> Any:
    value: Any = settings
    for name in path.split("."):
        value = getattr(value, name)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found |= leaves(kind, f"{prefix}{name}.")
        else:
            found.add(prefix + name)
    return found


def documented_variables() -> set[str]:
    """The variables the README documents: its configuration table, and the ``SPECOPS_*``
    names its text mentions (``SPECOPS_JWT_SUBJECT_CLAIM`` / ``_TENANT_CLAIM`` included)."""
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = [row.split("|")[1] for row in section.splitlines() if row.startswith("| `")]
    names: set[str] = set()
    for cell in first_cells:  # `A` / `B`, or `SPECOPS_JWT_SUBJECT_CLAIM` / `_TENANT_CLAIM`
        full = re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)
        names |= set(full)
        names |= {full[0].rsplit("_", 2)[0] + tail for tail in re.findall(r"`(_[A-Z_]+)`", cell)}
    names |= set(re.findall(r"\b(SPECOPS_[A-Z0-9_]+[A-Z0-9])\b", text))
    return names - {"SPECOPS_API_KEY", "SPECOPS_FUZZ_EXAMPLES"}  # read by the CLI, tests


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable, *_ in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("SPECOPS_DATABASE_URL", raising=False)
    return monkeypatch


def test_every_variable_lands_in_its_group(environment: pytest.MonkeyPatch) -> None:
    for variable, value, _, _ in VARIABLES:
        environment.setenv(variable, value)
    settings = Settings()
    landed = {variable: read(settings, path) for variable, _, path, _ in VARIABLES}
    assert landed == {variable: expected for variable, _, _, expected in VARIABLES}
    assert "sk_test_1" not in repr(settings) + str(settings.model_dump())  # secrets stay hidden


def test_every_documented_variable_is_read_and_every_setting_has_one() -> None:
    assert documented_variables() <= {variable for variable, *_ in VARIABLES}
    assert {path for _, _, path, _ in VARIABLES} == leaves(Settings)


def test_defaults_and_empty_optional_values(environment: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.jwt.roles_claim, defaults.mcp.require_auth) == ("roles", True)
    assert (defaults.stripe.timeout_seconds, defaults.audit.durable_timeout_seconds) == (20, 5)
    for variable in (
        "SPECOPS_JWT_HS256_SECRET",
        "SPECOPS_JWT_ISSUER",
        "SPECOPS_AUDIT_WAIT_FOR_EVERY_RECORD",
        "SPECOPS_AUDIT_PLATFORM_TENANT",
    ):
        environment.setenv(variable, "")
    settings = Settings()
    assert settings.jwt.hs256_secret is None and settings.jwt.issuer is None
    assert settings.audit.wait_for_every_record is None
    assert settings.audit.platform_tenant is None
    environment.setenv("SPECOPS_DATABASE_URL", "sqlite+aiosqlite:///prefixed.db")
    assert Settings().database_url == "sqlite+aiosqlite:///prefixed.db"


def test_code_may_pass_aliased_settings_by_name(environment: pytest.MonkeyPatch) -> None:
    stripe = StripeSettings(secret_key="sk_test_2", api_base="http://127.0.0.1:2")
    assert (read(Settings(stripe=stripe), "stripe.secret_key"), stripe.api_base) == (
        "sk_test_2",
        "http://127.0.0.1:2",
    )
    assert Settings(database_url="sqlite+aiosqlite:///named.db").database_url.endswith("named.db")
