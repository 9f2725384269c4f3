"""Completeness of the audit trail: one invocation ending at each stage of the pipeline,
through each transport (REST, GraphQL, MCP, CLI), has exactly one audit record with the
right fields, and the sensitive input never shows.

Every call carries a W3C ``traceparent`` of its own, so its record is found by trace id
(the CLI has no request id of the caller's choosing; the other transports' request ids
are checked too). The stages, in pipeline order: unknown operation, bad credentials,
invalid input, denied by policy, idempotency conflict, rate limited, handler error,
timeout, success, and a replay from the idempotency store.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from policy.api_keys import key_id_of
from specops.operations import build_registry
from specops.settings import Settings
from storage.database import Database
from storage.tables import audit_events
from tests.e2e.test_rate_limit_shared import REDIS_STORAGE, redis_unavailable
from tests.support import api
from tests.support.mcp_client import http_client, meta
from tests.support.processes import ROOT
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

REDACTED = "[REDACTED]"
#: A value of a field the redaction rules cover (``token``: a name the default catches).
SECRET = "tok-SECRET-4b1d-never-shown"
BAD_TOKEN = "sk_not_a_real_key_0123456789abcdef"


@dataclass(frozen=True)
class Sent:
    """One invocation: what was sent, and what came back."""

    key: str
    trace_id: str
    request_id: str | None
    code: str
    replayed: bool = False
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Expect:
    """What the record of a stage's invocation must say."""

    code: str
    decision: str
    status: int
    #: Who the record names: "admin", "user", or None (nobody identified).
    who: str | None
    replayed: bool = False
    #: The input is stored, redacted (False: refused before it was read, or no input).
    redacted_input: bool = False


def traceparent() -> tuple[str, str]:
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


class Caller:
    """Invokes operations over one transport."""

    transport: str

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def call(
        self, key: str, data: dict[str, Any], token: str, idempotency_key: str | None = None
    ) -> Sent:
        raise NotImplementedError

    def audited_key(self, key: str, code: str) -> str:
        """The operation key the record names for a call of ``key``."""
        return key

    def expect(self, stage: str, expect: Expect) -> Expect:
        """What this transport's record of ``stage`` says (the same, but for GraphQL)."""
        return expect


class Rest(Caller):
    transport = "rest"

    async def call(
        self, key: str, data: dict[str, Any], token: str, idempotency_key: str | None = None
    ) -> Sent:
        trace_id, parent = traceparent()
        request_id = api.rid("rest")
        async with self.stack.client(token) as http:
            r = await http.post(
                f"/api/ops/{key}",
                json=data,
                headers=api.headers(request_id, idempotency_key, traceparent=parent),
            )
        body = r.json()
        code = "OK" if r.status_code == 200 else body["code"]
        assert code == "OK" or SECRET not in r.text  # the test handlers echo their token
        replayed = r.headers.get("idempotent-replayed") == "true"
        return Sent(key, trace_id, request_id, code, replayed, idempotency_key)


class GraphQL(Caller):
    transport = "graphql"

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        settings = Settings(
            DATABASE_URL=stack.database_url, extra_operations=stack.env["SPECOPS_EXTRA_OPERATIONS"]
        )
        registry = build_registry(Database(stack.database_url), settings)
        self.kinds = {
            op.contract.key: (op.contract.kind, op.contract.input.__name__)
            for op in registry.latest()
        }

    def document(self, key: str) -> str:
        kind, input_type = self.kinds.get(key, ("query", "PingInput"))
        verb = "query" if kind == "query" else "mutation"
        field = key.replace(".", "_")
        return f"{verb} Q($input: {input_type}!) {{ {field}(input: $input) {{ __typename }} }}"

    async def call(
        self, key: str, data: dict[str, Any], token: str, idempotency_key: str | None = None
    ) -> Sent:
        trace_id, parent = traceparent()
        request_id = api.rid("gql")
        r = await api.post_graphql(
            self.stack,
            self.document(key),
            {"input": data},
            token=token,
            headers=api.headers(request_id, idempotency_key, traceparent=parent),
        )
        body = r.json()
        errors = body.get("errors")
        assert not errors or SECRET not in r.text
        code = errors[0]["extensions"]["code"] if errors else "OK"
        replayed = bool((body.get("extensions") or {}).get("replayed"))
        field = key.replace(".", "_")
        sent_key = f"{idempotency_key}:{field}" if idempotency_key else None
        return Sent(key, trace_id, request_id, code, replayed, sent_key)

    def audited_key(self, key: str, code: str) -> str:
        # An unknown field fails document validation: no field ran; the request itself is
        # audited against the endpoint.
        return "graphql" if code == "MALFORMED_REQUEST" else key

    def expect(self, stage: str, expect: Expect) -> Expect:
        if stage == "unknown operation":  # the document does not validate: 400
            return Expect("MALFORMED_REQUEST", "none", 400, "admin")
        return expect


class Mcp(Caller):
    transport = "mcp"

    async def call(
        self, key: str, data: dict[str, Any], token: str, idempotency_key: str | None = None
    ) -> Sent:
        trace_id, parent = traceparent()
        request_id = api.rid("mcp")
        tool = key.replace(".", "_")
        if token == BAD_TOKEN:
            return await self.refused(tool, data, request_id, trace_id, parent)
        items: dict[str, Any] = {"requestId": request_id, "traceparent": parent}
        if idempotency_key is not None:
            items["idempotencyKey"] = idempotency_key
        async with http_client(self.stack.url + "/mcp", token) as client:
            result = await client.call_tool(tool, data, meta=meta(**items))
        body = result.structured_content
        assert isinstance(body, dict), result
        assert not result.is_error or SECRET not in result.model_dump_json()
        code = body["code"] if result.is_error else "OK"
        replayed = bool((result.meta or {}).get("replayed"))
        return Sent(key, trace_id, request_id, code, replayed, idempotency_key)

    async def refused(
        self, tool: str, data: dict[str, Any], request_id: str, trace_id: str, parent: str
    ) -> Sent:
        """Bad credentials are refused at the HTTP layer, before any session."""
        message = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": data},
        }
        headers = {
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {BAD_TOKEN}",
            "X-Request-Id": request_id,
            "traceparent": parent,
        }
        async with httpx.AsyncClient(base_url=self.stack.url, timeout=10) as http:
            r = await http.post("/mcp", json=message, headers=headers)
        assert r.status_code == 401, r.text
        return Sent(tool, trace_id, request_id, r.json()["code"])

    def audited_key(self, key: str, code: str) -> str:
        if code == "UNAUTHENTICATED":
            return "mcp"  # refused before any tool call: audited against the endpoint
        if code == "OP_NOT_FOUND":
            return f"tool:{key.replace('.', '_')}"
        return key


class Cli(Caller):
    transport = "cli"

    async def call(
        self, key: str, data: dict[str, Any], token: str, idempotency_key: str | None = None
    ) -> Sent:
        trace_id, parent = traceparent()
        command = [sys.executable, "-m", "specops.cli", "call", key, "--input", json.dumps(data)]
        if idempotency_key is not None:
            command += ["--idempotency-key", idempotency_key]
        env = {
            **os.environ,
            **self.stack.env,
            "SPECOPS_API_KEY": token,
            "TRACEPARENT": parent,
            "SPECOPS_LOG_LEVEL": "error",
        }
        if redis_unavailable() is None:  # each CLI call is a process: share the counters
            env["SPECOPS_RATE_LIMIT_STORAGE"] = REDIS_STORAGE
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode == 0:
            return Sent(key, trace_id, None, "OK", False, idempotency_key)
        # stderr: log lines (one JSON object each), then the problem document (indented)
        text = err.decode()
        problem = json.loads(text[text.rindex("\n{\n") + 1 :] if "\n{\n" in text else text)
        assert SECRET not in text + out.decode()
        return Sent(key, trace_id, None, problem["code"], False, idempotency_key)


CALLERS: dict[str, Callable[[Stack], Caller]] = {
    "rest": Rest,
    "graphql": GraphQL,
    "mcp": Mcp,
    "cli": Cli,
}


@dataclass
class Tokens:
    admin: str
    user: str
    tenant: str


Stage = Callable[[Caller, Tokens], Awaitable[Sent]]


async def unknown(c: Caller, t: Tokens) -> Sent:
    return await c.call("nothing.here", {"message": "hi"}, t.admin)


async def bad_credentials(c: Caller, t: Tokens) -> Sent:
    return await c.call("system.ping", {"message": "hi"}, BAD_TOKEN)


async def invalid_input(c: Caller, t: Tokens) -> Sent:
    return await c.call("testing.explode", {"token": SECRET + "x" * 100}, t.admin)


async def denied(c: Caller, t: Tokens) -> Sent:
    return await c.call("testing.explode", {"token": SECRET}, t.user)


async def conflict(c: Caller, t: Tokens) -> Sent:
    key = api.rid("idem")
    first = await c.call("testing.slowCommand", {"token": "first", "seconds": 0}, t.admin, key)
    assert first.code == "OK", first
    return await c.call("testing.slowCommand", {"token": SECRET, "seconds": 0}, t.admin, key)


async def rate_limited(c: Caller, t: Tokens) -> Sent:
    for _ in range(2):
        sent = await c.call("testing.limited", {"token": SECRET}, t.admin)
        assert sent.code == "OK", sent
    return await c.call("testing.limited", {"token": SECRET}, t.admin)


async def handler_error(c: Caller, t: Tokens) -> Sent:
    return await c.call("testing.explode", {"token": SECRET}, t.admin)


async def timeout(c: Caller, t: Tokens) -> Sent:
    return await c.call("testing.slow", {"token": SECRET, "seconds": 1.5}, t.admin)


async def success(c: Caller, t: Tokens) -> Sent:
    return await c.call("testing.slowCommand", {"token": SECRET, "seconds": 0}, t.admin)


async def replay(c: Caller, t: Tokens) -> Sent:
    key = api.rid("idem")
    first = await c.call("testing.slowCommand", {"token": SECRET, "seconds": 0}, t.admin, key)
    assert first.code == "OK", first
    return await c.call("testing.slowCommand", {"token": SECRET, "seconds": 0}, t.admin, key)


STAGES: dict[str, tuple[Stage, Expect]] = {
    "unknown operation": (unknown, Expect("OP_NOT_FOUND", "none", 404, "admin")),
    "bad credentials": (bad_credentials, Expect("UNAUTHENTICATED", "deny", 401, None)),
    "invalid input": (
        invalid_input,
        Expect("INVALID_INPUT", "none", 422, "admin", redacted_input=True),
    ),
    "denied": (denied, Expect("FORBIDDEN", "deny", 403, "user", redacted_input=True)),
    "conflict": (
        conflict,
        Expect("IDEMPOTENCY_CONFLICT", "allow", 422, "admin", redacted_input=True),
    ),
    "rate limited": (
        rate_limited,
        Expect("RATE_LIMITED", "allow", 429, "admin", redacted_input=True),
    ),
    "handler error": (
        handler_error,
        Expect("INTERNAL", "allow", 500, "admin", redacted_input=True),
    ),
    "timeout": (timeout, Expect("TIMEOUT", "allow", 504, "admin", redacted_input=True)),
    "success": (success, Expect("OK", "allow", 200, "admin", redacted_input=True)),
    "replay": (
        replay,
        Expect("OK", "allow", 200, "admin", replayed=True, redacted_input=True),
    ),
}


async def records_of(db: Database, trace_id: str) -> list[dict[str, Any]]:
    """The records carrying ``trace_id``, once there (queries are group-committed)."""
    for _ in range(100):
        async with db.connect() as conn:
            rows = await conn.execute(
                select(audit_events).where(audit_events.c.trace_id == trace_id)
            )
            found = [dict(r) for r in rows.mappings().all()]
        if found:
            await asyncio.sleep(0.2)  # a second record, if any, would be there by now
            async with db.connect() as conn:
                rows = await conn.execute(
                    select(audit_events).where(audit_events.c.trace_id == trace_id)
                )
                return [dict(r) for r in rows.mappings().all()]
        await asyncio.sleep(0.05)
    return []


def check(
    caller: Caller, stage: str, sent: Sent, expect: Expect, records: list[dict[str, Any]], t: Tokens
) -> list[str]:
    """How the records of one invocation differ from what its stage must leave."""
    where = f"{caller.transport} / {stage}"
    if sent.code != expect.code:
        return [f"{where}: answered {sent.code}, expected {expect.code}"]
    if len(records) != 1:
        return [f"{where}: {len(records)} records"]
    [row] = records
    wrong = []
    expected: dict[str, Any] = {
        "transport": caller.transport,
        "operation_key": caller.audited_key(sent.key, sent.code),
        "outcome": expect.code,
        "decision": expect.decision,
        "status": expect.status,
        "replayed": expect.replayed,
        "trace_id": sent.trace_id,
    }
    if sent.request_id is not None:
        expected["request_id"] = sent.request_id
    if sent.idempotency_key is not None:
        expected["idempotency_key"] = sent.idempotency_key
    if expect.who is not None:
        token = t.admin if expect.who == "admin" else t.user
        expected["tenant_id"] = t.tenant
        expected["actor_id"] = expect.who
        expected["credential_id"] = key_id_of(token)
    else:
        expected.update(tenant_id=None, actor_id=None)
    for name, value in expected.items():
        if row[name] != value:
            wrong.append(f"{where}: {name} is {row[name]!r}, expected {value!r}")
    if row["at"] is None or row["latency_ms"] is None or row["latency_ms"] < 0:
        wrong.append(f"{where}: no time or latency: {row}")
    if expect.redacted_input:
        stored = json.loads(row["input"] or "null")
        if not isinstance(stored, dict) or stored.get("token") != REDACTED:
            wrong.append(f"{where}: input not redacted: {row['input']!r}")
    if any(SECRET in str(value) for value in row.values()):
        wrong.append(f"{where}: the secret is in the record: {row}")
    return wrong


@pytest.mark.parametrize("transport", list(CALLERS))
async def test_every_stage_leaves_exactly_one_record(testing_stack: Stack, transport: str) -> None:
    stack = testing_stack
    if transport == "cli" and redis_unavailable() is not None:
        pytest.skip(f"CLI rate limits need shared storage: {redis_unavailable()}")
    tenant = api.new_tenant()
    tokens = Tokens(
        admin=await stack.key(tenant, "admin", ("admin",)),
        user=await stack.key(tenant, "user"),
        tenant=tenant,
    )
    caller = CALLERS[transport](stack)
    wrong: list[str] = []
    for stage, (run, expect) in STAGES.items():
        sent = await run(caller, tokens)
        expect = caller.expect(stage, expect)
        wrong += check(
            caller, stage, sent, expect, await records_of(stack.db, sent.trace_id), tokens
        )
    assert not wrong, "\n".join(wrong)
    log = stack.server.log()
    assert SECRET not in log
