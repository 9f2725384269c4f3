"""MCP: the tool list generated from the registry, calls through mcp.Client in-process, and
stateless JSON POSTs answered as the SDK's session manager answers them."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, TextResourceContents
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from sqlalchemy import select

from registry.contract import ContractError, Deprecation
from registry.registry import Registry
from specops.app import Server
from storage.database import Database
from storage.tables import audit_events
from tests.support.doubles import Patched
from tests.support.mcp_client import meta, text_of
from tests.support.stack import audit_rows
from tests.unit.conftest import Declare, ThingInput
from transports.mcp import McpHttp
from transports.mcp.names import TOOL_NAME, doc_uri, tool_name
from transports.mcp.resources import DocCatalog
from transports.mcp.server import Caller, build_server, unknown_tool_key
from transports.mcp.stateless import StatelessJsonPosts
from transports.mcp.tools import ToolCatalog

MODES = ["auto", "legacy"]  # the modern in-process path, and the initialize handshake


async def handler(data: ThingInput, ctx: Any) -> dict[str, Any]:
    return {"ok": True}


@pytest.fixture(scope="module")
def catalog(registry: Registry) -> ToolCatalog:
    return ToolCatalog(registry)


# -- the tool list ----------------------------------------------------------------------


def test_every_contract_is_a_tool_pinned_and_latest(
    registry: Registry, catalog: ToolCatalog
) -> None:
    names = [entry.name for entry in catalog]
    assert all(TOOL_NAME.fullmatch(n) for n in names), names
    assert all("." not in n for n in names)
    assert len(set(names)) == len(names)
    operations = list(registry.operations())
    assert len(names) == len(operations) + len(list(registry.latest()))
    for key in ("billing.capturePayment", "billing.createInvoice", "billing.getInvoice"):
        assert key.replace(".", "_") in names
        assert f"{key.replace('.', '_')}_v1_0_0" in names
    assert "system_ping" in names  # queries are tools too
    latest = catalog.get("billing_capturePayment")
    pinned = catalog.get("billing_capturePayment_v1_0_0")
    assert latest is not None and pinned is not None
    assert (latest.key, latest.version) == ("billing.capturePayment", None)
    assert (pinned.key, pinned.version) == ("billing.capturePayment", "1.0.0")


def test_schemas_come_from_the_models_and_are_self_contained(catalog: ToolCatalog) -> None:
    for entry in catalog:
        contract = entry.operation.contract
        tool = entry.tool
        assert tool.input_schema == contract.input.model_json_schema(by_alias=True)
        assert tool.output_schema == contract.output.model_json_schema(
            by_alias=True, mode="serialization"
        )
        for schema in (tool.input_schema, tool.output_schema):
            assert schema["type"] == "object"
            Draft202012Validator.check_schema(schema)
            refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(schema))
            for ref in refs:  # every $ref points inside the schema itself
                assert (
                    ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"]
                )
    capture = catalog.get("billing_capturePayment")
    assert capture is not None
    assert {"invoiceId", "paymentMethodId", "amount", "currency"} <= set(
        capture.tool.input_schema["properties"]
    )
    page = catalog.get("billing_listInvoices")
    assert page is not None and "$defs" in (page.tool.output_schema or {})
    validator = Draft202012Validator(page.tool.output_schema or {})
    assert validator.is_valid({"items": [], "nextCursor": None})
    assert not validator.is_valid({"items": [{"id": 1}]})


def test_annotations_follow_the_kind(catalog: ToolCatalog) -> None:
    ping = catalog.get("system_ping")
    capture = catalog.get("billing_capturePayment")
    assert ping is not None and capture is not None
    assert ping.tool.annotations is not None and capture.tool.annotations is not None
    assert ping.tool.annotations.read_only_hint is True
    assert ping.tool.annotations.idempotent_hint is True
    assert capture.tool.annotations.read_only_hint is False
    assert capture.tool.annotations.idempotent_hint is False
    # contracts declare no destructive flag yet: left unset, never claimed safe
    assert capture.tool.annotations.destructive_hint is None
    assert capture.tool.annotations.title == "Capture payment"


def test_titles_meta_and_descriptions_tell_an_agent_what_it_needs(catalog: ToolCatalog) -> None:
    entry = catalog.get("billing_capturePayment")
    pinned = catalog.get("billing_capturePayment_v1_0_0")
    assert entry is not None and pinned is not None
    contract = entry.operation.contract
    tool = entry.tool
    assert tool.title == "Capture payment (billing.capturePayment)"
    assert pinned.tool.title == "Capture payment (billing.capturePayment v1.0.0)"
    assert tool.meta is not None
    assert tool.meta["operation"] == {
        "key": "billing.capturePayment",
        "version": "1.0.0",
        "kind": "command",
    }
    assert tool.meta["pinned"] is False and (pinned.tool.meta or {})["pinned"] is True
    assert tool.meta["documentation"] == "specops://ops/billing.capturePayment"
    description = tool.description or ""
    for text in (contract.description, contract.goal, contract.context):
        assert text in description
    for spec in contract.errors:
        assert spec.code in description and spec.title in description
    assert "PAYMENT_IN_PROGRESS (409, retryable)" in description
    assert "INVALID_INPUT" in description and "issues" in description
    assert "_meta.idempotencyKey" in description
    assert "only invoices the caller owns" in description
    assert "billing_capturePayment_v1_0_0" in description
    query_description = (catalog.get("system_ping") or entry).tool.description or ""
    assert "Reads only" in query_description and "idempotencyKey" not in query_description


def test_versions_pinned_latest_and_deprecated(declare_command: Declare) -> None:
    registry = Registry()
    registry.add(declare_command(version="1.0.0"), handler)
    registry.add(declare_command(version="1.1.0-rc.1"), handler)
    registry.add(
        declare_command(
            version="2.0.0", deprecation=Deprecation("use things.doOther", replaced_by="1.0.0")
        ),
        handler,
    )
    catalog = ToolCatalog(registry)
    names = [entry.name for entry in catalog]
    assert names == [
        "things_doThing_v1_0_0",
        "things_doThing",
        "things_doThing_v1_1_0-rc_1",
        "things_doThing_v2_0_0",
    ]
    latest = catalog.get("things_doThing")
    assert latest is not None and str(latest.operation.contract.version) == "1.1.0-rc.1"
    deprecated = catalog.get("things_doThing_v2_0_0")
    assert deprecated is not None
    description = deprecated.tool.description or ""
    notice = (
        "things.doThing v2.0.0 is deprecated: use things.doOther. Use things.doThing@1.0.0 instead."
    )
    assert notice in description


def test_a_name_too_long_for_mcp_is_refused_at_start_up(declare_command: Declare) -> None:
    contract = declare_command(key="things." + "a" * 57)
    assert tool_name(contract, pinned=False) == "things_" + "a" * 57  # 64 characters
    with pytest.raises(ContractError, match="MCP tool name"):
        tool_name(contract, pinned=True)
    registry = Registry()
    registry.add(contract, handler)
    with pytest.raises(ContractError):
        ToolCatalog(registry)


def test_unknown_tool_names_never_resolve_to_a_contract() -> None:
    assert unknown_tool_key("billing.capturePayment") == "tool:billing.capturePayment"
    assert Registry().resolve(unknown_tool_key("x")) is None


def test_each_contract_has_a_markdown_resource(registry: Registry) -> None:
    docs = DocCatalog(registry)
    uris = [doc.uri for doc in docs]
    assert "specops://ops/billing.capturePayment" in uris
    assert "specops://ops/billing.capturePayment/v1.0.0" in uris
    doc = docs.get("specops://ops/billing.capturePayment")
    assert doc is not None
    assert doc.resource.mime_type == "text/markdown"
    assert doc.resource.uri == doc_uri(doc.operation.contract, pinned=False)
    for text in (
        "# Capture payment — `billing.capturePayment` v1.0.0",
        "Capture funds from customer payment method",
        "| `CARD_DECLINED` | 402 | no | The card was declined |",
        "`billing_capturePayment`, `billing_capturePayment_v1_0_0`",
        '"paymentMethodId"',
        "## Output (JSON Schema)",
    ):
        assert text in doc.text
    retired = docs.get("specops://ops/keys.listKeys/v1.0.0")
    assert retired is not None
    for text in ("deprecated since 2026-11-24", "Use keys.listKeys@1.1.0 instead."):
        assert text in retired.text


# -- calls, in process ------------------------------------------------------------------


async def new_key(server: Server, roles: tuple[str, ...] = ("user",)) -> tuple[str, str]:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    _, token = await server.api_keys.create(tenant_id=tenant, actor_id="alice", roles=roles)
    return tenant, token


def connect(server: Server, token: str | None, mode: str = "auto") -> Client:
    mcp = build_server(server.pipeline, lambda _ctx: Caller(token, client="test"))
    return Client(mcp, mode=mode)


def problem(result: Any) -> dict[str, Any]:
    """The problem of an isError result, checked to be the same as structuredContent and text."""
    assert result.is_error is True
    body = result.structured_content
    assert isinstance(body, dict)
    assert json.loads(text_of(result)) == body
    for field in ("type", "title", "status", "code", "detail", "requestId"):
        assert field in body
    return body


@pytest.mark.parametrize("mode", MODES)
async def test_ping_happy_path_is_audited_as_mcp(server: Server, mode: str) -> None:
    tenant, token = await new_key(server)
    request_id = f"mcp-{uuid.uuid4().hex}"
    async with connect(server, token, mode) as client:
        result = await client.call_tool(
            "system_ping", {"message": "hello"}, meta=meta(requestId=request_id)
        )
    assert result.is_error is False
    expected = {"message": "hello", "actorId": "alice", "tenantId": tenant}
    assert result.structured_content == expected
    assert json.loads(text_of(result)) == expected
    assert result.meta is not None and result.meta["requestId"] == request_id
    assert result.meta["operation"] == {"key": "system.ping", "version": "1.0.0", "kind": "query"}
    rows = await audit_rows(server.db, request_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["transport"], row["outcome"], row["decision"]) == ("mcp", "OK", "allow")
    assert (row["tenant_id"], row["actor_id"], row["client"]) == (tenant, "alice", "test")


@pytest.mark.parametrize("mode", MODES)
async def test_invalid_arguments_answer_the_field_issues(server: Server, mode: str) -> None:
    _, token = await new_key(server)
    async with connect(server, token, mode) as client:
        result = await client.call_tool("system_ping_v1_0_0", {"message": "x" * 201, "bogus": 1})
        missing = await client.call_tool("billing_capturePayment", {"currency": "usd"})
    body = problem(result)
    assert (body["code"], body["status"]) == ("INVALID_INPUT", 422)
    assert body["operation"] == {"key": "system.ping", "version": "1.0.0", "kind": "query"}
    issues = {issue["path"]: issue["code"] for issue in body["issues"]}
    assert issues == {"message": "string_too_long", "bogus": "extra_forbidden"}
    paths = {issue["path"] for issue in problem(missing)["issues"]}
    assert {"invoiceId", "paymentMethodId", "amount"} <= paths


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["no_such_tool", "system.ping", "system_ping_v9_9_9", "x" * 300])
async def test_an_unknown_tool_is_an_error_result(server: Server, mode: str, name: str) -> None:
    _, token = await new_key(server)
    async with connect(server, token, mode) as client:
        result = await client.call_tool(name, {})
    body = problem(result)
    assert (body["code"], body["status"]) == ("OP_NOT_FOUND", 404)
    rows = await audit_rows(server.db, body["requestId"])
    assert [(r["transport"], r["outcome"]) for r in rows] == [("mcp", "OP_NOT_FOUND")]


async def test_refusals_are_error_results(server: Server) -> None:
    _, nobody = await new_key(server, roles=("nobody",))
    async with connect(server, None) as client:
        anonymous = await client.call_tool("system_ping", {})
    async with connect(server, "sk_live_bogus") as client:
        bad_key = await client.call_tool("system_ping", {})
    async with connect(server, nobody) as client:
        forbidden = await client.call_tool("system_ping", {})
    assert problem(anonymous)["code"] == "UNAUTHENTICATED"
    assert problem(bad_key)["code"] == "UNAUTHENTICATED"
    assert problem(forbidden)["code"] == "FORBIDDEN"


async def test_tools_list_shows_what_the_identity_may_invoke(server: Server) -> None:
    _, user = await new_key(server)
    _, nobody = await new_key(server, roles=("nobody",))
    async with connect(server, user) as client:
        seen = {tool.name for tool in (await client.list_tools()).tools}
    for key in ("billing.capturePayment", "billing.createInvoice", "billing.getInvoice"):
        assert {key.replace(".", "_"), f"{key.replace('.', '_')}_v1_0_0"} <= seen
    assert {"billing_listInvoices", "system_ping"} <= seen
    async with connect(server, nobody) as client:
        assert (await client.list_tools()).tools == []
        assert (await client.list_resources()).resources == []
    async with connect(server, None) as client:  # every contract needs credentials
        assert (await client.list_tools()).tools == []
    async with connect(server, "sk_live_bogus") as client:
        assert (await client.list_tools()).tools == []


async def test_idempotency_key_in_meta(server: Server) -> None:
    _, token = await new_key(server)
    args = {"amount": "3.50", "currency": "usd"}
    key = meta(idempotencyKey=f"k-{uuid.uuid4().hex}")
    async with connect(server, token) as client:
        first = await client.call_tool("billing_createInvoice", args, meta=key)
        again = await client.call_tool("billing_createInvoice", args, meta=key)
        other = await client.call_tool("billing_createInvoice", {**args, "amount": "4"}, meta=key)
        bad = await client.call_tool("billing_createInvoice", args, meta=meta(idempotencyKey=7))
        fresh = await client.call_tool("billing_createInvoice", args)
    assert first.is_error is False and again.is_error is False
    assert again.structured_content == first.structured_content
    assert again.meta is not None and again.meta["replayed"] is True
    assert problem(other)["code"] == "IDEMPOTENCY_CONFLICT"
    assert problem(bad)["code"] == "MALFORMED_REQUEST"
    assert isinstance(fresh.structured_content, dict) and isinstance(first.structured_content, dict)
    assert fresh.structured_content["id"] != first.structured_content["id"]


async def test_a_failure_outside_the_pipeline_is_an_internal_error_result(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await new_key(server)

    async def broken(_invocation: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(server, "pipeline", Patched(server.pipeline, invoke=broken))
    async with connect(server, token) as client:
        result = await client.call_tool("system_ping", {})
    body = problem(result)
    assert (body["code"], body["status"]) == ("INTERNAL", 500)
    assert "secret" not in json.dumps(body)


async def test_documentation_resources(server: Server) -> None:
    _, token = await new_key(server)
    async with connect(server, token) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        read = await client.read_resource("specops://ops/system.ping/v1.0.0")
        with pytest.raises(MCPError, match="Unknown resource"):
            await client.read_resource("specops://ops/no.such")
    assert "specops://ops/system.ping" in listed
    content = read.contents[0]
    assert content.mime_type == "text/markdown"
    assert isinstance(content, TextResourceContents)
    assert "# Ping — `system.ping` v1.0.0" in content.text
    _, nobody = await new_key(server, roles=("nobody",))
    async with connect(server, nobody) as client:
        with pytest.raises(MCPError, match="Unknown resource"):
            await client.read_resource("specops://ops/system.ping")


# -- stateless JSON POSTs: our single-exchange path against the SDK's session manager ---

POST_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "mcp-protocol-version": LATEST_HANDSHAKE_VERSION,
}
ORIGIN = "http://127.0.0.1:8000"
SAME_ID = "req-lean-0001"  # the same request id on both paths, so the answers compare equal


def rpc(method: str, params: dict[str, Any] | None = None, id: int | str = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def tool_call(name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "_meta": {"requestId": SAME_ID}}
    if arguments is not None:
        params["arguments"] = arguments
    return rpc("tools/call", params)


INITIALIZE = rpc(
    "initialize",
    {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
)
PING = rpc("ping", id="p")
#: name -> (body, headers over POST_HEADERS; None removes one)
POSTS: dict[str, tuple[Any, dict[str, str | None]]] = {
    "call": (tool_call("system_ping", {"message": "hi"}), {}),
    "call without arguments": (tool_call("system_ping", None), {}),
    "invalid arguments": (tool_call("system_ping", {"message": 5}), {}),
    "unknown tool": (tool_call("no_such_tool", {}), {}),
    "call params without a name": (rpc("tools/call", {"arguments": {}}), {}),
    "tools/list": (rpc("tools/list"), {}),
    "resources/list": (rpc("resources/list", {}), {}),
    "resources/read": (rpc("resources/read", {"uri": "specops://ops/system.ping"}), {}),
    "unknown resource": (rpc("resources/read", {"uri": "specops://ops/no.such"}), {}),
    "ping": (PING, {}),
    "initialize": (INITIALIZE, {}),
    "unknown method": (rpc("prompts/list"), {}),
    "notification": ({"jsonrpc": "2.0", "method": "notifications/initialized"}, {}),
    "posted response": ({"jsonrpc": "2.0", "id": 9, "result": {}}, {}),
    "batch": ([PING], {}),
    "not JSON": (b"{nope", {}),
    "not JSON-RPC": ({"hello": 1}, {}),
    "no protocol version": (
        tool_call("system_ping", {"message": "hi"}),
        {"mcp-protocol-version": None},
    ),
    "older protocol version": (PING, {"mcp-protocol-version": "2025-03-26"}),
    "unknown protocol version": (PING, {"mcp-protocol-version": "1999-01-01"}),
    "SSE only accepted": (PING, {"Accept": "text/event-stream"}),
    "any type accepted": (PING, {"Accept": "*/*"}),
    "not a JSON content type": (PING, {"Content-Type": "text/plain"}),
    "another JSON content type": (PING, {"Content-Type": "application/json-seq"}),
    "charset": (PING, {"Content-Type": "application/json; charset=utf-8"}),
    "wrong Host": (PING, {"Host": "evil.example"}),
    "wrong Origin": (PING, {"Origin": "http://evil.example"}),
    "local Origin": (PING, {"Origin": "http://localhost:3000"}),
    "too large": (tool_call("system_ping", {"message": "x" * (4 * 1024 * 1024)}), {}),
}


@asynccontextmanager
async def stateless_endpoint(server: Server) -> AsyncIterator[McpHttp]:
    """``/mcp`` stateless with JSON responses, its session manager running (entered in the
    test's own task: the manager's task group cannot span a fixture's setup and teardown)."""
    endpoint = McpHttp(server.pipeline, stateless=True, json_response=True)
    async with endpoint.run():
        yield endpoint


def asgi(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN)


async def post(app: Any, body: Any, headers: dict[str, str | None], token: str) -> httpx.Response:
    sent = {**POST_HEADERS, "Authorization": f"Bearer {token}", **headers}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with asgi(app) as http:
        return await http.post(
            "/mcp", content=content, headers={k: v for k, v in sent.items() if v is not None}
        )


def answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body (JSON where it is JSON) of an answer."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, dict(response.headers), body


#: Audit columns that differ between any two calls (refusals get fresh request ids).
VOLATILE = {"id", "at", "latency_ms", "seq", "prev_hash", "hash", "request_id", "trace_id"}


async def new_audit_rows(db: Database, after: int) -> tuple[list[dict[str, Any]], int]:
    """The audit rows past id ``after``, once no more arrive (query records are written
    asynchronously), their per-call columns left out; and the last id."""
    seen, steady, last = -1, 0, after
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        async with db.connect() as conn:
            found = await conn.execute(
                select(audit_events).where(audit_events.c.id > after).order_by(audit_events.c.id)
            )
            rows = [dict(r) for r in found.mappings().all()]
        steady = steady + 1 if len(rows) == seen else 0
        if steady == 5:
            break
        seen = len(rows)
        await asyncio.sleep(0.05)
    if rows:
        last = rows[-1]["id"]
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows], last


@pytest.mark.parametrize("case", list(POSTS))
async def test_stateless_json_posts_answer_and_audit_as_the_sdk_does(
    server: Server, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await new_key(server)
    body, headers = POSTS[case]
    _, start = await new_audit_rows(server.db, 0)
    async with stateless_endpoint(server) as endpoint:
        ours = answer(await post(endpoint, body, headers, token))
        ours_rows, middle = await new_audit_rows(server.db, start)
        # the same endpoint, every POST left to the SDK's session manager
        monkeypatch.setattr(StatelessJsonPosts, "serves", lambda _self, _scope: False)
        sdk = answer(await post(endpoint, body, headers, token))
        sdk_rows, _ = await new_audit_rows(server.db, middle)
    assert ours == sdk
    assert ours_rows == sdk_rows


async def test_handshake_era_posts_skip_the_session_manager(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await new_key(server)
    calls: list[str] = []
    async with stateless_endpoint(server) as endpoint:
        handle = endpoint.manager.handle_request

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            calls.append(scope["method"])
            await handle(scope, receive, send)

        monkeypatch.setattr(endpoint.manager, "handle_request", counted)
        for version in (LATEST_HANDSHAKE_VERSION, "2025-03-26", None):
            served = await post(endpoint, PING, {"mcp-protocol-version": version}, token)
            assert served.status_code == 200
        assert calls == []
        # the 2026 per-request envelope and other methods stay with the session manager
        await post(endpoint, PING, {"mcp-protocol-version": "2026-07-28"}, token)
        async with asgi(endpoint) as http:
            auth = {**POST_HEADERS, "Authorization": f"Bearer {token}"}
            deleted = await http.delete("/mcp", headers=auth)
    assert calls == ["POST", "DELETE"]
    assert deleted.status_code == 405  # no session to end


async def test_stateless_json_calls_go_through_the_pipeline(server: Server) -> None:
    tenant, token = await new_key(server)
    request_id = f"lean-{uuid.uuid4().hex}"
    params = {"name": "system_ping", "arguments": {"message": "lean"}}
    call = rpc("tools/call", {**params, "_meta": {"requestId": request_id}})
    async with stateless_endpoint(server) as endpoint:
        result = (await post(endpoint, call, {}, token)).json()["result"]
        refused = await post(endpoint, call, {}, "sk_live_bogus")
    expected = {"message": "lean", "actorId": "alice", "tenantId": tenant}
    assert result["structuredContent"] == expected
    assert result["_meta"]["requestId"] == request_id
    rows = await audit_rows(server.db, request_id)
    assert [(r["transport"], r["outcome"], r["tenant_id"], r["actor_id"]) for r in rows] == [
        ("mcp", "OK", tenant, "alice")
    ]
    assert refused.status_code == 401  # the bearer check still comes first


async def test_stateless_json_handler_failures_are_json_rpc_errors(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await new_key(server)

    async def broken(_credentials: Any) -> Any:
        raise RuntimeError("secret detail")

    # no bearer check at the endpoint, so that only the listing's identity lookup fails
    monkeypatch.setattr(server, "pipeline", Patched(server.pipeline, actor_for=broken))
    async with stateless_endpoint(server) as endpoint:
        endpoint.require_auth = False
        ours = answer(await post(endpoint, rpc("tools/list"), {}, token))
        sdk = answer(await post(endpoint.manager.handle_request, rpc("tools/list"), {}, token))
    assert ours == sdk
    assert ours[2]["error"] == {"code": INTERNAL_ERROR, "message": "Internal error"}
