"""The two paths of ``/graphql`` agree: one corpus of requests goes to the endpoint (the
fast path for what it serves) and to strawberry's view alone, against the real pipeline
on SQLite and PostgreSQL; the responses and the audit rows must be the same."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from specops.app import Server
from tests.support.doubles import ViewCalls
from tests.support.stack import audit_rows
from tests.unit.test_graphql_schema import Answer, call, graphql_body
from transports.graphql import GraphQLTransport

PING = '{ system_ping(input: {message: "hi"}) { message actorId tenantId } }'
CREATE = "mutation($i: CreateInvoiceInput!) { made: billing_createInvoice(input: $i) { %s } }"
INVOICE = "id amount amountMinor currency description status ownerId"
FRAGMENT = (
    'query Q { a: system_ping(input: {message: "a"}) { ...P } '
    'b: system_ping(input: {message: "b"}) { ... on PingOutput { message } } } '
    "fragment P on PingOutput { message tenantId }"
)

#: name -> (body, headers beyond the caller's key, whether the fast path serves it)
CORPUS: dict[str, tuple[bytes, dict[str, str], bool]] = {
    "query": (graphql_body(PING), {}, True),
    "variables": (
        graphql_body(
            "query P($m: String!) { system_ping(input: {message: $m}) { message } }", {"m": "x"}
        ),
        {},
        True,
    ),
    "aliases and typename": (
        graphql_body("{ one: system_ping { __typename m: message } two: system_ping { actorId } }"),
        {},
        True,
    ),
    "fragments": (graphql_body(FRAGMENT), {}, True),
    "named operation": (
        graphql_body("query A { system_ping { message } } query B { system_ping { actorId } }")[:-1]
        + b', "operationName": "B"}',
        {},
        True,
    ),
    "mutation": (
        graphql_body(CREATE % INVOICE, {"i": {"amount": "12.5", "currency": "usd"}}),
        {},
        True,
    ),
    "mutation with idempotency key": (
        graphql_body(CREATE % "amount", {"i": {"amount": "1", "currency": "eur"}}),
        {"Idempotency-Key": "KEY"},
        True,
    ),
    "field refused by policy": (graphql_body("{ keys_listKeys { items { id } } }"), {}, True),
    "input refused by the contract": (
        graphql_body(CREATE % "id", {"i": {"amount": "-1", "currency": "usd"}}),
        {},
        True,
    ),
    "variables of the wrong type": (
        graphql_body(CREATE % "id", {"i": {"amount": "x", "currency": "usd"}}),
        {},
        True,
    ),
    "missing resource": (
        graphql_body('{ billing_getInvoice(input: {invoiceId: "inv_missing"}) { id } }'),
        {},
        True,
    ),
    "no credentials": (graphql_body(PING), {"Authorization": ""}, True),
    "bad credentials": (graphql_body(PING), {"Authorization": "Bearer sk_nope"}, True),
    "introspection": (graphql_body("{ __schema { queryType { name } } }"), {}, False),
    "invalid document": (graphql_body("{ system_ping { nope } }"), {}, False),
    "unparsable document": (graphql_body("{ system_ping { message }"), {}, False),
    "not JSON": (b"{not json", {}, False),
}

#: Audit columns that differ between any two calls.
VOLATILE = {"id", "at", "latency_ms", "seq", "prev_hash", "hash", "request_id", "trace_id"}


def normalized(value: Any, volatile: dict[str, str]) -> Any:
    """``value`` with this call's own strings (request id, invoice ids...) named."""
    text = json.dumps(value, sort_keys=True, default=str)
    for actual, name in volatile.items():
        text = text.replace(actual, name)
    return json.loads(re.sub(r"inv_[0-9A-Za-z]+", "<invoice>", text))


def audited(rows: list[dict[str, Any]], volatile: dict[str, str]) -> list[dict[str, Any]]:
    return [
        normalized({k: v for k, v in row.items() if k not in VOLATILE}, volatile) for row in rows
    ]


async def one_path(
    app: Any, server: Server, token: str, body: bytes, extra: dict[str, str], side: str
) -> tuple[Answer, list[dict[str, Any]]]:
    request_id = f"diff-{side}-{uuid.uuid4().hex[:12]}"
    key = f"idem-{side}-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    headers.update({k: (key if v == "KEY" else v) for k, v in extra.items()})
    headers = {k: v for k, v in headers.items() if v}
    answer = await call(app, body, headers=headers)
    rows = await audit_rows(server.db, request_id, wait=0.5)
    volatile = {request_id: "<request>", key: "<key>"}
    answer.body = normalized(answer.body, volatile)
    return answer, audited(rows, volatile)


@pytest.mark.parametrize("name", list(CORPUS))
async def test_the_fast_path_answers_and_audits_as_strawberrys_view(
    server: Server, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    body, extra, fast = CORPUS[name]
    transport = GraphQLTransport(server.pipeline)
    _, token = await server.api_keys.create(
        tenant_id=f"t-{uuid.uuid4().hex[:8]}", actor_id="alice", roles=("user",)
    )
    views = ViewCalls(monkeypatch)
    endpoint_answer, endpoint_rows = await one_path(
        transport.endpoint, server, token, body, extra, "x"
    )
    assert views.count == (0 if fast else 1), "the corpus entry took the other path"
    view_answer, view_rows = await one_path(transport.view, server, token, body, extra, "x")
    assert endpoint_answer.status == view_answer.status
    assert endpoint_answer.body == view_answer.body
    for header in ("content-type", "idempotent-replayed", "retry-after"):
        assert endpoint_answer.headers.get(header) == view_answer.headers.get(header), header
    assert endpoint_rows == view_rows
    assert bool(endpoint_rows) is (name != "introspection")  # introspection is not audited
