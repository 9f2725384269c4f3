"""``specops policy``: check (explain), lint, grant, revoke, list and import, driven with
click's CliRunner on a real, migrated SQLite file per test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy.enforcer import POLICY_PATH
from tests.unit.test_cli import Cli, sqlite_file_url

EXTRA: dict[str, str | None] = {"SPECOPS_EXTRA_OPERATIONS": "tests.support.policy_ops:install"}
INVOICE_INPUT = '{"amount": "12.50", "currency": "usd"}'
SEED_LINES = [
    line for line in POLICY_PATH.read_text().splitlines() if line and not line.startswith("#")
]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    runner = Cli(sqlite_file_url(tmp_path / "specops.db"))
    runner.ok("db", "upgrade")
    return runner


def check(cli: Cli, *args: str, exit_code: int) -> str:
    result = cli("policy", "check", *args)
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def as_alice(*roles: str, tenant: str = "acme", actor: str = "alice") -> list[str]:
    found = ["--actor", actor, "--tenant", tenant]
    for role in roles:
        found += ["--role", role]
    return found


def test_check_explains_allows_and_denies_by_policy(cli: Cli) -> None:
    create = ["--op", "billing.createInvoice", "--input", INVOICE_INPUT]
    allowed = check(cli, *as_alice("user"), *create, exit_code=0)
    assert "decision: allow" in allowed
    assert "rule: p, user, *, invoice, create, allow" in allowed
    assert "operation: billing.createInvoice@1.0.0 (auth user)" in allowed

    nothing = check(cli, *as_alice("guest"), *create, exit_code=1)
    assert "decision: deny" in nothing
    assert "rule: no rule grants invoice:create" in nothing
    assert "refused: FORBIDDEN: Policy does not grant create on invoice" in nothing

    cli.ok(
        "policy", "grant", "--tenant", "acme", "--role", "user",
        "--resource", "invoice", "--action", "create", "--effect", "deny",
    )  # fmt: skip
    denied = check(cli, *as_alice("user"), *create, exit_code=1)
    assert "rule: p, user, acme, invoice, create, deny" in denied
    assert "refused: FORBIDDEN: Policy denies create on invoice" in denied
    # in another tenant, the global allow still decides
    check(cli, *as_alice("user", tenant="globex"), *create, exit_code=0)

    level = check(cli, *as_alice("user"), "--op", "policy.listRules", exit_code=1)
    assert "rule: auth admin" in level
    admin = check(cli, *as_alice("admin"), "--op", "policy.listRules", exit_code=0)
    assert "rule: p, admin, *, policy, list, allow" in admin


def test_check_reads_the_owner_condition_from_the_database(cli: Cli) -> None:
    token = cli.key(tenant="acme", user="alice")
    created = cli.ok(
        "call", "billing.createInvoice", "--input", INVOICE_INPUT, env={"SPECOPS_API_KEY": token}
    )
    invoice = json.loads(created.stdout)
    audited = len(cli.audit_rows())
    pay = json.dumps(
        {
            "invoiceId": invoice["id"],
            "amount": "12.50",
            "currency": "usd",
            "paymentMethodId": "pm_card_visa",
        }
    )
    capture = ["--op", "billing.capturePayment", "--input", pay]

    owner = check(cli, *as_alice("user"), *capture, exit_code=0)
    assert "decision: allow" in owner
    assert "rule: p, user, *, invoice, pay, allow" in owner

    other = check(cli, *as_alice("user", actor="bob"), *capture, exit_code=1)
    assert "decision: deny" in other
    assert "rule: condition owner on invoice: not the owner" in other
    assert "refused: FORBIDDEN: Only the invoice's owner may pay it" in other

    elsewhere = check(cli, *as_alice("user", tenant="globex"), *capture, "--json", exit_code=1)
    answer = json.loads(elsewhere)
    assert answer == {
        "decision": "deny",
        "operation": "billing.capturePayment@1.0.0",
        "auth": "user",
        "actor": {"id": "alice", "tenant": "globex", "roles": ["user"], "kind": "user"},
        "rule": "condition owner on invoice: not found",
        "code": "INVOICE_NOT_FOUND",
        "detail": f"No invoice {invoice['id']}",
    }
    # a check runs no handler and writes no audit record
    assert len(cli.audit_rows()) == audited
    assert check(cli, *as_alice("user"), *capture, exit_code=0)


def test_check_without_a_decision_exits_2(cli: Cli) -> None:
    unknown = check(cli, *as_alice("user"), "--op", "billing.refund", exit_code=2)
    assert "decision: none" in unknown
    assert "OP_NOT_FOUND" in unknown
    invalid = check(cli, *as_alice("user"), "--op", "billing.getInvoice", exit_code=2)
    assert "INVALID_INPUT" in invalid
    result = cli("policy", "check", *as_alice("user"), "--op", "system.ping", "--input", "{")
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr


def test_lint_exit_codes(cli: Cli) -> None:
    clean = cli("policy", "lint", env=EXTRA)
    assert clean.exit_code == 0, clean.output
    assert "every contract rule can be granted" in clean.stdout

    # only the admin wildcard grants nothing:never; deny it to admins
    deny = ["--tenant", "*", "--role", "admin", "--resource", "nothing", "--action", "*"]
    cli.ok("policy", "grant", *deny, "--effect", "deny")
    found = cli("policy", "lint", env=EXTRA)
    assert found.exit_code == 1, found.output
    assert found.stdout.splitlines() == [
        "testing.neverGranted@1.0.0: no policy line can grant nothing:never"
    ]
    assert "1 unsatisfiable contract rule(s)" in found.stderr

    cli.ok("policy", "revoke", *deny, "--effect", "deny")
    assert cli("policy", "lint", env=EXTRA).exit_code == 0
    # the built-in contracts alone are all grantable
    assert cli("policy", "lint").exit_code == 0


def policy_list(cli: Cli, *args: str) -> list[str]:
    """The lines ``policy list`` prints, without the ``# created by`` comments."""
    out = cli.ok("policy", "list", *args).stdout
    return [line.split("  #")[0].rstrip() for line in out.splitlines()]


def test_grant_revoke_list(cli: Cli) -> None:
    assert policy_list(cli) == SEED_LINES  # seeded on first use

    auditor = ["--role", "auditor", "--resource", "invoice", "--action", "read"]
    first = cli.ok("policy", "grant", "--tenant", "acme", *auditor)
    assert first.stdout.startswith("added: p, auditor, acme, invoice, read, allow")
    again = cli.ok("policy", "grant", "--tenant", "acme", *auditor)
    assert again.stdout.startswith("already present: p, auditor, acme, invoice, read, allow")
    cli.ok("policy", "grant", "--tenant", "globex", "--role", "auditor", "--inherits", "user")
    cli.ok("policy", "grant", "--tenant", "*", "--role", "support", "--inherits", "user")

    everything = policy_list(cli)
    assert everything == [
        *SEED_LINES,
        "p, auditor, acme, invoice, read, allow",
        "g, auditor, user, globex",
        "g, support, user, *",
    ]
    assert policy_list(cli, "--tenant", "acme") == [
        *SEED_LINES,
        "p, auditor, acme, invoice, read, allow",
        "g, support, user, *",
    ]
    assert "# cli:" in cli.ok("policy", "list").stdout  # who added it

    removed = cli.ok("policy", "revoke", "--tenant", "acme", *auditor)
    assert removed.stdout.startswith("removed: p, auditor, acme, invoice, read, allow")
    missing = cli("policy", "revoke", "--tenant", "acme", *auditor)
    assert missing.exit_code == 1
    assert "no line p, auditor, acme, invoice, read, allow" in missing.stderr
    assert "p, auditor, acme, invoice, read, allow" not in policy_list(cli)


@pytest.mark.parametrize(
    "args",
    [
        ["--role", "auditor", "--resource", "invoice"],
        ["--role", "auditor", "--resource", "invoice", "--action", "read", "--inherits", "x"],
        ["--role", "a b", "--inherits", "user"],
        ["--role", "auditor", "--resource", "invoice,x", "--action", "read"],
    ],
)
def test_grant_refuses_malformed_lines(cli: Cli, args: list[str]) -> None:
    result = cli("policy", "grant", "--tenant", "acme", *args)
    assert result.exit_code == 2, result.output


def test_import_adds_what_the_database_lacks(cli: Cli, tmp_path: Path) -> None:
    seeded = policy_list(cli)
    cli.ok(
        "policy", "revoke", "--tenant", "*", "--role", "user",
        "--resource", "invoice", "--action", "pay",
    )  # fmt: skip
    extra = tmp_path / "more.csv"
    extra.write_text(POLICY_PATH.read_text() + "p, auditor, *, invoice, read, allow\n")
    imported = cli.ok("policy", "import", str(extra))
    assert imported.stdout.splitlines() == [
        "added: p, user, *, invoice, pay, allow",
        "added: p, auditor, *, invoice, read, allow",
    ]
    assert cli.ok("policy", "import", str(extra)).stdout == ""
    assert policy_list(cli)[len(seeded) - 1 :] == [
        "p, user, *, invoice, pay, allow",
        "p, auditor, *, invoice, read, allow",
    ]
