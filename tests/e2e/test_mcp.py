"""MCP end to end: the SDK's own client over streamable HTTP against a running server, and
over stdio against a subprocess; localstripe behind billing.capturePayment."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from tests.support.api import new_tenant, rid
from tests.support.mcp_client import http_client, leaves, meta, text_of
from tests.support.processes import ROOT
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

MODES = ["auto", "legacy"]  # 2026 per-request envelope, and the initialize handshake
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def problem_of(result: Any) -> dict[str, Any]:
    assert result.is_error is True
    body = result.structured_content
    assert isinstance(body, dict) and json.loads(text_of(result)) == body
    return body


# -- streamable HTTP --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["/mcp", "/mcp-stateless"])
async def test_ping(variants: Stack, mode: str, path: str) -> None:
    org = new_tenant()
    token = await variants.key(org, "alice")
    request_id = rid()
    headers = {"X-Request-Id": request_id}
    async with http_client(variants.url + path, token, mode=mode, headers=headers) as client:
        result = await client.call_tool("system_ping", {"message": "over http"})
    assert result.is_error is False
    assert result.structured_content == {
        "message": "over http",
        "actorId": "alice",
        "tenantId": org,
    }
    assert result.meta is not None and result.meta["requestId"] == request_id
    rows = await variants.audit(request_id)
    assert [(r["transport"], r["outcome"], r["client"]) for r in rows] == [
        ("mcp", "OK", "127.0.0.1")
    ]


async def test_create_invoice_then_capture_payment(variants: Stack) -> None:
    org = new_tenant()
    token = await variants.key(org, "alice")
    capture_id, retry_id = rid(), rid()
    idempotency_key = f"pay-{uuid.uuid4().hex}"
    async with http_client(variants.url + "/mcp", token) as client:
        created = await client.call_tool(
            "billing_createInvoice", {"amount": "12.50", "currency": "usd"}
        )
        assert created.is_error is False, created.structured_content
        invoice = created.structured_content
        assert isinstance(invoice, dict) and invoice["status"] == "open"
        payment = {
            "invoiceId": invoice["id"],
            "amount": 12.5,
            "currency": "usd",
            "paymentMethodId": "pm_card_visa",
        }
        paid = await client.call_tool(
            "billing_capturePayment_v1_0_0",
            payment,
            meta=meta(idempotencyKey=idempotency_key, requestId=capture_id),
        )
        retried = await client.call_tool(
            "billing_capturePayment",
            payment,
            meta=meta(idempotencyKey=idempotency_key, requestId=retry_id),
        )
        again = await client.call_tool("billing_capturePayment", payment)
        after = await client.call_tool("billing_getInvoice", {"invoiceId": invoice["id"]})
    assert paid.is_error is False, paid.structured_content
    result = paid.structured_content
    assert isinstance(result, dict)
    assert result["status"] == "succeeded" and result["transactionId"].startswith("pi_")
    # the same key replays the first result: no second charge
    assert retried.structured_content == result
    assert retried.meta is not None and retried.meta["replayed"] is True
    # without the key, the domain says the invoice is paid
    assert problem_of(again)["code"] == "INVOICE_ALREADY_PAID"
    assert isinstance(after.structured_content, dict)
    assert after.structured_content["status"] == "paid"
    assert after.structured_content["transactionId"] == result["transactionId"]
    rows = await variants.audit(capture_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["transport"], row["outcome"], row["decision"]) == ("mcp", "OK", "allow")
    assert (row["tenant_id"], row["actor_id"], row["operation_key"]) == (
        org,
        "alice",
        "billing.capturePayment",
    )
    assert (row["operation_version"], row["idempotency_key"]) == ("1.0.0", idempotency_key)
    replay = await variants.audit(retry_id)
    assert [(r["transport"], r["replayed"]) for r in replay] == [("mcp", True)]


async def test_idempotency_key_header(variants: Stack) -> None:
    token = await variants.key(new_tenant(), "alice")
    headers = {"Idempotency-Key": f"hdr-{uuid.uuid4().hex}"}
    args = {"amount": "1.25", "currency": "eur"}
    async with http_client(variants.url + "/mcp", token, headers=headers) as client:
        first = await client.call_tool("billing_createInvoice", args)
        second = await client.call_tool("billing_createInvoice", args)
        clash = await client.call_tool(
            "billing_createInvoice", args, meta=meta(idempotencyKey="other")
        )
    assert first.is_error is False and second.structured_content == first.structured_content
    assert second.meta is not None and second.meta["replayed"] is True
    assert problem_of(clash)["code"] == "MALFORMED_REQUEST"


async def test_invalid_arguments_and_unknown_tools_are_error_results(variants: Stack) -> None:
    token = await variants.key(new_tenant(), "alice")
    async with http_client(variants.url + "/mcp", token) as client:
        invalid = await client.call_tool(
            "billing_createInvoice", {"amount": "-1", "currency": "dollars"}
        )
        unknown = await client.call_tool("billing.createInvoice", {})
    body = problem_of(invalid)
    assert body["code"] == "INVALID_INPUT"
    assert {i["path"] for i in body["issues"]} == {"amount", "currency"}
    assert problem_of(unknown)["code"] == "OP_NOT_FOUND"


async def test_a_missing_or_bad_bearer_is_refused(variants: Stack) -> None:
    async with httpx.AsyncClient(base_url=variants.url, timeout=10) as http:
        missing = await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        bad = await http.post(
            "/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": "Bearer sk_live_nope"},
        )
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["code"] == "UNAUTHENTICATED"
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    with pytest.raises(Exception) as refused:  # the SDK wraps the refusal in groups
        async with http_client(variants.url + "/mcp", None) as client:
            await client.list_tools()
    assert any(isinstance(e, MCPError) for e in leaves(refused.value))


async def test_a_deployment_may_opt_out_of_the_bearer(variants: Stack) -> None:
    org = new_tenant()
    token = await variants.key(org, "alice")
    async with http_client(variants.url + "/mcp-open", None) as client:
        assert (await client.list_tools()).tools == []  # every contract needs an identity
        anonymous = await client.call_tool("system_ping", {})
    assert problem_of(anonymous)["code"] == "UNAUTHENTICATED"
    async with http_client(variants.url + "/mcp-open", token) as client:
        ping = await client.call_tool("system_ping", {})
    assert isinstance(ping.structured_content, dict)
    assert ping.structured_content["tenantId"] == org


async def test_tools_list_is_filtered_by_identity(variants: Stack) -> None:
    user = await variants.key(new_tenant(), "alice")
    nobody = await variants.key(new_tenant(), "mallory", roles=("nobody",))
    async with http_client(variants.url + "/mcp", user) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
    assert {"billing_capturePayment", "billing_capturePayment_v1_0_0", "system_ping"} <= names
    assert "specops://ops/billing.capturePayment" in uris
    async with http_client(variants.url + "/mcp", nobody) as client:
        hidden = {tool.name for tool in (await client.list_tools()).tools}
        refused = await client.call_tool("billing_createInvoice", {"amount": 1, "currency": "usd"})
    assert not {n for n in hidden if n.startswith("billing_")}
    assert problem_of(refused)["code"] == "FORBIDDEN"


async def test_host_and_origin_checks(variants: Stack) -> None:
    token = await variants.key(new_tenant(), "alice")
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=variants.url, timeout=10) as http:
        foreign_host = await http.post(
            "/mcp", json=INITIALIZE, headers={**headers, "Host": "evil.example:8000"}
        )
        foreign_origin = await http.post(
            "/mcp", json=INITIALIZE, headers={**headers, "Origin": "http://evil.example"}
        )
        local_origin = await http.post(
            "/mcp", json=INITIALIZE, headers={**headers, "Origin": "http://localhost:3000"}
        )
    assert foreign_host.status_code == 421
    assert foreign_origin.status_code == 403
    assert local_origin.status_code == 200


async def test_a_session_is_bound_to_the_key_that_opened_it(variants: Stack) -> None:
    alice = await variants.key(new_tenant(), "alice")
    bob = await variants.key(new_tenant(), "bob")
    list_tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(base_url=variants.url, timeout=10) as http:
        opened = await http.post(
            "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {alice}"}
        )
        session = {
            **MCP_HEADERS,
            "Mcp-Session-Id": opened.headers["mcp-session-id"],
            "Mcp-Protocol-Version": "2025-06-18",
        }
        hijack = await http.post(
            "/mcp", json=list_tools, headers={**session, "Authorization": f"Bearer {bob}"}
        )
        owner = await http.post(
            "/mcp", json=list_tools, headers={**session, "Authorization": f"Bearer {alice}"}
        )
        stateless = await http.post(
            "/mcp-stateless",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {alice}"},
        )
    assert opened.status_code == 200
    assert hijack.status_code == 404
    assert owner.status_code == 200 and "billing_capturePayment" in owner.text
    assert stateless.status_code == 200 and "mcp-session-id" not in stateless.headers


# -- stdio ------------------------------------------------------------------------------


def stdio_env(stack: Stack, token: str) -> dict[str, str]:
    """The environment of ``specops mcp`` on the stack's database, as ``token``'s identity."""
    return {**os.environ, **stack.env, "SPECOPS_API_KEY": token, "PYTHONPATH": str(ROOT)}


async def test_stdio_session(variants: Stack, tmp_path: Path) -> None:
    org = new_tenant()
    token = await variants.key(org, "alice")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "specops.cli", "mcp"],
        env=stdio_env(variants, token),
        cwd=ROOT,
    )
    request_id = rid()
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            ping = await client.call_tool("system_ping", {}, meta=meta(requestId=request_id))
            invalid = await client.call_tool("system_ping", {"nope": True})
    assert "billing_capturePayment" in names
    assert ping.structured_content == {"message": "ping", "actorId": "alice", "tenantId": org}
    assert problem_of(invalid)["code"] == "INVALID_INPUT"
    rows = await variants.audit(request_id)
    assert [(r["transport"], r["client"], r["tenant_id"]) for r in rows] == [("mcp", "stdio", org)]
    logged = [json.loads(line) for line in stderr.read_text().splitlines() if line.startswith("{")]
    assert any(entry.get("event") == "invocation" for entry in logged)


async def test_stdio_stdout_carries_only_the_protocol(variants: Stack) -> None:
    token = await variants.key(new_tenant(), "alice")
    messages: list[dict[str, Any]] = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "system_ping", "arguments": {"message": "raw"}},
        },
    ]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "specops.cli",
        "mcp",
        cwd=ROOT,
        env=stdio_env(variants, token),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    replies: list[dict[str, Any]] = []
    for message in messages:
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        await proc.stdin.drain()
        if message.get("id") is not None:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=90)
            replies.append(json.loads(line))
    proc.stdin.close()
    rest, stderr = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, stderr.decode()
    assert rest == b""  # nothing but the replies to our requests
    assert all(reply["jsonrpc"] == "2.0" for reply in replies)
    assert [reply["id"] for reply in replies] == [1, 2]
    assert replies[0]["result"]["serverInfo"]["name"] == "specops"
    call = replies[1]["result"]
    assert call["isError"] is False
    assert call["structuredContent"]["message"] == "raw"
    assert b'"event": "invocation"' in stderr or b'"event":"invocation"' in stderr
