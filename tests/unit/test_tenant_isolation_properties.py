"""Tenant isolation as properties: whatever tenant admins grant and revoke, an actor of
one tenant is never decided by another tenant's lines, and never reaches another tenant's
invoice.

Each example runs a random sequence of grants and revokes (any role, resource, action,
effect, or inheritance), each issued by the admin of a random tenant through the pipeline
(``policy.grant`` / ``policy.revoke`` over transport ``cli``, so exactly the handler's code
path), on an in-process ``Server`` over the real policy store and ``CasbinAuthorizer`` of a
SQLite database. Each example has tenants of its own; the lines earlier examples left in
the database are more "other tenants" lines.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from policy.api_keys import ApiKeyStore
from policy.enforcer import POLICY_PATH, CasbinAuthorizer
from policy.rules import PolicyLine, read_policy_file
from registry.actor import Actor
from registry.invocation import Invocation, Outcome
from specops.app import Server
from specops.settings import Settings
from storage.database import Database
from storage.tables import audit_events

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

GLOBAL_LINES = [line for line in read_policy_file(POLICY_PATH) if line.tenant == "*"]
TENANTS = 3  # per example: 0, 1, 2
ROLES = ("user", "admin", "auditor", "service", "guest", "*")
RESOURCES = ("invoice", "policy", "api_key", "op", "report", "*")
ACTIONS = ("read", "pay", "list", "create", "grant", "system.ping", "*")
#: The (resource, action) pairs decisions are checked for.
QUESTIONS = [*itertools.product(RESOURCES[:-1], ACTIONS[:-1]), ("invoice", "anything")]

permission = st.fixed_dictionaries(
    {
        "role": st.sampled_from(ROLES),
        "resource": st.sampled_from(RESOURCES),
        "action": st.sampled_from(ACTIONS),
        "effect": st.sampled_from(("allow", "deny")),
    }
)
inheritance = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES), "inherits": st.sampled_from(ROLES)}
)
#: (issuing tenant, "policy.grant" or "policy.revoke", input)
change = st.tuples(
    st.integers(0, TENANTS - 1),
    st.sampled_from(("policy.grant", "policy.grant", "policy.revoke")),
    st.one_of(permission, inheritance),
)
role_sets = st.frozensets(st.sampled_from(ROLES[:-1]), min_size=1, max_size=3)

EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def server(database: Database) -> AsyncIterator[Server]:
    running = Server.build(Settings(DATABASE_URL=database.url, extra_operations=""))
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@dataclass
class Example:
    """One example's tenants and their admins' tokens."""

    tenants: list[str]
    admins: list[str]

    @classmethod
    async def new(cls, server: Server) -> Example:
        tag = uuid.uuid4().hex[:8]
        tenants = [f"t-{tag}-{i}" for i in range(TENANTS)]
        admins = [await token(server, tenant, "root", ("admin",)) for tenant in tenants]
        return cls(tenants, admins)


async def token(server: Server, tenant: str, user: str, roles: tuple[str, ...]) -> str:
    _, secret = await ApiKeyStore(server.db).create(tenant_id=tenant, actor_id=user, roles=roles)
    return secret


async def invoke(server: Server, credentials: str, key: str, data: dict[str, Any]) -> Outcome:
    return await server.invoke(
        Invocation(key=key, input=data, transport="cli", credentials=credentials)
    )


async def apply_changes(
    server: Server, example: Example, changes: list[tuple[int, str, dict[str, Any]]]
) -> dict[str, set[PolicyLine]]:
    """Apply ``changes`` through the pipeline; the lines each tenant holds afterwards, as
    the outcomes tell (a model of the store)."""
    held: dict[str, set[PolicyLine]] = {tenant: set() for tenant in example.tenants}
    for issuer, key, data in changes:
        tenant = example.tenants[issuer]
        outcome = await invoke(server, example.admins[issuer], key, data)
        if not outcome.ok:
            # an admin may have denied itself policy changes in its tenant
            assert outcome.code in ("FORBIDDEN", "POLICY_RULE_NOT_FOUND"), outcome.problem
            continue
        assert outcome.output is not None
        rule = outcome.output["rule"]
        # the line always lands in the issuer's tenant
        assert rule["tenant"] == tenant, (tenant, rule)
        assert rule["scope"] == "tenant", rule
        line = line_of(rule)
        if key == "policy.grant":
            held[tenant].add(line)
        else:
            held[tenant].discard(line)
    return held


def line_of(rule: dict[str, Any]) -> PolicyLine:
    if rule["kind"] == "inheritance":
        return PolicyLine.inheritance(rule["role"], rule["inherits"], rule["tenant"])
    return PolicyLine.permission(
        rule["role"], rule["tenant"], rule["resource"], rule["action"], rule["effect"]
    )


def deciding_tenant(rule: str) -> str:
    """The tenant field of a deciding line ``p, role, tenant, resource, action, effect``."""
    parts = [part.strip() for part in rule.split(",")]
    assert parts[0] == "p" and len(parts) == 6, rule
    return parts[2]


@EXAMPLES
@given(
    changes=st.lists(change, min_size=1, max_size=12),
    asker=st.integers(0, TENANTS - 1),
    roles=role_sets,
)
async def test_no_decision_for_a_tenant_comes_from_another_tenants_lines(
    server: Server,
    changes: list[tuple[int, str, dict[str, Any]]],
    asker: int,
    roles: frozenset[str],
) -> None:
    example = await Example.new(server)
    held = await apply_changes(server, example, changes)
    tenant = example.tenants[asker]

    # the store holds exactly what the outcomes said, each line in its issuer's tenant
    snapshot = await server.authorizer.store.snapshot()  # type: ignore[union-attr]
    for name in example.tenants:
        stored = {s.line for s in snapshot.lines if s.line.tenant == name}
        assert stored == held[name], name

    # the oracle: the global lines and the asker's tenant's, nothing else
    oracle = CasbinAuthorizer(lines=GLOBAL_LINES + sorted(held[tenant], key=str))
    actor = Actor(id="asker", tenant_id=tenant, roles=roles, kind="user")
    for resource, action in QUESTIONS:
        decision = await server.authorizer.decide(actor, resource, action)
        if decision.rule is not None:
            assert deciding_tenant(decision.rule) in (tenant, "*"), (decision, tenant)
        expected = oracle.evaluate(roles, tenant, resource, action)
        assert (decision.allowed, decision.rule) == (expected.allowed, expected.rule), (
            resource,
            action,
            roles,
            sorted(map(str, held[tenant])),
        )


@EXAMPLES
@given(
    changes=st.lists(change, min_size=0, max_size=10),
    roles=role_sets,
    kind=st.sampled_from(("user", "service")),
)
async def test_no_grant_reaches_another_tenants_invoice(
    server: Server,
    changes: list[tuple[int, str, dict[str, Any]]],
    roles: frozenset[str],
    kind: str,
) -> None:
    example = await Example.new(server)
    victim, intruder_tenant = example.tenants[1], example.tenants[0]
    owner = await token(server, victim, "olga", ("user",))
    created = await invoke(
        server, owner, "billing.createInvoice", {"amount": "9.99", "currency": "usd"}
    )
    assert created.ok and created.output is not None, created.problem
    invoice = created.output
    await apply_changes(server, example, changes)

    # an intruder named like the owner, with any roles, of the other tenant
    _, intruder = await ApiKeyStore(server.db).create(
        tenant_id=intruder_tenant,
        actor_id="olga",
        roles=tuple(sorted(roles)),
        kind=kind,  # type: ignore[arg-type]
    )
    actor = Actor(id="olga", tenant_id=intruder_tenant, roles=roles, kind=kind)  # type: ignore[arg-type]
    attempts = [
        ("billing.getInvoice", {"invoiceId": invoice["id"]}, ("invoice", "read")),
        (
            "billing.capturePayment",
            {
                "invoiceId": invoice["id"],
                "amount": invoice["amount"],
                "currency": invoice["currency"],
                "paymentMethodId": "pm_card_visa",
            },
            ("invoice", "pay"),
        ),
    ]
    for key, data, (resource, action) in attempts:
        outcome = await invoke(server, intruder, key, data)
        granted = await server.authorizer.allowed(actor, resource, action)
        expected = "INVOICE_NOT_FOUND" if granted else "FORBIDDEN"
        assert outcome.code == expected, (key, roles, outcome.problem)
        assert outcome.output is None

    # and the invoice is untouched
    seen = await invoke(server, owner, "billing.getInvoice", {"invoiceId": invoice["id"]})
    if seen.ok:  # the owner's tenant admin may have denied reads in its tenant
        assert seen.output is not None and seen.output["status"] == "open"
    async with server.db.connect() as conn:
        rows = await conn.execute(
            select(audit_events.c.decision).where(
                audit_events.c.tenant_id == intruder_tenant,
                audit_events.c.operation_key.in_([key for key, _, _ in attempts]),
                audit_events.c.decision == "allow",
            )
        )
        assert rows.all() == []
