"""Policy changes through policy.grant/policy.revoke, across two server processes on one
database: a grant made on one server takes effect on the other within the refresh
interval; lines land in the caller's tenant; audit records name the deciding rule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import GET_INVOICE, assert_problem, create_invoice, headers, rid
from tests.support.databases import postgres_available, postgres_database, sqlite_url
from tests.support.processes import Running, start_specops
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
REFRESH = {"SPECOPS_POLICY_REFRESH_SECONDS": "0.2", "SPECOPS_IDENTITY_CACHE_SECONDS": "0"}
GRANT = "/api/ops/policy.grant"
REVOKE = "/api/ops/policy.revoke"
LIST_RULES = "/api/ops/policy.listRules"
AUDITOR_READS = {"role": "auditor", "resource": "invoice", "action": "read"}


@dataclass
class Pair:
    """Two servers on one database: ``first`` (a Stack) and ``second``."""

    first: Stack
    second: Running

    def client(self, server: int, token: str) -> httpx.AsyncClient:
        url = self.first.url if server == 1 else self.second.url
        return httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


@pytest.fixture(scope="module", params=BACKENDS)
async def pair(
    request: pytest.FixtureRequest, localstripe: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pair]:
    """Two servers on one database, both checking the policy version every 0.2s."""
    tmp: Path = tmp_path_factory.mktemp(f"policy-{request.param}")
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(tmp)
        else:
            reason = await postgres_available()
            if reason:
                pytest.skip(reason)
            url = await stack.enter_async_context(postgres_database())
        first = await stack.enter_async_context(Stack.start(tmp, url, localstripe, env=REFRESH))
        second = start_specops(tmp, first.env)  # the database is migrated by now
        stack.callback(second.stop)
        yield Pair(first, second)


async def get_invoice(
    pair: Pair, server: int, token: str, invoice_id: str, request_id: str
) -> httpx.Response:
    async with pair.client(server, token) as http:
        return await http.get(
            GET_INVOICE, params={"invoiceId": invoice_id}, headers=headers(request_id)
        )


async def until_status(
    pair: Pair, server: int, token: str, invoice_id: str, status: int, within: float
) -> tuple[float, str]:
    """Poll getInvoice on ``server`` until it answers ``status``: (seconds, request id)."""
    started = time.monotonic()
    while True:
        request_id = rid("policy")
        r = await get_invoice(pair, server, token, invoice_id, request_id)
        if r.status_code == status:
            return time.monotonic() - started, request_id
        assert time.monotonic() - started < within, (r.status_code, r.text)
        await asyncio.sleep(0.02)


async def call(
    pair: Pair, server: int, token: str, path: str, body: dict[str, Any]
) -> httpx.Response:
    async with pair.client(server, token) as http:
        return await http.post(path, json=body, headers=headers(rid("policy")))


async def test_a_grant_on_one_server_takes_effect_on_the_other(pair: Pair) -> None:
    stack = pair.first
    tenant = f"t-{rid()[-12:]}"
    admin = await stack.key(tenant, "root", ("admin",))
    auditor = await stack.key(tenant, "audrey", ("auditor",))
    alice = await stack.key(tenant, "alice")
    invoice = await create_invoice(stack, alice)

    denied_id = rid("policy")
    denied = await get_invoice(pair, 2, auditor, invoice["id"], denied_id)
    assert_problem(denied, 403, "FORBIDDEN", request_id=denied_id)
    [row] = await stack.audit(denied_id)
    assert (row["decision"], row["policy_rule"]) == ("deny", "no rule grants invoice:read")

    granted = await call(pair, 1, admin, GRANT, AUDITOR_READS)
    assert granted.status_code == 200, granted.text
    assert granted.json()["rule"]["line"] == f"p, auditor, {tenant}, invoice, read, allow"
    assert granted.json()["created"] is True

    took, allowed_id = await until_status(pair, 2, auditor, invoice["id"], 200, within=5.0)
    assert took < 1.0
    [row] = await stack.audit(allowed_id)
    assert (row["decision"], row["outcome"], row["policy_rule"]) == (
        "allow",
        "OK",
        f"p, auditor, {tenant}, invoice, read, allow",
    )
    # and at once on the server that made the change
    assert (await get_invoice(pair, 1, auditor, invoice["id"], rid())).status_code == 200

    revoked = await call(pair, 1, admin, REVOKE, AUDITOR_READS)
    assert revoked.status_code == 200, revoked.text
    took, refused_id = await until_status(pair, 2, auditor, invoice["id"], 403, within=5.0)
    assert took < 1.0
    [row] = await stack.audit(refused_id)
    assert (row["decision"], row["policy_rule"]) == ("deny", "no rule grants invoice:read")


async def test_a_deny_line_refuses_and_is_named_in_the_audit(pair: Pair) -> None:
    stack = pair.first
    tenant = f"t-{rid()[-12:]}"
    admin = await stack.key(tenant, "root", ("admin",))
    alice = await stack.key(tenant, "alice")
    invoice = await create_invoice(stack, alice)
    await until_status(pair, 2, alice, invoice["id"], 200, within=1.0)

    deny = {"role": "user", "resource": "invoice", "action": "read", "effect": "deny"}
    assert (await call(pair, 1, admin, GRANT, deny)).status_code == 200
    _, refused_id = await until_status(pair, 2, alice, invoice["id"], 403, within=5.0)
    [row] = await stack.audit(refused_id)
    assert row["policy_rule"] == f"p, user, {tenant}, invoice, read, deny"
    assert (await call(pair, 1, admin, REVOKE, deny)).status_code == 200
    await until_status(pair, 2, alice, invoice["id"], 200, within=5.0)


async def test_lines_land_in_the_callers_tenant(pair: Pair) -> None:
    stack = pair.first
    tenant_a, tenant_b = f"a-{rid()[-12:]}", f"b-{rid()[-12:]}"
    auditor_a = await stack.key(tenant_a, "audrey", ("auditor",))
    alice_a = await stack.key(tenant_a, "alice")
    admin_a = await stack.key(tenant_a, "root", ("admin",))
    admin_b = await stack.key(tenant_b, "root", ("admin",))
    invoice = await create_invoice(stack, alice_a)

    # no way to name another tenant
    named = await call(pair, 1, admin_b, GRANT, {**AUDITOR_READS, "tenant": tenant_a})
    assert_problem(named, 422, "INVALID_INPUT")
    granted = await call(pair, 1, admin_b, GRANT, AUDITOR_READS)
    assert granted.status_code == 200, granted.text
    assert granted.json()["rule"]["tenant"] == tenant_b
    assert granted.json()["rule"]["createdAt"].endswith("Z"), granted.text  # RFC 3339

    await asyncio.sleep(0.6)  # past the refresh interval of both servers
    for server in (1, 2):
        r = await get_invoice(pair, server, auditor_a, invoice["id"], rid())
        assert_problem(r, 403, "FORBIDDEN")

    listed_a = await call(pair, 2, admin_a, LIST_RULES, {})
    lines_a = {item["line"] for item in listed_a.json()["items"]}
    assert f"p, auditor, {tenant_b}, invoice, read, allow" not in lines_a
    assert "p, user, *, invoice, read, allow" in lines_a
    listed_b = await call(pair, 2, admin_b, LIST_RULES, {"role": "auditor"})
    items = listed_b.json()["items"]
    assert all(i["createdAt"] is None or i["createdAt"].endswith("Z") for i in items), items
    assert [i["line"] for i in items if i["scope"] == "tenant"] == [
        f"p, auditor, {tenant_b}, invoice, read, allow"
    ]
    assert all(i["line"].startswith("p, auditor, *, ") for i in items if i["scope"] != "tenant")
    # nor can B revoke A's lines: it revokes in B
    assert (await call(pair, 1, admin_a, GRANT, AUDITOR_READS)).status_code == 200
    assert (await call(pair, 2, admin_b, REVOKE, AUDITOR_READS)).status_code == 200
    gone = await call(pair, 2, admin_b, REVOKE, AUDITOR_READS)
    assert_problem(gone, 404, "POLICY_RULE_NOT_FOUND")
    await until_status(pair, 2, auditor_a, invoice["id"], 200, within=5.0)


async def test_non_admins_are_refused(pair: Pair) -> None:
    stack = pair.first
    tenant = f"t-{rid()[-12:]}"
    alice = await stack.key(tenant, "alice")
    for path, body in [(GRANT, AUDITOR_READS), (REVOKE, AUDITOR_READS), (LIST_RULES, {})]:
        request_id = rid("policy")
        async with pair.client(2, alice) as http:
            r = await http.post(path, json=body, headers=headers(request_id))
        assert_problem(r, 403, "FORBIDDEN", request_id=request_id)
        [row] = await stack.audit(request_id)
        assert (row["decision"], row["policy_rule"]) == ("deny", "auth admin")
