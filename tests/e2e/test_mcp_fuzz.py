"""Fuzzing the MCP surface: the inputs schemathesis generates for each REST operation
(valid and invalid, from the OpenAPI document) are sent as the arguments of the MCP tool
of the same operation, through the SDK's client over streamable HTTP.

A tool's input model is the REST operation's, so the document's strategies fit. Whatever
the arguments, the answer is a tool result: an output, or ``isError`` with a problem
document whose code is a stable catalogue code other than ``INTERNAL``; never a JSON-RPC
error. The caller is a user and admin of a tenant of its own, as in the GraphQL fuzz.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from mcp.shared.exceptions import MCPError
from schemathesis.core.result import Ok

from tests.support.fuzz import OPENAPI_CONFIG, SETTINGS, is_stable_refusal
from tests.support.mcp_client import http_client
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

PREFIX = "/api/ops/"


def generated_inputs(operation: Any) -> list[dict[str, Any]]:
    """``SETTINGS.max_examples`` JSON object bodies for ``operation`` (deterministic), valid and
    invalid alike; bodies that are not objects are left out, as MCP arguments are one."""
    found: list[dict[str, Any]] = []

    @SETTINGS
    @given(case=operation.as_strategy())
    def collect(case: Any) -> None:
        if isinstance(case.body, dict):
            found.append(case.body)

    collect()
    return found


def problems_in(result: Any) -> list[str]:
    """What is wrong with one tool result, if anything."""
    body = result.structured_content
    if not isinstance(body, dict):
        return [f"no structured content: {result.content!r:.300}"]
    if not result.is_error:
        return []
    code = body.get("code")
    if not is_stable_refusal(code):
        return [f"a problem without a stable code ({code!r}): {body.get('detail')}"]
    return []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_mcp_tools_answer_any_arguments_with_output_or_a_coded_problem(
    stack: Stack,
) -> None:
    token = await stack.key(f"mcpfuzz-{uuid.uuid4().hex[:8]}", "fuzzer", ("user", "admin"))
    schema = schemathesis.openapi.from_url(f"{stack.url}/api/openapi.json", config=OPENAPI_CONFIG)
    operations = {}
    for loaded in schema.get_all_operations():
        assert isinstance(loaded, Ok), loaded.err()
        operation = loaded.ok()
        key = operation.path.removeprefix(PREFIX)
        if operation.method.upper() == "POST" and "/" not in key:
            operations[key.replace(".", "_")] = operation
    seen: dict[str, int] = {}
    failures: list[str] = []
    async with http_client(f"{stack.url}/mcp", token) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        fuzzed = sorted(tools & set(operations))
        assert {"billing_capturePayment", "system_ping"} <= set(fuzzed), fuzzed
        for name in fuzzed:
            for arguments in generated_inputs(operations[name]):
                try:
                    result = await client.call_tool(name, arguments)
                except MCPError as exc:
                    failures.append(f"{name} {arguments!r:.200}: JSON-RPC error {exc}")
                    continue
                found = problems_in(result)
                failures.extend(f"{name} {arguments!r:.200}: {p}" for p in found)
                if result.is_error and not found:
                    code = result.structured_content["code"]
                    seen[code] = seen.get(code, 0) + 1
    assert not failures, "\n".join(failures[:20])
    assert len(fuzzed) >= 10, f"the admin sees too few tools: {fuzzed}"
    assert seen.get("INVALID_INPUT"), f"no input was refused, so validation went untried: {seen}"
