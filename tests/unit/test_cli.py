"""The ``specops`` command, driven in-process with click's CliRunner on a real SQLite file.

CLI commands run their own event loop (``asyncio.run``), so these tests are synchronous;
the few database reads they make use ``asyncio.run`` too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from click.testing import CliRunner, Result
from sqlalchemy import inspect, select

from specops.cli import main
from storage import migrate
from storage.database import Database
from storage.tables import audit_events, metadata

OPERATION_KEYS = (
    "audit.getEvent",
    "audit.listEvents",
    "billing.capturePayment",
    "billing.createInvoice",
    "billing.getInvoice",
    "billing.listInvoices",
    "keys.createKey",
    "keys.listKeys",
    "keys.revokeKey",
    "policy.grant",
    "policy.listRules",
    "policy.revoke",
    "system.ping",
)


class Cli:
    """Runs ``specops`` against one database, with nothing else from the environment."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.env: dict[str, str | None] = {
            "DATABASE_URL": database_url,
            "SPECOPS_DATABASE_URL": None,
            "SPECOPS_LOG_FORMAT": "json",
            "SPECOPS_LOG_LEVEL": "info",
            "SPECOPS_API_KEY": None,
            "STRIPE_SECRET_KEY": None,
            "STRIPE_API_BASE": None,
            "SPECOPS_EXTRA_OPERATIONS": None,
        }

    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        runner = CliRunner(env={**self.env, **(env or {})})
        return runner.invoke(main, list(args), catch_exceptions=False)

    def ok(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        result = self(*args, env=env)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def key(self, tenant: str = "acme", user: str = "alice", role: str = "user") -> str:
        result = self.ok("keys", "create", "--tenant", tenant, "--user", user, "--role", role)
        return result.stdout.strip()

    def audit_rows(self) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            db = Database(self.database_url)
            try:
                async with db.connect() as conn:
                    rows = await conn.execute(select(audit_events).order_by(audit_events.c.id))
                    return [dict(r) for r in rows.mappings().all()]
            finally:
                await db.dispose()

        return asyncio.run(read())


def sqlite_file_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def empty_cli(tmp_path: Path) -> Cli:
    """The CLI on a SQLite file that does not exist yet."""
    return Cli(sqlite_file_url(tmp_path / "empty" / "specops.db"))


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The CLI on a migrated SQLite file shared by this module's tests."""
    runner = Cli(sqlite_file_url(tmp_path_factory.mktemp("cli") / "specops.db"))
    runner.ok("db", "upgrade")
    yield runner


def problem(result: Result) -> dict[str, Any]:
    """The problem document a failed ``call`` printed on stderr. JSON log lines go to
    stderr too, one per line; the problem is the indented document between "{" and "}"."""
    lines = result.stderr.splitlines()
    assert "{" in lines, result.stderr
    start = lines.index("{")
    end = lines.index("}", start)
    body: dict[str, Any] = json.loads("\n".join(lines[start : end + 1]))
    assert {"code", "status", "title", "detail"} <= body.keys(), body
    return body


# -- db -------------------------------------------------------------------------------------


def test_db_current_on_an_empty_database_is_none(empty_cli: Cli) -> None:
    result = empty_cli.ok("db", "current")
    assert result.stdout.strip() == "None"


def test_db_upgrade_creates_the_schema_and_prints_the_revision(empty_cli: Cli) -> None:
    head = migrate.head_revision()
    assert head is not None

    result = empty_cli.ok("db", "upgrade")

    assert result.stdout.strip() == f"database at {head}"
    assert empty_cli.ok("db", "current").stdout.strip() == head

    async def tables() -> set[str]:
        db = Database(empty_cli.database_url)
        try:
            async with db.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await db.dispose()

    assert set(metadata.tables) <= asyncio.run(tables())


def test_db_upgrade_twice_is_a_no_op(empty_cli: Cli) -> None:
    head = migrate.head_revision()
    empty_cli.ok("db", "upgrade")
    again = empty_cli.ok("db", "upgrade")
    assert again.stdout.strip() == f"database at {head}"


# -- ops ------------------------------------------------------------------------------------


def test_ops_list_prints_every_installed_operation_with_its_version(cli: Cli) -> None:
    lines = cli.ok("ops", "list").stdout.splitlines()
    assert lines[0].split() == ["KEY", "VERSION", "KIND", "STABILITY", "AUTH", "TITLE"]
    listed = [line.split() for line in lines[1:] if line.strip()]
    rows = {row[0]: row for row in listed}  # the last line of a key: its latest version
    assert set(rows) == set(OPERATION_KEYS)
    for key in OPERATION_KEYS:
        assert rows[key][1] == ("1.1.0" if key == "keys.listKeys" else "1.0.0"), rows[key]
    # a retired version is listed too, and says so
    assert ["keys.listKeys", "1.0.0", "(deprecated)", "query"] in [row[:4] for row in listed]
    assert rows["billing.capturePayment"][2:5] == ["command", "stable", "user"]
    assert rows["system.ping"][2] == "query"


def test_ops_show_prints_the_whole_contract(cli: Cli) -> None:
    doc = json.loads(cli.ok("ops", "show", "billing.capturePayment").stdout)

    assert doc["key"] == "billing.capturePayment"
    assert doc["version"] == "1.0.0"
    assert doc["kind"] == "command"
    assert doc["goal"] == "Capture funds from customer payment method"
    assert doc["owners"] == ["team-billing"]
    assert doc["policy"] == {
        "auth": "user",
        "rules": [["invoice", "pay", "owner"]],
        "rateLimit": {"rpm": 30, "per": "actor"},
    }
    assert [e["code"] for e in doc["errors"]] == [
        "INVOICE_NOT_FOUND",
        "INVOICE_ALREADY_PAID",
        "PAYMENT_IN_PROGRESS",
        "AMOUNT_MISMATCH",
        "CARD_DECLINED",
        "PAYMENT_METHOD_INVALID",
    ]
    by_code = {e["code"]: e for e in doc["errors"]}
    assert by_code["INVOICE_NOT_FOUND"]["status"] == 404
    assert by_code["PAYMENT_IN_PROGRESS"]["retryable"] is True
    properties = doc["input"]["properties"]
    assert {"invoiceId", "amount", "currency", "paymentMethodId"} <= set(properties)
    assert not {"invoice_id", "payment_method_id"} & set(properties)
    assert set(doc["input"]["required"]) >= {"invoiceId", "paymentMethodId"}
    assert "transactionId" in doc["output"]["properties"]


@pytest.mark.parametrize(
    ("key", "rpm"),
    [
        ("billing.capturePayment", 30),
        ("keys.createKey", 30),
        ("keys.revokeKey", 60),
        ("policy.grant", 60),
        ("policy.revoke", 60),
    ],
)
def test_sensitive_commands_are_rate_limited_per_actor_by_default(
    cli: Cli, key: str, rpm: int
) -> None:
    doc = json.loads(cli.ok("ops", "show", key).stdout)
    assert doc["policy"]["rateLimit"] == {"rpm": rpm, "per": "actor"}


def test_rate_limits_are_overridden_by_the_operator(cli: Cli) -> None:
    overrides = '{"billing.capturePayment": 120, "keys.createKey": null, "system.ping": 600}'
    env: dict[str, str | None] = {"SPECOPS_RATE_LIMITS": overrides}

    def limit(key: str) -> Any:
        return json.loads(cli.ok("ops", "show", key, env=env).stdout)["policy"]["rateLimit"]

    assert limit("billing.capturePayment") == {"rpm": 120, "per": "actor"}
    assert limit("keys.createKey") is None
    assert limit("system.ping") == {"rpm": 600, "per": "actor"}
    assert limit("policy.grant") == {"rpm": 60, "per": "actor"}


def test_a_rate_limit_for_an_unknown_operation_is_refused(cli: Cli) -> None:
    with pytest.raises(ValueError, match=r"SPECOPS_RATE_LIMITS names 'nope\.op'"):
        cli("ops", "show", "system.ping", env={"SPECOPS_RATE_LIMITS": '{"nope.op": 5}'})


def test_ops_show_with_an_explicit_version(cli: Cli) -> None:
    doc = json.loads(cli.ok("ops", "show", "system.ping", "--version", "1.0.0").stdout)
    assert (doc["key"], doc["version"]) == ("system.ping", "1.0.0")


def test_ops_show_of_an_unknown_operation_fails_clearly(cli: Cli) -> None:
    result = cli("ops", "show", "nope")
    assert result.exit_code != 0
    assert "no operation nope" in result.stderr
    assert result.stdout == ""


# -- keys -----------------------------------------------------------------------------------


def test_keys_create_list_revoke(cli: Cli) -> None:
    created = cli.ok("keys", "create", "--tenant", "acme", "--user", "alice", "--role", "user")
    token = created.stdout.strip()
    assert token.startswith("sk_live_")
    assert created.stdout.count("sk_live_") == 1
    assert created.stdout.splitlines() == [token]
    key_id = token.removeprefix("sk_live_").split("_", 1)[0]

    listing = cli.ok("keys", "list")
    line = next(li for li in listing.stdout.splitlines() if li.startswith(key_id))
    assert line.split() == [key_id, "acme", "alice", "user", "user", "*", "active"]
    secret = token.removeprefix(f"sk_live_{key_id}_")
    assert secret not in listing.output
    assert token not in listing.output
    assert "sk_live_" not in listing.output

    ping = cli.ok("call", "system.ping", "--api-key", token)
    assert json.loads(ping.stdout)["actorId"] == "alice"

    revoked = cli.ok("keys", "revoke", key_id)
    assert revoked.stdout.strip() == f"revoked {key_id}"
    line = next(li for li in cli.ok("keys", "list").stdout.splitlines() if li.startswith(key_id))
    assert line.split()[-1] == "revoked"

    refused = cli("call", "system.ping", "--api-key", token)
    assert refused.exit_code == 1
    assert problem(refused)["code"] == "UNAUTHENTICATED"
    assert refused.stdout == ""

    again = cli("keys", "revoke", key_id)
    assert again.exit_code != 0
    assert f"no active key {key_id}" in again.stderr


def test_keys_create_scoped_to_operations(cli: Cli) -> None:
    create = ("keys", "create", "--tenant", "acme", "--user", "bot", "--role", "user")
    scope = ("--operation", "system.ping", "--operation", "billing.getInvoice")
    token = cli.ok(*create, *scope).stdout.strip()
    key_id = token.removeprefix("sk_live_").split("_", 1)[0]
    line = next(li for li in cli.ok("keys", "list").stdout.splitlines() if li.startswith(key_id))
    assert line.split()[5] == "billing.getInvoice,system.ping"

    assert json.loads(cli.ok("call", "system.ping", "--api-key", token).stdout)["actorId"] == "bot"
    refused = cli("call", "billing.listInvoices", "--api-key", token)
    assert refused.exit_code == 1
    assert problem(refused)["code"] == "FORBIDDEN"

    unknown = cli(*create, "--operation", "billing.nope")
    assert unknown.exit_code == 2
    assert "no operation billing.nope" in unknown.stderr


def test_keys_list_filters_by_tenant(cli: Cli) -> None:
    other = cli.key(tenant="globex", user="bob")
    other_id = other.removeprefix("sk_live_").split("_", 1)[0]
    mine = cli.key(tenant="initech", user="carol")
    mine_id = mine.removeprefix("sk_live_").split("_", 1)[0]
    listing = cli.ok("keys", "list", "--tenant", "initech").stdout
    assert mine_id in listing
    assert other_id not in listing


def test_keys_create_needs_tenant_user_and_role(cli: Cli) -> None:
    result = cli("keys", "create", "--tenant", "acme", "--user", "alice")
    assert result.exit_code == 2
    assert "--role" in result.stderr


# -- call -----------------------------------------------------------------------------------


def test_call_prints_the_output_and_audits_with_transport_cli(cli: Cli) -> None:
    token = cli.key()
    before = {row["id"] for row in cli.audit_rows()}

    result = cli.ok("call", "system.ping", "--input", '{"message":"hi"}', "--api-key", token)

    assert json.loads(result.stdout) == {"message": "hi", "actorId": "alice", "tenantId": "acme"}
    new = [row for row in cli.audit_rows() if row["id"] not in before]
    assert len(new) == 1
    row = new[0]
    assert (row["transport"], row["client"]) == ("cli", "cli")
    assert (row["tenant_id"], row["actor_id"], row["actor_kind"]) == ("acme", "alice", "user")
    assert (row["operation_key"], row["operation_version"]) == ("system.ping", "1.0.0")
    assert (row["decision"], row["outcome"], row["status"]) == ("allow", "OK", 200)
    assert row["credential_id"] == token.removeprefix("sk_live_").split("_", 1)[0]
    # the secret never reaches the audit table
    assert all(token not in str(value) for value in row.values())


def test_call_with_malformed_json_input_is_a_malformed_request(cli: Cli) -> None:
    token = cli.key()
    result = cli("call", "system.ping", "--input", "{not json", "--api-key", token)
    assert result.exit_code == 1
    assert result.stdout == ""
    body = problem(result)
    assert (body["code"], body["status"]) == ("MALFORMED_REQUEST", 400)
    assert "--input" in body["detail"]
    assert body["operation"]["key"] == "system.ping"
    assert body["requestId"]


def test_call_with_invalid_input_lists_the_issues(cli: Cli) -> None:
    token = cli.key()
    result = cli("call", "system.ping", "--input", '{"message": 5}', "--api-key", token)
    assert result.exit_code == 1
    body = problem(result)
    assert body["code"] == "INVALID_INPUT"
    assert [i["path"] for i in body["issues"]] == ["message"]


def test_call_without_a_key_on_a_user_contract_is_unauthenticated(cli: Cli) -> None:
    result = cli("call", "system.ping", "--input", '{"message":"hi"}')
    assert result.exit_code == 1
    assert result.stdout == ""
    body = problem(result)
    assert (body["code"], body["status"]) == ("UNAUTHENTICATED", 401)


def test_call_with_an_unknown_key_is_unauthenticated(cli: Cli) -> None:
    result = cli("call", "system.ping", "--api-key", "sk_live_nope_notasecret")
    assert result.exit_code == 1
    assert problem(result)["code"] == "UNAUTHENTICATED"


def test_call_reads_the_key_from_specops_api_key(cli: Cli) -> None:
    token = cli.key(user="dave")
    result = cli.ok(
        "call", "system.ping", "--input", '{"message":"env"}', env={"SPECOPS_API_KEY": token}
    )
    assert json.loads(result.stdout) == {"message": "env", "actorId": "dave", "tenantId": "acme"}


def test_call_of_an_unknown_operation_is_op_not_found(cli: Cli) -> None:
    token = cli.key()
    result = cli("call", "billing.nope", "--api-key", token)
    assert result.exit_code == 1
    body = problem(result)
    assert (body["code"], body["status"]) == ("OP_NOT_FOUND", 404)


def test_call_of_an_unknown_version_is_op_not_found(cli: Cli) -> None:
    token = cli.key()
    result = cli("call", "system.ping", "--version", "9.9.9", "--api-key", token)
    assert result.exit_code == 1
    assert problem(result)["code"] == "OP_NOT_FOUND"


def test_call_without_stripe_configured_names_the_setting(cli: Cli) -> None:
    token = cli.key(user="erin")
    invoice = json.loads(
        cli.ok(
            "call",
            "billing.createInvoice",
            "--input",
            '{"amount": "12.50", "currency": "usd"}',
            "--api-key",
            token,
        ).stdout
    )
    payment = {
        "invoiceId": invoice["id"],
        "amount": "12.50",
        "currency": "usd",
        "paymentMethodId": "pm_card_visa",
    }
    result = cli(
        "call", "billing.capturePayment", "--input", json.dumps(payment), "--api-key", token
    )
    assert result.exit_code == 1
    body = problem(result)
    assert body["code"] == "UPSTREAM_UNAVAILABLE"
    assert "STRIPE_SECRET_KEY" in body["detail"]


# -- openapi --------------------------------------------------------------------------------


def test_openapi_prints_a_valid_openapi_3_1_document(cli: Cli) -> None:
    doc = json.loads(cli.ok("openapi").stdout)
    assert doc["openapi"] == "3.1.0"
    for key in OPERATION_KEYS:
        assert f"/api/ops/{key}" in doc["paths"]
        assert f"/api/ops/{key}/v1.0.0" in doc["paths"]
    assert "post" in doc["paths"]["/api/ops/billing.capturePayment"]
    # validated against the OpenAPI 3.1 meta-schema (raises on an invalid document)
    schemathesis.openapi.from_dict(doc).validate()


def test_help_lists_every_command(cli: Cli) -> None:
    out = cli.ok("--help").stdout
    for command in ("serve", "ops", "call", "openapi", "keys", "db"):
        assert command in out


def test_call_with_a_json_non_object_input_is_invalid_input(cli: Cli) -> None:
    token = cli.key()
    result = cli("call", "system.ping", "--input", "[1, 2]", "--api-key", token)
    assert result.exit_code == 1
    body = problem(result)
    assert (body["code"], body["status"]) == ("INVALID_INPUT", 422)


# -- logging --------------------------------------------------------------------------------


def test_every_call_logs_its_invocation_as_a_json_line_on_stderr(cli: Cli) -> None:
    for _ in range(2):
        result = cli("call", "system.ping")
        assert result.exit_code == 1
        lines = [json.loads(li) for li in result.stderr.splitlines() if li.startswith('{"')]
        events = [li for li in lines if li.get("event") == "invocation"]
        assert len(events) == 1, result.stderr
        assert events[0]["transport"] == "cli"
        assert events[0]["outcome"] == "UNAUTHENTICATED"
        assert events[0]["level"] == "warning"
