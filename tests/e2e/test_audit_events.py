"""audit.listEvents and audit.getEvent against a running server: admins and auditors read
their own tenant's trail (filters, pages, single events), plain users are refused, a
tenant never sees another's events, and only the platform tenant's auditors read across
tenants. Served on REST, GraphQL and MCP like every contract.

The server is started with SPECOPS_AUDIT_PLATFORM_TENANT naming a tenant of its own, so
the refusals below hold with a platform tenant configured, not only without one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import api
from tests.support.databases import postgres_available, postgres_database, sqlite_url
from tests.support.mcp_client import http_client, meta
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
LIST = "/api/ops/audit.listEvents"
GET = "/api/ops/audit.getEvent"
LIST_OP = {"key": "audit.listEvents", "version": "1.0.0", "kind": "query"}
GET_OP = {"key": "audit.getEvent", "version": "1.0.0", "kind": "query"}
PLATFORM = f"platform-{uuid.uuid4().hex[:8]}"
HEX64 = set("0123456789abcdef")


@pytest.fixture(scope="module", params=BACKENDS)
async def audit_stack(
    request: pytest.FixtureRequest, localstripe: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A server whose platform tenant is PLATFORM."""
    tmp: Path = tmp_path_factory.mktemp(f"audit-{request.param}")
    env = {"SPECOPS_AUDIT_PLATFORM_TENANT": PLATFORM}
    if request.param == "sqlite":
        async with Stack.start(tmp, sqlite_url(tmp), localstripe, env=env) as running:
            yield running
        return
    reason = await postgres_available()
    if reason:
        pytest.skip(reason)
    async with (
        postgres_database() as url,
        Stack.start(tmp, url, localstripe, env=env) as running,
    ):
        yield running


@dataclass
class World:
    """Two tenants with some history, and the platform tenant's callers."""

    a: str
    b: str
    tokens: dict[str, str]
    #: label -> request id of the calls that made the history
    requests: dict[str, str] = field(default_factory=dict)
    #: alice's invoices in tenant A, oldest first
    alice_creates: list[str] = field(default_factory=list)


async def call(
    stack: Stack, token: str | None, path: str, body: dict[str, Any], request_id: str
) -> int:
    async with stack.client(token) as http:
        r = await http.post(path, json=body, headers=api.headers(request_id))
    return r.status_code


@pytest.fixture(scope="module")
async def world(audit_stack: Stack) -> World:
    stack = audit_stack
    a, b = api.new_tenant(), api.new_tenant()
    tokens = {
        "admin": await stack.key(a, "root", ("admin",)),
        "auditor": await stack.key(a, "audrey", ("auditor",)),
        "alice": await stack.key(a, "alice"),
        "bob": await stack.key(a, "bob"),
        "b-admin": await stack.key(b, "groot", ("admin",)),
        "b-auditor": await stack.key(b, "gail", ("auditor",)),
        "platform-auditor": await stack.key(PLATFORM, "pat", ("auditor",)),
        "platform-user": await stack.key(PLATFORM, "paul"),
    }
    w = World(a, b, tokens)
    invoice = {"amount": "4.00", "currency": "usd", "description": "audited"}
    for n in range(3):
        request_id = w.requests[f"alice-create-{n}"] = api.rid("alice-create")
        assert await call(stack, tokens["alice"], api.CREATE, invoice, request_id) == 200
        w.alice_creates.append(request_id)
    plan = [
        ("bob-create", "bob", api.CREATE, invoice, 200),
        ("bob-list-keys", "bob", "/api/ops/keys.listKeys", {}, 403),
        ("alice-missing", "alice", api.GET_INVOICE, {"invoiceId": "inv_nope"}, 404),
        ("b-create", "b-admin", api.CREATE, invoice, 200),
        ("anonymous", None, api.CREATE, invoice, 401),
    ]
    for label, who, path, body, status in plan:
        w.requests[label] = api.rid(label)
        token = tokens[who] if who else None
        assert await call(stack, token, path, body, w.requests[label]) == status
    for request_id in w.requests.values():  # query records are written asynchronously
        assert len(await stack.audit(request_id)) == 1
    return w


async def list_events(stack: Stack, token: str, status: int = 200, **data: Any) -> dict[str, Any]:
    async with stack.client(token) as http:
        r = await http.post(LIST, json=data)
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


async def all_pages(stack: Stack, token: str, **data: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await list_events(stack, token, **data, cursor=cursor)
        found.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return found


def request_ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["requestId"] for item in items]


# -- admins and auditors of tenant A -------------------------------------------------------


@pytest.mark.parametrize("reader", ["admin", "auditor"])
async def test_admins_and_auditors_filter_their_tenants_events(
    audit_stack: Stack, world: World, reader: str
) -> None:
    stack, token = audit_stack, world.tokens[reader]
    created = await list_events(stack, token, operationKey="billing.createInvoice")
    assert request_ids(created["items"]) == [
        world.requests["bob-create"],
        *reversed(world.alice_creates),
    ]
    assert created["nextCursor"] is None
    seqs = [item["seq"] for item in created["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)

    forbidden = await list_events(stack, token, outcome="FORBIDDEN", actorId="bob")
    assert request_ids(forbidden["items"]) == [world.requests["bob-list-keys"]]
    [refusal] = forbidden["items"]
    assert (refusal["decision"], refusal["status"], refusal["operationKey"]) == (
        "deny",
        403,
        "keys.listKeys",
    )
    assert refusal["policyRule"] or refusal["detail"]

    bobs = await list_events(stack, token, actorId="bob")
    assert request_ids(bobs["items"]) == [
        world.requests["bob-list-keys"],
        world.requests["bob-create"],
    ]
    missing = await list_events(stack, token, outcome="INVOICE_NOT_FOUND")
    assert request_ids(missing["items"]) == [world.requests["alice-missing"]]
    by_request = await list_events(stack, token, requestId=world.alice_creates[1])
    assert request_ids(by_request["items"]) == [world.alice_creates[1]]
    [one] = by_request["items"]
    by_trace = await list_events(stack, token, traceId=one["traceId"])
    assert world.alice_creates[1] in request_ids(by_trace["items"])
    assert await list_events(stack, token, transport="graphql", actorId="alice") == {
        "items": [],
        "nextCursor": None,
    }


async def test_time_ranges(audit_stack: Stack, world: World) -> None:
    stack, token = audit_stack, world.tokens["auditor"]
    page = await list_events(stack, token, actorId="alice", operationKey="billing.createInvoice")
    third, second, first = page["items"]
    assert datetime.fromisoformat(first["at"]) < datetime.fromisoformat(third["at"])
    # since is inclusive, until exclusive
    ranged = await list_events(stack, token, since=first["at"], until=third["at"], actorId="alice")
    assert request_ids(ranged["items"]) == [second["requestId"], first["requestId"]]
    later = await list_events(
        stack, token, since=second["at"], operationKey="billing.createInvoice", actorId="alice"
    )
    assert request_ids(later["items"]) == [third["requestId"], second["requestId"]]
    backwards = await list_events(stack, token, since=third["at"], until=first["at"])
    assert backwards == {"items": [], "nextCursor": None}


async def test_an_event_carries_every_column(audit_stack: Stack, world: World) -> None:
    stack, token = audit_stack, world.tokens["admin"]
    [event] = (await list_events(stack, token, requestId=world.alice_creates[0]))["items"]
    [row] = await stack.audit(world.alice_creates[0])
    assert event["seq"] == row["seq"] and event["id"] == row["id"]
    assert (event["prevHash"], event["hash"]) == (row["prev_hash"], row["hash"])
    assert len(event["hash"]) == 64 and set(event["hash"]) <= HEX64
    assert event["tenantId"] == world.a
    assert (event["actorId"], event["actorKind"], event["credentialId"]) == (
        "alice",
        "user",
        row["credential_id"],
    )
    assert (event["operationKey"], event["operationVersion"], event["transport"]) == (
        "billing.createInvoice",
        "1.0.0",
        "rest",
    )
    assert (event["decision"], event["outcome"], event["status"]) == ("allow", "OK", 200)
    assert event["inputDigest"] == row["input_digest"]
    assert event["traceId"] == row["trace_id"]
    assert event["input"]["description"] == "audited"
    assert isinstance(event["latencyMs"], float) and event["replayed"] is False
    assert datetime.fromisoformat(event["at"]).utcoffset() is not None
    snake = {
        "request_id",
        "tenant_id",
        "actor_id",
        "operation_key",
        "prev_hash",
        "latency_ms",
    }
    assert not snake & set(event)


async def test_pages_cover_the_trail_once_while_it_grows(audit_stack: Stack, world: World) -> None:
    stack, token = audit_stack, world.tokens["auditor"]
    first = await list_events(stack, token, limit=200)
    assert first["nextCursor"] is None
    whole = first["items"]
    assert set(world.requests.values()) - {
        world.requests["b-create"],
        world.requests["anonymous"],
    } <= set(request_ids(whole))
    # each page's own audit record is a new event of this tenant, written while paging
    paged = await all_pages(stack, token, limit=2)
    seqs = [item["seq"] for item in paged]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    newest = whole[0]["seq"]
    assert [s for s in seqs if s <= newest] == [item["seq"] for item in whole]
    assert all(item["tenantId"] == world.a for item in paged)


async def test_get_event(audit_stack: Stack, world: World) -> None:
    stack, token = audit_stack, world.tokens["auditor"]
    [listed] = (await list_events(stack, token, requestId=world.requests["bob-create"]))["items"]
    async with stack.client(token) as http:
        got = await http.get(GET, params={"seq": listed["seq"]})
        assert got.status_code == 200, got.text
        assert got.json() == listed
        [theirs] = await stack.audit(world.requests["b-create"])
        request_id = api.rid("get-theirs")
        r = await http.post(GET, json={"seq": theirs["seq"]}, headers=api.headers(request_id))
        api.assert_problem(r, 404, "AUDIT_EVENT_NOT_FOUND", request_id=request_id, operation=GET_OP)
        r = await http.post(GET, json={"seq": 2**62})
        api.assert_problem(r, 404, "AUDIT_EVENT_NOT_FOUND")
        r = await http.post(GET, json={"seq": 0})
        api.assert_problem(r, 422, "INVALID_INPUT")


async def test_a_malformed_cursor_is_invalid_input(audit_stack: Stack, world: World) -> None:
    async with audit_stack.client(world.tokens["admin"]) as http:
        for cursor in ["bm9wZQ", "c2VxOjA", "c2VxOng"]:  # "nope", "seq:0", "seq:x"
            request_id = api.rid("cursor")
            r = await http.post(LIST, json={"cursor": cursor}, headers=api.headers(request_id))
            body = api.assert_problem(
                r, 422, "INVALID_INPUT", request_id=request_id, operation=LIST_OP
            )
            assert [issue["path"] for issue in body["issues"]] == ["cursor"]
        r = await http.get(LIST, params={"cursor": "not a cursor!"})
        api.assert_problem(r, 422, "INVALID_INPUT")


# -- who may not ---------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["alice", "platform-user"])
async def test_plain_users_are_refused(audit_stack: Stack, world: World, caller: str) -> None:
    stack = audit_stack
    async with stack.client(world.tokens[caller]) as http:
        for path, body, op in [(LIST, {}, LIST_OP), (GET, {"seq": 1}, GET_OP)]:
            request_id = api.rid("plain-user")
            r = await http.post(path, json=body, headers=api.headers(request_id))
            api.assert_problem(r, 403, "FORBIDDEN", request_id=request_id, operation=op)
            [row] = await stack.audit(request_id)
            assert (row["decision"], row["outcome"]) == ("deny", "FORBIDDEN")


@pytest.mark.parametrize("reader", ["b-admin", "b-auditor"])
async def test_another_tenant_never_sees_tenant_as_events(
    audit_stack: Stack, world: World, reader: str
) -> None:
    stack, token = audit_stack, world.tokens[reader]
    theirs = await all_pages(stack, token, limit=200)
    assert theirs and all(item["tenantId"] == world.b for item in theirs)
    assert world.requests["b-create"] in request_ids(theirs)
    for label in ("alice-create-0", "anonymous"):
        found = await list_events(stack, token, requestId=world.requests[label])
        assert found["items"] == []
    request_id = api.rid("cross-tenant")
    async with stack.client(token) as http:
        r = await http.post(LIST, json={"tenantId": world.a}, headers=api.headers(request_id))
        body = api.assert_problem(r, 403, "FORBIDDEN", request_id=request_id, operation=LIST_OP)
        assert "read_any_tenant" in body["detail"]
        [a_event] = await stack.audit(world.alice_creates[0])
        r = await http.post(GET, json={"seq": a_event["seq"]})
        api.assert_problem(r, 404, "AUDIT_EVENT_NOT_FOUND")
    [row] = await stack.audit(request_id)
    assert (row["decision"], row["outcome"], row["tenant_id"]) == ("deny", "FORBIDDEN", world.b)


async def test_the_platform_auditor_reads_across_tenants(audit_stack: Stack, world: World) -> None:
    stack, token = audit_stack, world.tokens["platform-auditor"]
    a_events = await list_events(
        stack, token, tenantId=world.a, operationKey="billing.createInvoice"
    )
    assert request_ids(a_events["items"]) == [
        world.requests["bob-create"],
        *reversed(world.alice_creates),
    ]
    every = await all_pages(stack, token, operationKey="billing.createInvoice", limit=3)
    tenants = {item["requestId"]: item["tenantId"] for item in every}
    assert tenants[world.requests["b-create"]] == world.b
    assert tenants[world.alice_creates[0]] == world.a
    [anonymous] = (await list_events(stack, token, requestId=world.requests["anonymous"]))["items"]
    assert (anonymous["tenantId"], anonymous["outcome"]) == (None, "UNAUTHENTICATED")
    async with stack.client(token) as http:
        r = await http.post(GET, json={"seq": anonymous["seq"]})
    assert r.status_code == 200, r.text
    assert r.json() == anonymous


# -- every transport -----------------------------------------------------------------------


LIST_QUERY = """
query Events($input: ListEventsInput) {
  audit_listEvents(input: $input) {
    items { seq requestId tenantId operationKey outcome at input prevHash hash }
    nextCursor
  }
}
"""
GET_QUERY = """
query Event($seq: BigInt!) {
  audit_getEvent_v1_0_0(input: {seq: $seq}) { seq requestId actorId }
}
"""


async def test_graphql(audit_stack: Stack, world: World) -> None:
    stack = audit_stack
    r = await api.post_graphql(
        stack,
        LIST_QUERY,
        {"input": {"requestId": world.alice_creates[2], "limit": 5}},
        token=world.tokens["auditor"],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body
    [event] = body["data"]["audit_listEvents"]["items"]
    assert (event["requestId"], event["tenantId"], event["outcome"]) == (
        world.alice_creates[2],
        world.a,
        "OK",
    )
    assert event["input"]["currency"] == "usd"
    r = await api.post_graphql(stack, GET_QUERY, {"seq": event["seq"]}, token=world.tokens["admin"])
    assert r.json()["data"]["audit_getEvent_v1_0_0"] == {
        "seq": event["seq"],
        "requestId": world.alice_creates[2],
        "actorId": "alice",
    }
    r = await api.post_graphql(
        stack, LIST_QUERY, {"input": {"tenantId": world.a}}, token=world.tokens["b-admin"]
    )
    error = api.only_error(r.json())
    assert error["extensions"]["code"] == "FORBIDDEN"


async def test_mcp(audit_stack: Stack, world: World) -> None:
    stack = audit_stack
    async with http_client(stack.url + "/mcp", world.tokens["auditor"]) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"audit_listEvents", "audit_getEvent"} <= set(tools)
        hints = tools["audit_listEvents"].annotations
        assert hints is not None and hints.read_only_hint is True
        listed = await client.call_tool(
            "audit_listEvents",
            {"actorId": "bob", "outcome": "FORBIDDEN"},
            meta=meta(requestId=api.rid("mcp-audit")),
        )
        assert listed.is_error is False, listed.structured_content
        page = listed.structured_content
        assert isinstance(page, dict)
        assert request_ids(page["items"]) == [world.requests["bob-list-keys"]]
        got = await client.call_tool("audit_getEvent", {"seq": page["items"][0]["seq"]})
        assert got.is_error is False and got.structured_content == page["items"][0]
    async with http_client(stack.url + "/mcp", world.tokens["alice"]) as client:
        refused = await client.call_tool("audit_listEvents", {})
        assert refused.is_error is True
        assert isinstance(refused.structured_content, dict)
        assert refused.structured_content["code"] == "FORBIDDEN"


async def test_rest_get_with_query_parameters(audit_stack: Stack, world: World) -> None:
    async with audit_stack.client(world.tokens["auditor"]) as http:
        r = await http.get(LIST, params={"actorId": "alice", "limit": "2"})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) == 2 and page["nextCursor"]
        r = await http.get(LIST, params={"actorId": "alice", "cursor": page["nextCursor"]})
        assert r.status_code == 200, r.text
        rest = r.json()["items"]
        assert {i["seq"] for i in rest}.isdisjoint(i["seq"] for i in page["items"])
        assert max(i["seq"] for i in rest) < min(i["seq"] for i in page["items"])
