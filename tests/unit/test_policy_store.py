"""The policy in the database: seeding, changes, reloads across processes, explanations,
the policy contracts through the pipeline, and the lint; on SQLite and PostgreSQL.

"Another process" is a second ``CasbinAuthorizer`` on its own engine of the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from policy.api_keys import ApiKeyStore
from policy.enforcer import POLICY_PATH, CasbinAuthorizer
from policy.rules import PolicyLine, PolicyLineError, parse_lines, read_policy_file
from policy.store import PolicyStore
from registry.actor import Actor
from registry.contract import query
from registry.invocation import Invocation, Outcome
from registry.registry import Registry, install_op
from specops.app import Server, unsatisfiable_rules
from specops.settings import Settings
from storage.database import Database
from storage.tables import policy_rules
from tests.support.waiting import eventually
from tests.unit.conftest import ThingInput, ThingOutput, contract_fields

SHIPPED = read_policy_file(POLICY_PATH)
AUDITOR_READS = PolicyLine.permission("auditor", "acme", "invoice", "read")


def actor(*roles: str, tenant: str = "acme", user: str = "alice") -> Actor:
    return Actor(id=user, tenant_id=tenant, roles=frozenset(roles), kind="user")


@pytest.fixture
async def engines(database: Database) -> AsyncIterator[Callable[[], Database]]:
    """``engines()``: a new engine of the test database, as another process would have."""
    opened: list[Database] = []

    def new() -> Database:
        opened.append(Database(database.url))
        return opened[-1]

    yield new
    for db in opened:
        await db.dispose()


async def stored_lines(db: Database) -> list[PolicyLine]:
    return [s.line for s in (await PolicyStore(db).snapshot()).lines]


# -- seeding ----------------------------------------------------------------------------


async def test_a_new_database_is_seeded_once(database: Database) -> None:
    store = PolicyStore(database)
    assert await store.version() == 0
    assert (await store.snapshot()).lines == ()
    assert await store.seed(SHIPPED)
    assert await store.version() == 1
    assert await stored_lines(database) == SHIPPED  # in the file's order

    # a second start (even with another file) changes nothing
    assert not await store.seed([AUDITOR_READS])
    assert await store.version() == 1
    assert await stored_lines(database) == SHIPPED


async def test_an_authorizer_seeds_on_first_use(database: Database) -> None:
    authz = CasbinAuthorizer(PolicyStore(database))
    assert authz.version is None
    assert await authz.allowed(actor("user"), "invoice", "pay")
    assert authz.version == 1
    assert authz.lines == tuple(SHIPPED)


async def test_concurrent_seeding_inserts_the_file_once(
    database: Database, engines: Callable[[], Database]
) -> None:
    stores = [PolicyStore(engines()) for _ in range(6)]
    seeded = await asyncio.gather(*(store.seed(SHIPPED) for store in stores))
    assert seeded.count(True) == 1
    assert await stored_lines(database) == SHIPPED
    assert await PolicyStore(database).version() == 1


async def test_servers_starting_at_once_share_one_seeded_policy(
    database: Database, engines: Callable[[], Database]
) -> None:
    authorizers = [CasbinAuthorizer(PolicyStore(engines())) for _ in range(4)]
    await asyncio.gather(*(a.reload() for a in authorizers))
    assert {a.version for a in authorizers} == {1}
    assert all(a.lines == tuple(SHIPPED) for a in authorizers)
    async with database.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(policy_rules)) == len(SHIPPED)


# -- changes and the version ------------------------------------------------------------


async def test_changes_bump_the_version_and_no_ops_do_not(database: Database) -> None:
    store = PolicyStore(database)
    await store.seed(SHIPPED)
    stored, added, version = await store.add(AUDITOR_READS, by="alice")
    assert (added, version, stored.line, stored.created_by) == (True, 2, AUDITOR_READS, "alice")
    assert stored.created_at is not None
    again, added, version = await store.add(AUDITOR_READS, by="bob")
    assert (added, version, again.created_by) == (False, 2, "alice")
    assert await store.remove(AUDITOR_READS) == (True, 3)
    assert await store.remove(AUDITOR_READS) == (False, 3)
    inherit = PolicyLine.inheritance("auditor", "user", "acme")
    assert (await store.add(inherit, by=None))[1:] == (True, 4)
    assert (await stored_lines(database))[-1] == inherit


async def test_concurrent_grants_of_one_line_store_it_once(
    database: Database, engines: Callable[[], Database]
) -> None:
    await PolicyStore(database).seed(SHIPPED)
    stores = [PolicyStore(engines()) for _ in range(5)]
    results = await asyncio.gather(
        *(s.add(AUDITOR_READS, by=f"u{i}") for i, s in enumerate(stores))
    )
    assert [added for _, added, _ in results].count(True) == 1
    assert (await stored_lines(database)).count(AUDITOR_READS) == 1
    assert await PolicyStore(database).version() == 2


async def test_a_change_through_another_process_is_picked_up_within_the_refresh_interval(
    database: Database, engines: Callable[[], Database]
) -> None:
    here = CasbinAuthorizer(PolicyStore(engines()), refresh_seconds=0.5)
    # Another process looking again only every minute: its cached decision stands (with
    # `here` alone, a slow machine could pass half a second between two lines).
    stale = CasbinAuthorizer(PolicyStore(engines()), refresh_seconds=60)
    there_store = PolicyStore(engines())
    there = CasbinAuthorizer(there_store, refresh_seconds=0.5)
    auditor = actor("auditor")
    for process in (here, stale, there):
        assert not await process.allowed(auditor, "invoice", "read")  # loaded, and cached

    await there_store.add(AUDITOR_READS, by="test")
    await there.reload()  # what policy.grant does in its own process
    assert await there.allowed(auditor, "invoice", "read")
    # elsewhere, the cached decision stands until the next version check...
    assert not await stale.allowed(auditor, "invoice", "read")
    # ...which comes within the refresh interval
    took = await eventually(lambda: here.allowed(auditor, "invoice", "read"), within=3.0)
    assert took < 1.5
    assert not await stale.allowed(auditor, "invoice", "read")

    await there_store.remove(AUDITOR_READS)
    await eventually(lambda: _refused(here, auditor, "invoice", "read"), within=2.0)


async def _refused(authz: CasbinAuthorizer, who: Actor, resource: str, action: str) -> bool:
    return not await authz.allowed(who, resource, action)


async def test_refresh_zero_checks_before_every_decision(
    database: Database, engines: Callable[[], Database]
) -> None:
    here = CasbinAuthorizer(PolicyStore(engines()), refresh_seconds=0)
    there = PolicyStore(engines())
    auditor = actor("auditor")
    assert not await here.allowed(auditor, "invoice", "read")
    await there.add(AUDITOR_READS, by="test")
    assert await here.allowed(auditor, "invoice", "read")


class CountingStore(PolicyStore):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.version_reads = 0

    async def version(self) -> int:
        self.version_reads += 1
        return await super().version()


async def test_with_a_refresh_interval_decisions_do_not_read_the_database(
    database: Database,
) -> None:
    store = CountingStore(database)
    authz = CasbinAuthorizer(store, refresh_seconds=60)
    alice = actor("user")
    for _ in range(2000):
        assert await authz.allowed(alice, "invoice", "pay")
    assert store.version_reads == 0  # loaded once; next check in a minute
    authz._next_check = 0.0  # the minute is up
    await asyncio.gather(*(authz.allowed(alice, "invoice", "pay") for _ in range(50)))
    assert store.version_reads == 1  # concurrent callers share one check


async def test_a_reload_forgets_cached_decisions(database: Database) -> None:
    store = PolicyStore(database)
    authz = CasbinAuthorizer(store, refresh_seconds=60)
    auditor = actor("auditor")
    assert not await authz.allowed(auditor, "invoice", "read")
    await store.add(AUDITOR_READS, by="test")
    assert not await authz.allowed(auditor, "invoice", "read")  # cached, no check due
    await authz.reload()
    assert await authz.allowed(auditor, "invoice", "read")


async def test_a_granted_deny_beats_the_allow(database: Database) -> None:
    store = PolicyStore(database)
    authz = CasbinAuthorizer(store, refresh_seconds=60)
    alice = actor("user")
    admin = actor("admin")
    assert await authz.allowed(alice, "invoice", "pay")
    assert await authz.allowed(admin, "invoice", "pay")
    deny = PolicyLine.permission("user", "acme", "invoice", "pay", "deny")
    await store.add(deny, by="test")
    await authz.reload()
    decision = await authz.decide(alice, "invoice", "pay")
    assert (decision.allowed, decision.rule) == (False, "p, user, acme, invoice, pay, deny")
    # admins inherit user, and with it the deny, despite their wildcard
    assert not await authz.allowed(admin, "invoice", "pay")
    assert await authz.allowed(alice, "invoice", "read")
    assert await authz.allowed(actor("user", tenant="globex"), "invoice", "pay")


async def test_decisions_name_the_deciding_line(database: Database) -> None:
    authz = CasbinAuthorizer(PolicyStore(database))
    allow = await authz.decide(actor("user"), "invoice", "pay")
    assert (allow.allowed, allow.rule, allow.role) == (
        True,
        "p, user, *, invoice, pay, allow",
        "user",
    )
    assert allow.reason("invoice", "pay") == "p, user, *, invoice, pay, allow"
    admin = await authz.decide(actor("admin"), "invoice", "refund")
    assert (admin.allowed, admin.rule) == (True, "p, admin, *, *, *, allow")
    none = await authz.decide(actor("user"), "invoice", "refund")
    assert (none.allowed, none.rule) == (False, None)
    assert none.reason("invoice", "refund") == "no rule grants invoice:refund"
    await authz.store.add(  # type: ignore[union-attr]
        PolicyLine.permission("frozen", "*", "invoice", "*", "deny"), by="test"
    )
    await authz.reload()
    deny = await authz.decide(actor("user", "frozen"), "invoice", "pay")
    assert (deny.allowed, deny.rule, deny.role) == (
        False,
        "p, frozen, *, invoice, *, deny",
        "frozen",
    )
    # cached with their explanation
    assert await authz.decide(actor("user", "frozen"), "invoice", "pay") is deny


# -- the policy contracts, through the pipeline -----------------------------------------


class Caller:
    """Invokes operations on an in-process server as one API key."""

    def __init__(self, server: Server, token: str) -> None:
        self.server = server
        self.token = token

    async def __call__(self, key: str, **data: Any) -> Outcome:
        return await self.server.invoke(
            Invocation(key=key, input=data, transport="cli", credentials=self.token)
        )


@pytest.fixture
async def server(database: Database) -> AsyncIterator[Server]:
    running = Server.build(Settings(DATABASE_URL=database.url, extra_operations=""))
    await running.start()  # as the app's lifespan does
    try:
        yield running
    finally:
        await running.close()


async def caller(server: Server, tenant: str, user: str, *roles: str) -> Caller:
    _, token = await ApiKeyStore(server.db).create(
        tenant_id=tenant, actor_id=user, roles=tuple(roles)
    )
    return Caller(server, token)


async def test_tenant_admins_grant_revoke_and_list_their_tenants_lines(server: Server) -> None:
    admin = await caller(server, "acme", "root", "admin")
    auditor = await caller(server, "acme", "audrey", "auditor")
    other_admin = await caller(server, "globex", "groot", "admin")

    refused = await auditor("billing.listInvoices")
    assert refused.code == "FORBIDDEN"

    granted = await admin("policy.grant", role="auditor", resource="invoice", action="list")
    assert granted.ok, granted.problem
    assert granted.output is not None
    rule = granted.output["rule"]
    assert rule["line"] == "p, auditor, acme, invoice, list, allow"
    assert (rule["scope"], rule["kind"], rule["tenant"], rule["createdBy"]) == (
        "tenant",
        "permission",
        "acme",
        "root",
    )
    assert granted.output["created"] is True
    version = granted.output["policyVersion"]
    # in effect at once in this process
    assert (await auditor("billing.listInvoices")).ok

    again = await admin("policy.grant", role="auditor", resource="invoice", action="list")
    assert again.output is not None
    assert (again.output["created"], again.output["policyVersion"]) == (False, version)

    # another tenant's admin: the line lands in its own tenant
    theirs = await other_admin("policy.grant", role="auditor", inherits="user")
    assert theirs.output is not None
    assert theirs.output["rule"]["line"] == "g, auditor, user, globex"

    listed = await admin("policy.listRules")
    assert listed.output is not None
    lines = {item["line"]: item["scope"] for item in listed.output["items"]}
    assert lines["p, auditor, acme, invoice, list, allow"] == "tenant"
    assert lines["p, user, *, invoice, pay, allow"] == "global"
    assert "g, auditor, user, globex" not in lines
    assert listed.output["policyVersion"] == version + 1
    only = await admin("policy.listRules", role="auditor")
    assert only.output is not None
    tenant_lines = [i["line"] for i in only.output["items"] if i["scope"] == "tenant"]
    assert tenant_lines == ["p, auditor, acme, invoice, list, allow"]
    assert all(i["line"].startswith("p, auditor, ") for i in only.output["items"])

    revoked = await admin("policy.revoke", role="auditor", resource="invoice", action="list")
    assert revoked.ok, revoked.problem
    assert revoked.output is not None
    assert revoked.output["rule"]["line"] == "p, auditor, acme, invoice, list, allow"
    assert (await auditor("billing.listInvoices")).code == "FORBIDDEN"
    gone = await admin("policy.revoke", role="auditor", resource="invoice", action="list")
    assert gone.problem is not None
    assert (gone.problem.code, gone.problem.status) == ("POLICY_RULE_NOT_FOUND", 404)

    # global lines are not a tenant admin's to revoke
    global_line = await admin("policy.revoke", role="user", resource="invoice", action="pay")
    assert global_line.code == "POLICY_RULE_NOT_FOUND"
    assert await server.authorizer.allowed(actor("user"), "invoice", "pay")


async def test_policy_contracts_refuse_non_admins_and_bad_lines(server: Server) -> None:
    admin = await caller(server, "acme", "root", "admin")
    user = await caller(server, "acme", "alice", "user")
    for key, data in [
        ("policy.grant", {"role": "user", "resource": "x", "action": "y"}),
        ("policy.revoke", {"role": "user", "resource": "x", "action": "y"}),
        ("policy.listRules", {}),
    ]:
        outcome = await user(key, **data)
        assert outcome.code == "FORBIDDEN", (key, outcome.problem)
    for data in [
        {"role": "auditor", "resource": "invoice", "action": "read", "tenant": "globex"},
        {"role": "auditor", "resource": "invoice", "action": "read", "inherits": "user"},
        {"role": "auditor", "resource": "invoice"},
        {"role": "auditor"},
        {"role": "a b", "inherits": "user"},
        {"role": "auditor", "resource": "invoice,x", "action": "read"},
        {"role": "auditor", "resource": "invoice", "action": "read", "effect": "maybe"},
    ]:
        outcome = await admin("policy.grant", **data)
        assert outcome.code == "INVALID_INPUT", (data, outcome.problem)
    assert await stored_lines(server.db) == SHIPPED


async def test_a_pattern_tenant_cannot_hold_lines(server: Server) -> None:
    admin = await caller(server, "acme*", "root", "admin")
    outcome = await admin("policy.grant", role="auditor", inherits="admin")
    assert outcome.code == "FORBIDDEN"


# -- the pipeline check (explain) -------------------------------------------------------


async def test_check_explains_without_running_or_auditing(server: Server) -> None:
    allowed = await server.pipeline.check(actor("user"), "system.ping", {})
    assert (allowed.decision, allowed.policy_rule, allowed.error) == (
        "allow",
        "p, user, *, op, system.ping, allow",
        None,
    )
    denied = await server.pipeline.check(actor("guest"), "system.ping", {})
    assert (denied.decision, denied.policy_rule) == ("deny", "no rule grants op:system.ping")
    assert denied.error is not None and denied.error.code == "FORBIDDEN"
    level = await server.pipeline.check(actor("user"), "policy.listRules", {})
    assert (level.decision, level.policy_rule) == ("deny", "auth admin")
    invalid = await server.pipeline.check(actor("user"), "billing.getInvoice", {})
    assert invalid.decision == "none"
    assert invalid.error is not None and invalid.error.code == "INVALID_INPUT"


# -- lint -------------------------------------------------------------------------------


async def ok(_input: ThingInput, _ctx: Any) -> ThingOutput:
    return ThingOutput(ok=True)


def registry_with(*specs: tuple[str, str, tuple[str, str]]) -> Registry:
    registry = Registry()
    for key, auth, rule in specs:
        install_op(registry, query(**contract_fields(key=key, auth=auth, rules=[rule])), ok)
    return registry


def lint(lines: str, registry: Registry) -> list[str]:
    authz = CasbinAuthorizer(lines=parse_lines(lines))
    return [f"{ref} {r.resource}:{r.action}" for ref, r in unsatisfiable_rules(registry, authz)]


WITHOUT_ADMIN_WILDCARD = "\n".join(
    str(line) for line in SHIPPED if str(line) != "p, admin, *, *, *, allow"
)
NEVER = ("things.never", "user", ("nothing", "never"))
READ = ("things.read", "user", ("invoice", "read"))


def test_lint_finds_a_rule_no_line_grants_and_not_a_granted_one() -> None:
    registry = registry_with(NEVER, READ)
    assert lint(WITHOUT_ADMIN_WILDCARD, registry) == ["things.never@1.0.0 nothing:never"]
    # the admin wildcard grants anything
    assert lint("\n".join(map(str, SHIPPED)), registry) == []


def test_lint_counts_deny_lines() -> None:
    registry = registry_with(NEVER, READ, ("things.adminRead", "admin", ("invoice", "read")))
    shipped = "\n".join(map(str, SHIPPED))
    # denied to admins everywhere: nobody else has it
    assert lint(shipped + "\np, admin, *, nothing, *, deny", registry) == [
        "things.never@1.0.0 nothing:never"
    ]
    # denied to users in every tenant: admins inherit the deny
    assert lint(shipped + "\np, user, *, invoice, read, deny", registry) == [
        "things.adminRead@1.0.0 invoice:read",
        "things.read@1.0.0 invoice:read",
    ]
    # ...a role of one tenant may still be granted it, but not alongside admin
    granted = "\np, user, *, invoice, read, deny\np, auditor, acme, invoice, read, allow"
    assert lint(shipped + granted, registry) == ["things.adminRead@1.0.0 invoice:read"]
    # denied to admins: users still have it, admin-only contracts not
    assert lint(shipped + "\np, admin, *, invoice, read, deny", registry) == [
        "things.adminRead@1.0.0 invoice:read"
    ]


@pytest.mark.parametrize(
    ("lines", "satisfiable"),
    [
        ("p, ops, t*, nothing, nev*, allow", True),
        ("p, ops, t*, nothing, never, allow\np, ops, *, nothing, *, deny", False),
        # denied in one tenant the pattern covers, granted in the others
        ("p, ops, t*, nothing, never, allow\np, ops, t1, nothing, never, deny", True),
        # denied in every tenant the pattern covers
        ("p, ops, t*, nothing, never, allow\np, ops, t*, *, *, deny", False),
        # granted only in t1, where an inherited deny applies
        (
            "p, ops, t1, nothing, never, allow\np, frozen, *, *, *, deny\ng, ops, frozen, t1",
            False,
        ),
        # ...but the inheritance holds in t1 only
        (
            "p, ops, t*, nothing, never, allow\np, frozen, *, *, *, deny\ng, ops, frozen, t1",
            True,
        ),
        ("p, ops, *, nothing, never, deny", False),
        ("p, ops, *, nothing, other, allow", False),
    ],
)
def test_lint_handles_wildcards_and_tenant_patterns(lines: str, satisfiable: bool) -> None:
    registry = registry_with(NEVER)
    assert (lint(lines, registry) == []) is satisfiable


async def test_start_up_warns_of_each_unsatisfiable_rule(
    database: Database, tmp_path: Path
) -> None:
    seed = tmp_path / "policy.csv"
    seed.write_text(POLICY_PATH.read_text() + "p, admin, *, nothing, *, deny\n")
    server = Server.build(
        Settings(DATABASE_URL=database.url, extra_operations="tests.support.policy_ops:install")
    )
    server.authorizer.seed_path = seed
    try:
        with capture_logs() as logs:
            await server.start()
    finally:
        await server.close()
    warnings = [e for e in logs if e["event"] == "policy_rule_unsatisfiable"]
    assert [(w["operation"], w["rule"], w["log_level"]) for w in warnings] == [
        ("testing.neverGranted@1.0.0", "nothing:never", "warning")
    ]


def test_policy_lines_are_checked() -> None:
    assert str(PolicyLine.parse(" p,user , * ,invoice, pay,allow ")) == (
        "p, user, *, invoice, pay, allow"
    )
    for bad in [
        "x, user, *, invoice, pay, allow",
        "p, user, *, invoice, pay",
        "p, user, *, invoice, pay, maybe",
        "g, admin, user",
        "p, us er, *, invoice, pay, allow",
        'p, "user", *, invoice, pay, allow',
        "p, , *, invoice, pay, allow",
    ]:
        with pytest.raises(PolicyLineError):
            PolicyLine.parse(bad)
    with pytest.raises(PolicyLineError, match=r"policy:2"):
        parse_lines("# fine\np, broken\n")
