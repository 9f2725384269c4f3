"""policy.enforcer.CasbinAuthorizer with the shipped policy and with fixed ones (the policy
in the database, reloading and explanations: test_policy_store.py)."""

from __future__ import annotations

import pytest

from policy.enforcer import CasbinAuthorizer
from policy.rules import PolicyLine
from registry.actor import Actor


def actor(*roles: str, tenant: str | None = "acme") -> Actor:
    return Actor(id="alice", tenant_id=tenant, roles=frozenset(roles), kind="user")


def authorizer_with(_tmp_path: object, *lines: str) -> CasbinAuthorizer:
    return CasbinAuthorizer(lines=[PolicyLine.parse(line) for line in lines])


@pytest.fixture(scope="module")
def shipped() -> CasbinAuthorizer:
    return CasbinAuthorizer.from_file()


@pytest.mark.parametrize("action", ["create", "read", "list", "pay"])
async def test_users_may_work_with_invoices(shipped, action: str) -> None:
    assert await shipped.allowed(actor("user"), "invoice", action)


@pytest.mark.parametrize(
    ("resource", "action"),
    [
        ("invoice", "delete"),
        ("invoice", "assign"),
        ("invoice", "payx"),
        ("invoices", "read"),
        ("op", "billing.refund"),
        ("anything", "at_all"),
    ],
)
async def test_users_may_not_do_anything_else(shipped, resource: str, action: str) -> None:
    assert not await shipped.allowed(actor("user"), resource, action)


async def test_ping_is_granted_to_users_and_services(shipped) -> None:
    assert await shipped.allowed(actor("user"), "op", "system.ping")
    assert await shipped.allowed(actor("service"), "op", "system.ping")
    assert not await shipped.allowed(actor("service"), "invoice", "read")


@pytest.mark.parametrize(
    ("resource", "action"),
    [("invoice", "pay"), ("invoice", "delete"), ("op", "billing.refund"), ("x", "y")],
)
async def test_admins_have_the_wildcard(shipped, resource: str, action: str) -> None:
    assert await shipped.allowed(actor("admin", tenant="any-tenant"), resource, action)


async def test_admins_inherit_user_grants_in_every_tenant(tmp_path) -> None:
    authz = authorizer_with(
        tmp_path,
        "p, user, *, invoice, pay, allow",
        "g, admin, user, *",
    )
    assert await authz.allowed(actor("admin", tenant="t1"), "invoice", "pay")
    assert await authz.allowed(actor("admin", tenant="t2"), "invoice", "pay")
    assert not await authz.allowed(actor("admin"), "invoice", "delete")


@pytest.mark.parametrize("roles", [("guest",), ("users",), ("Admin",), ("user ",)])
async def test_roles_outside_the_policy_are_denied(shipped, roles) -> None:
    assert not await shipped.allowed(actor(*roles), "invoice", "read")


async def test_an_actor_without_tenant_or_roles_is_denied(shipped) -> None:
    assert not await shipped.allowed(actor("user", tenant=None), "invoice", "read")
    assert not await shipped.allowed(actor("admin", tenant=None), "invoice", "read")
    assert not await shipped.allowed(actor(), "invoice", "read")


@pytest.mark.parametrize("other", ["auditor", "zeta"])  # sorted before and after "user"
async def test_an_explicit_deny_beats_an_allow(tmp_path, other: str) -> None:
    authz = authorizer_with(
        tmp_path,
        "p, user, *, invoice, pay, allow",
        "p, user, *, invoice, read, allow",
        f"p, {other}, *, invoice, pay, deny",
    )
    assert await authz.allowed(actor("user"), "invoice", "pay")
    assert not await authz.allowed(actor("user", other), "invoice", "pay")
    assert await authz.allowed(actor("user", other), "invoice", "read")
    assert not await authz.allowed(actor(other), "invoice", "pay")


async def test_an_inherited_deny_beats_a_wildcard_allow(tmp_path) -> None:
    authz = authorizer_with(
        tmp_path,
        "p, admin, *, *, *, allow",
        "p, frozen, *, invoice, pay, deny",
        "g, admin, frozen, t1",
    )
    assert not await authz.allowed(actor("admin", tenant="t1"), "invoice", "pay")
    assert await authz.allowed(actor("admin", tenant="t2"), "invoice", "pay")
    assert await authz.allowed(actor("admin", tenant="t1"), "invoice", "read")


async def test_the_deciding_line_does_not_depend_on_the_order_lines_were_added() -> None:
    granting = [
        PolicyLine.permission("user", "t1", "invoice", "read", "allow"),
        PolicyLine.permission("user", "t1", "*", "read", "allow"),
        PolicyLine.permission("user", "*", "invoice", "*", "allow"),
    ]
    rules = set()
    for lines in (granting, granting[::-1], granting[1:] + granting[:1]):
        decision = await CasbinAuthorizer(lines=lines).decide(
            actor("user", tenant="t1"), "invoice", "read"
        )
        assert decision.allowed
        rules.add(decision.rule)
    assert len(rules) == 1, rules


async def test_tenant_specific_lines_grant_in_that_tenant_only(tmp_path) -> None:
    authz = authorizer_with(tmp_path, "p, user, t1, x, y, allow")
    assert await authz.allowed(actor("user", tenant="t1"), "x", "y")
    assert not await authz.allowed(actor("user", tenant="t2"), "x", "y")
    assert not await authz.allowed(actor("user", tenant="t10"), "x", "y")
    assert not await authz.allowed(actor("user", tenant="t1"), "x", "z")
