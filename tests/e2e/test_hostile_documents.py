"""Hostile requests against a running server: GraphQL fragment bombs are refused while
``/healthz`` keeps answering, and a body nested 10,000 levels deep is a typed 400 on
every transport, audited once against its endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.api import new_tenant, rid
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

#: How long a request may take before the test calls the server stuck: a liveness bound,
#: far above any answer here (a 30-level fragment bomb held the server for minutes).
STUCK = 60.0


def bomb(levels: int, leaf: str = "__typename") -> str:
    spreads = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"query {{ ...F0 }} {spreads} fragment F{levels} on Query {{ {leaf} }}"


BOMBS = [
    bomb(22),
    bomb(30),
    bomb(30, "__schema { queryType { name } }"),
    bomb(30, "system_ping { message }"),
    bomb(190),  # about the most the token limit lets through
    "query { ...F0 } fragment F0 on Query { ...F1 } fragment F1 on Query { ...F0 }",
    "query { " + "... on Query { " * 150 + "__typename" + " }" * 150 + " }",
]


@pytest.mark.parametrize("path", ["/graphql", "/graphql-locked"])
async def test_fragment_bombs_are_refused_while_healthz_answers(variants: Stack, path: str) -> None:
    async with variants.client() as http:

        async def healthz_meanwhile() -> int:
            await asyncio.sleep(0.005)  # once the bomb is on its way
            return (await http.get("/healthz", timeout=STUCK)).status_code

        for query in BOMBS * 2:  # the second time, the documents have been seen
            answer, healthz = await asyncio.gather(
                http.post(path, json={"query": query}, timeout=STUCK), healthz_meanwhile()
            )
            assert healthz == 200
            assert answer.status_code == 200, answer.text
            errors = answer.json()["errors"]
            codes = {e["extensions"]["code"] for e in errors}
            assert codes == {"MALFORMED_REQUEST"}, (query, errors)


DEEP = "[" * 10_000 + "]" * 10_000
JSON = {"Content-Type": "application/json"}
MCP = {**JSON, "Accept": "application/json, text/event-stream"}


async def one_row(stack: Stack, request_id: str) -> dict[str, Any]:
    rows = await stack.audit(request_id)
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/api/ops/system.ping", DEEP, JSON),
        ("/graphql", DEEP, JSON),
        ("/graphql", '{"query": "{ __typename }", "variables": {"v": ' + DEEP + "}}", JSON),
        (
            "/mcp",
            '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": ' + DEEP + "}",
            MCP,
        ),
        ("/mcp-stateless", DEEP, MCP),
    ],
)
async def test_a_body_nested_too_deeply_is_a_typed_400_audited_once(
    variants: Stack, path: str, body: str, headers: dict[str, str]
) -> None:
    token = await variants.key(new_tenant(), "alice")
    request_id = rid()
    async with variants.client(token) as http:
        r = await http.post(path, content=body, headers={**headers, "X-Request-Id": request_id})
    assert r.status_code == 400, r.text
    answer = r.json()
    if path.startswith("/api/"):
        assert (answer["code"], answer["detail"]) == (
            "MALFORMED_REQUEST",
            "The body nests too deeply",
        )
    elif path == "/graphql":
        [error] = answer["errors"]
        assert error["extensions"]["code"] == "MALFORMED_REQUEST"
        assert error["message"] == "The request's JSON nests too deeply"
    else:  # MCP answers with the protocol's parse error
        assert answer["error"]["code"] == -32700
    row = await one_row(variants, request_id)
    endpoint = "system.ping" if path.startswith("/api/") else path.strip("/").split("-")[0]
    assert (row["operation_key"], row["outcome"], row["status"]) == (
        endpoint,
        "MALFORMED_REQUEST",
        400,
    )
