"""Identity end to end, against a running server that accepts API keys and HS256 tokens:
JWT callers over REST, GraphQL and MCP; keys scoped to operations; tenant admins creating,
listing and revoking their tenant's keys through the keys.* contracts."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from policy.api_keys import key_id_of
from tests.support.api import all_audit_rows, assert_problem, new_tenant, post_graphql, rid
from tests.support.mcp_client import http_client, text_of
from tests.support.stack import Stack
from tests.support.tokens import mint

pytestmark = pytest.mark.e2e

PING = "/api/ops/system.ping"
CREATE_KEY = "/api/ops/keys.createKey"
LIST_KEYS = "/api/ops/keys.listKeys"
REVOKE_KEY = "/api/ops/keys.revokeKey"
CREATE_INVOICE = "/api/ops/billing.createInvoice"
LIST_INVOICES = "/api/ops/billing.listInvoices"
KEY_OPS = {"keys_createKey", "keys_listKeys", "keys_revokeKey"}
PINNED = re.compile(r"_v\d+_\d+_\d+$")


def mcp_problem(result: Any) -> dict[str, Any]:
    assert result.is_error is True
    body = result.structured_content
    assert isinstance(body, dict) and json.loads(text_of(result)) == body
    return body


def graphql_code(r: httpx.Response) -> str | None:
    """The one error code of a GraphQL answer, or None when it has no errors."""
    assert r.status_code == 200, r.text
    errors = r.json().get("errors")
    if not errors:
        return None
    assert len(errors) == 1, errors
    code: str = errors[0]["extensions"]["code"]
    return code


async def tool_names(stack: Stack, token: str) -> set[str]:
    async with http_client(stack.url + "/mcp", token) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def rest(
    stack: Stack,
    token: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    async with stack.client(token) as http:
        return await http.post(path, json=body or {}, headers=headers or {})


# -- signed tokens on every transport ---------------------------------------------------


async def test_a_jwt_caller_is_allowed_and_refused_alike_on_every_transport(
    identity_stack: Stack,
) -> None:
    stack = identity_stack
    tenant = new_tenant()
    user = mint(tenant, "dana", jti="dana-token-1")
    admin = mint(tenant, "root", roles=("admin",))

    # REST
    ping_id, list_id = rid("jwt"), rid("jwt")
    ping = await rest(stack, user, PING, {"message": "hi"}, headers={"X-Request-Id": ping_id})
    assert ping.status_code == 200, ping.text
    assert ping.json() == {"message": "hi", "actorId": "dana", "tenantId": tenant}
    forbidden = await rest(stack, user, LIST_KEYS, headers={"X-Request-Id": list_id})
    assert_problem(forbidden, 403, "FORBIDDEN", request_id=list_id)
    assert (await rest(stack, admin, LIST_KEYS)).status_code == 200
    [ping_row] = await stack.audit(ping_id)
    assert (ping_row["actor_id"], ping_row["tenant_id"], ping_row["actor_kind"]) == (
        "dana",
        tenant,
        "user",
    )
    assert ping_row["credential_id"] == "jwt:dana-token-1"
    [list_row] = await stack.audit(list_id)
    assert (list_row["decision"], list_row["outcome"]) == ("deny", "FORBIDDEN")

    # GraphQL
    gql_ping = '{ system_ping(input: {message: "hi"}) { actorId tenantId } }'
    gql_list = "{ keys_listKeys(input: {}) { items { id } } }"
    r = await post_graphql(stack, gql_ping, token=user)
    assert graphql_code(r) is None
    assert r.json()["data"]["system_ping"] == {"actorId": "dana", "tenantId": tenant}
    assert graphql_code(await post_graphql(stack, gql_list, token=user)) == "FORBIDDEN"
    assert graphql_code(await post_graphql(stack, gql_list, token=admin)) is None

    # MCP
    async with http_client(stack.url + "/mcp", user) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        mcp_ping = await client.call_tool("system_ping", {"message": "hi"})
        mcp_list = await client.call_tool("keys_listKeys", {})
    assert "system_ping" in names and not KEY_OPS & names
    assert mcp_ping.structured_content == {"message": "hi", "actorId": "dana", "tenantId": tenant}
    assert mcp_problem(mcp_list)["code"] == "FORBIDDEN"
    async with http_client(stack.url + "/mcp", admin) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} >= KEY_OPS
        assert (await client.call_tool("keys_listKeys", {})).is_error is False


async def test_a_refused_jwt_gets_the_answer_of_a_bad_api_key(identity_stack: Stack) -> None:
    stack = identity_stack
    tenant = new_tenant()
    refused = {
        "expired": mint(tenant, "dana", lifetime=-3600),
        "wrong audience": mint(tenant, "dana", aud="someone-else"),
        "wrong issuer": mint(tenant, "dana", iss="https://evil.test"),
        "other secret": mint(tenant, "dana", secret="not-the-server-secret-0123456789-xyz"),
        "no tenant": mint(tenant, "dana", tenant=None),
        "no roles": mint(tenant, "dana", roles=()),
        "made-up key": "sk_live_zzzzzzzzzzzz_madeUpSecret000000000000000000000000000",
        "neither": "hello-there",
    }
    details = set()
    for name, token in refused.items():
        request_id = rid("refused")
        r = await rest(stack, token, PING, headers={"X-Request-Id": request_id})
        body = assert_problem(r, 401, "UNAUTHENTICATED", request_id=request_id)
        details.add(body["detail"])
        [row] = await stack.audit(request_id)
        assert (row["decision"], row["actor_id"], row["credential_id"]) == ("deny", None, None)
        assert (
            graphql_code(
                await post_graphql(stack, "{ system_ping(input: {}) { actorId } }", token=token)
            )
            == "UNAUTHENTICATED"
        ), name
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
            mcp = await http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json, text/event-stream",
                },
            )
        assert mcp.status_code == 401, name
        details.add(mcp.json()["detail"])
    assert details == {"Invalid credentials"}
    rows = await all_audit_rows(stack)
    for token in refused.values():
        assert not any(token in str(value) for row in rows for value in row.values())


# -- keys scoped to operations ------------------------------------------------------------


async def test_a_key_scoped_to_operations(identity_stack: Stack) -> None:
    stack = identity_stack
    tenant = new_tenant()
    admin = await stack.key(tenant, "root", ("admin",))
    created = await rest(
        stack,
        admin,
        CREATE_KEY,
        {
            "actorId": "reporter",
            "roles": ["user"],
            "kind": "service",
            "operations": ["system.ping", "billing.listInvoices"],
        },
    )
    assert created.status_code == 200, created.text
    assert created.json()["operations"] == ["billing.listInvoices", "system.ping"]
    scoped = created.json()["token"]
    stack.issued.append(scoped)

    assert (await rest(stack, scoped, PING)).status_code == 200
    assert (await rest(stack, scoped, LIST_INVOICES)).status_code == 200
    request_id = rid("scope")
    refused = await rest(
        stack,
        scoped,
        CREATE_INVOICE,
        {"amount": "1.00", "currency": "usd"},
        headers={"X-Request-Id": request_id},
    )
    body = assert_problem(refused, 403, "FORBIDDEN", request_id=request_id)
    assert "billing.createInvoice" in body["detail"]
    [row] = await stack.audit(request_id)
    assert (row["decision"], row["outcome"], row["actor_id"]) == ("deny", "FORBIDDEN", "reporter")
    assert row["credential_id"] == created.json()["id"]

    # the same key without the scope may create invoices: the scope alone refused it
    unscoped = await stack.key(tenant, "reporter", ("user",), kind="service")
    assert (
        await rest(stack, unscoped, CREATE_INVOICE, {"amount": "1.00", "currency": "usd"})
    ).status_code == 200

    # MCP lists only the scoped tools, and refuses the others like REST
    names = await tool_names(stack, scoped)
    assert {PINNED.sub("", name) for name in names} == {"system_ping", "billing_listInvoices"}
    async with http_client(stack.url + "/mcp", scoped) as client:
        call = await client.call_tool("billing_createInvoice", {"amount": 1, "currency": "usd"})
    assert mcp_problem(call)["code"] == "FORBIDDEN"
    gql = 'mutation { billing_createInvoice(input: {amount: 1, currency: "usd"}) { id } }'
    assert graphql_code(await post_graphql(stack, gql, token=scoped)) == "FORBIDDEN"


async def test_a_scoped_admin_key_creates_keys_only_within_its_scope(
    identity_stack: Stack,
) -> None:
    stack = identity_stack
    tenant = new_tenant()
    admin = await stack.key(tenant, "root", ("admin",))
    r = await rest(
        stack,
        admin,
        CREATE_KEY,
        {"actorId": "ops", "roles": ["admin"], "operations": ["keys.createKey", "system.ping"]},
    )
    assert r.status_code == 200, r.text
    scoped_admin = r.json()["token"]
    stack.issued.append(scoped_admin)

    wider = await rest(stack, scoped_admin, CREATE_KEY, {"actorId": "x", "roles": ["admin"]})
    assert_problem(wider, 403, "FORBIDDEN")
    other = await rest(
        stack,
        scoped_admin,
        CREATE_KEY,
        {"actorId": "x", "roles": ["user"], "operations": ["billing.getInvoice"]},
    )
    assert_problem(other, 403, "FORBIDDEN")
    narrower = await rest(
        stack,
        scoped_admin,
        CREATE_KEY,
        {"actorId": "x", "roles": ["user"], "operations": ["system.ping"]},
    )
    assert narrower.status_code == 200, narrower.text
    stack.issued.append(narrower.json()["token"])
    unknown = await rest(
        stack,
        admin,
        CREATE_KEY,
        {"actorId": "x", "roles": ["user"], "operations": ["system.ping", "billing.nothing"]},
    )
    body = assert_problem(unknown, 422, "INVALID_INPUT")
    assert [(i["path"], i["code"]) for i in body["issues"]] == [
        ("operations.1", "unknown_operation")
    ]


# -- keys.createKey / listKeys / revokeKey -------------------------------------------------


async def test_a_tenant_admin_creates_lists_and_revokes_keys(identity_stack: Stack) -> None:
    stack = identity_stack
    tenant = new_tenant()
    admin = await stack.key(tenant, "root", ("admin",))

    create_id = rid("create")
    created = await rest(
        stack,
        admin,
        CREATE_KEY,
        {"actorId": "bob", "roles": ["user"], "kind": "agent", "description": "bob's agent"},
        headers={"X-Request-Id": create_id},
    )
    assert created.status_code == 200, created.text
    key = created.json()
    token = key.pop("token")
    stack.issued.append(token)
    assert key_id_of(token) == key["id"]
    assert key == {
        "id": key["id"],
        "actorId": "bob",
        "kind": "agent",
        "roles": ["user"],
        "operations": None,
        "description": "bob's agent",
        "createdAt": key["createdAt"],
        "revokedAt": None,
    }

    # the new key works at once, in the admin's tenant, as an agent
    ping = await rest(stack, token, PING)
    assert ping.json() == {"message": "ping", "actorId": "bob", "tenantId": tenant}
    assert (await rest(stack, token, PING)).status_code == 200  # now cached

    listed = await rest(stack, admin, LIST_KEYS)
    assert listed.status_code == 200, listed.text
    items = {item["id"]: item for item in listed.json()["items"]}
    assert items[key["id"]] == key
    assert len(items) == 2  # the admin's own key and bob's
    secret = token.split("_", 3)[3]
    assert secret not in listed.text and "token" not in listed.text

    revoke_id = rid("revoke")
    revoked = await rest(
        stack, admin, REVOKE_KEY, {"keyId": key["id"]}, headers={"X-Request-Id": revoke_id}
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revokedAt"] is not None
    # refused at once, although this server caches identities
    assert_problem(await rest(stack, token, PING), 401, "UNAUTHENTICATED")
    again = await rest(stack, admin, REVOKE_KEY, {"keyId": key["id"]})
    assert again.json() == revoked.json()  # revoking a revoked key answers it as it is

    active = {i["id"] for i in (await rest(stack, admin, LIST_KEYS)).json()["items"]}
    assert key["id"] not in active
    everything = await rest(stack, admin, LIST_KEYS, {"includeRevoked": True})
    assert {i["id"]: i["revokedAt"] for i in everything.json()["items"]}[key["id"]] == (
        revoked.json()["revokedAt"]
    )

    for request_id, operation in ((create_id, "keys.createKey"), (revoke_id, "keys.revokeKey")):
        [row] = await stack.audit(request_id)
        assert (row["operation_key"], row["decision"], row["outcome"]) == (operation, "allow", "OK")
    rows = await all_audit_rows(stack)
    assert not any(secret in str(value) for row in rows for value in row.values())


async def test_create_key_refuses_an_idempotency_key(identity_stack: Stack) -> None:
    stack = identity_stack
    admin = await stack.key(new_tenant(), "root", ("admin",))
    r = await rest(
        stack,
        admin,
        CREATE_KEY,
        {"actorId": "bob", "roles": ["user"]},
        headers={"Idempotency-Key": "k1"},
    )
    assert_problem(r, 422, "INVALID_INPUT")
    listed = (await rest(stack, admin, LIST_KEYS)).json()["items"]
    assert [item["actorId"] for item in listed] == ["root"]


async def test_keys_are_listed_a_page_at_a_time(identity_stack: Stack) -> None:
    stack = identity_stack
    tenant = new_tenant()
    admin = await stack.key(tenant, "root", ("admin",))
    created = [
        (await rest(stack, admin, CREATE_KEY, {"actorId": f"bot-{n}", "roles": ["user"]})).json()
        for n in range(5)
    ]
    await rest(stack, admin, REVOKE_KEY, {"keyId": created[2]["id"]})
    await stack.key(new_tenant(), "elsewhere", ("user",))  # another tenant's: never listed

    async def pages(body: dict[str, Any]) -> list[list[str]]:
        found: list[list[str]] = []
        cursor = None
        while True:
            r = await rest(stack, admin, LIST_KEYS, {**body, "cursor": cursor})
            assert r.status_code == 200, r.text
            found.append([item["actorId"] for item in r.json()["items"]])
            cursor = r.json()["nextCursor"]
            if cursor is None:
                return found

    assert await pages({"limit": 2}) == [["root", "bot-0"], ["bot-1", "bot-3"], ["bot-4"]]
    assert await pages({"limit": 3, "includeRevoked": True}) == [
        ["root", "bot-0", "bot-1"],
        ["bot-2", "bot-3", "bot-4"],
    ]
    assert await pages({}) == [["root", "bot-0", "bot-1", "bot-3", "bot-4"]]
    for cursor in ("bm90LWEtY3Vyc29y", "x"):
        odd = await rest(stack, admin, LIST_KEYS, {"cursor": cursor})
        assert_problem(odd, 422, "INVALID_INPUT")
    assert_problem(await rest(stack, admin, LIST_KEYS, {"limit": 0}), 422, "INVALID_INPUT")

    # the retired 1.0.0 still answers every key at once, and says it is retired
    async with stack.client(admin) as http:
        v1 = await http.post(f"{LIST_KEYS}/v1.0.0", json={})
    assert v1.status_code == 200, v1.text
    assert len(v1.json()["items"]) == 5 and "nextCursor" not in v1.json()
    assert v1.headers["link"] == '</api/ops/keys.listKeys/v1.1.0>; rel="successor-version"'
    assert v1.headers["deprecation"] == "@1795478400"  # 2026-11-24, RFC 9745
    latest = await rest(stack, admin, LIST_KEYS)
    assert not {"link", "sunset", "deprecation"} & set(latest.headers)


async def test_an_admin_sees_and_revokes_only_its_own_tenant_keys(identity_stack: Stack) -> None:
    stack = identity_stack
    tenant_a, tenant_b = new_tenant(), new_tenant()
    admin_a = await stack.key(tenant_a, "root-a", ("admin",))
    admin_b = await stack.key(tenant_b, "root-b", ("admin",))
    user_b = await stack.key(tenant_b, "bea")
    user_b_id = key_id_of(user_b)

    refused = await rest(stack, admin_a, REVOKE_KEY, {"keyId": user_b_id})
    assert_problem(refused, 404, "KEY_NOT_FOUND")
    assert (await rest(stack, user_b, PING)).status_code == 200  # still works

    seen_by_a = {i["id"] for i in (await rest(stack, admin_a, LIST_KEYS)).json()["items"]}
    seen_by_b = {i["id"] for i in (await rest(stack, admin_b, LIST_KEYS)).json()["items"]}
    assert seen_by_a == {key_id_of(admin_a)}
    assert seen_by_b == {key_id_of(admin_b), user_b_id}

    # a JWT admin of tenant A is confined to tenant A alike
    jwt_admin = mint(tenant_a, "root-a", roles=("admin",))
    assert_problem(
        await rest(stack, jwt_admin, REVOKE_KEY, {"keyId": user_b_id}), 404, "KEY_NOT_FOUND"
    )
    made = await rest(stack, jwt_admin, CREATE_KEY, {"actorId": "carl", "roles": ["user"]})
    assert made.status_code == 200, made.text
    stack.issued.append(made.json()["token"])
    assert (await rest(stack, made.json()["token"], PING)).json()["tenantId"] == tenant_a


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CREATE_KEY, {"actorId": "mallory", "roles": ["admin"]}),
        (LIST_KEYS, {}),
        (REVOKE_KEY, {"keyId": "abcdefghijkl"}),
    ],
)
async def test_a_non_admin_is_forbidden(
    identity_stack: Stack, path: str, body: dict[str, Any]
) -> None:
    stack = identity_stack
    tenant = new_tenant()
    for token in (await stack.key(tenant, "mallory"), mint(tenant, "mallory")):
        request_id = rid("nonadmin")
        r = await rest(stack, token, path, body, headers={"X-Request-Id": request_id})
        assert_problem(r, 403, "FORBIDDEN", request_id=request_id)
        [row] = await stack.audit(request_id)
        assert (row["decision"], row["outcome"]) == ("deny", "FORBIDDEN")


async def test_creating_keys_is_rate_limited_per_admin_by_default(identity_stack: Stack) -> None:
    """keys.createKey allows 30 calls a minute per actor (the contract's default): the
    31st answers 429 with Retry-After and is audited; another admin is not held back."""
    stack = identity_stack
    tenant = new_tenant()
    admin = await stack.key(tenant, "root", ("admin",))
    other = await stack.key(tenant, "ops", ("admin",))
    body = {"actorId": "bob", "roles": ["user"]}
    for n in range(30):
        made = await rest(stack, admin, CREATE_KEY, body)
        assert made.status_code == 200, (n, made.text)
        stack.issued.append(made.json()["token"])
    limited_id = rid("limited")
    limited = await rest(stack, admin, CREATE_KEY, body, headers={"X-Request-Id": limited_id})
    assert_problem(limited, 429, "RATE_LIMITED")
    assert int(limited.headers["Retry-After"]) >= 1
    (row,) = await stack.audit(limited_id)
    assert row["outcome"] == "RATE_LIMITED"
    fresh = await rest(stack, other, CREATE_KEY, body)
    assert fresh.status_code == 200, fresh.text
    stack.issued.append(fresh.json()["token"])
