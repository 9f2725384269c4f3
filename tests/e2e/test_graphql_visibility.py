"""GraphQL introspection reveals only the operations the caller may invoke."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.stack import Stack

SCHEMA = "{ __schema { queryType { fields { name } } mutationType { name } types { name } } }"


async def introspect(stack: Stack, token: str | None, query: str = SCHEMA) -> dict[str, Any]:
    async with stack.client(token) as http:
        r = await http.post("/graphql", json={"query": query})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def root_names(data: dict[str, Any]) -> set[str]:
    return {f["name"] for f in data["__schema"]["queryType"]["fields"] or []}


def type_names(data: dict[str, Any]) -> set[str]:
    return {t["name"] for t in data["__schema"]["types"]}


async def test_a_user_sees_the_operations_policy_grants(stack: Stack) -> None:
    token = await stack.key(f"t-{uuid.uuid4().hex[:8]}", "alice")
    data = await introspect(stack, token)
    assert {"billing_getInvoice", "billing_listInvoices", "system_ping"} <= root_names(data)
    assert "Invoice" in type_names(data)


async def test_a_caller_without_grants_sees_no_operation_and_no_operation_type(
    stack: Stack,
) -> None:
    token = await stack.key(f"t-{uuid.uuid4().hex[:8]}", "nobody", roles=("nobody",))
    data = await introspect(stack, token)
    assert not any(name.startswith(("billing_", "system_")) for name in root_names(data))
    names = type_names(data)
    assert not {"Invoice", "InvoicePage", "PaymentResult", "CapturePaymentInput"} & names
    assert {"Query", "String", "__Schema"} <= names
    hidden = await introspect(stack, token, '{ t: __type(name: "Invoice") { name } }')
    assert hidden == {"t": None}


async def test_anonymous_introspection_reveals_no_operation(stack: Stack) -> None:
    data = await introspect(stack, None)
    assert not any(name.startswith(("billing_", "system_")) for name in root_names(data))


async def test_a_hidden_operation_is_still_refused_by_the_pipeline(stack: Stack) -> None:
    token = await stack.key(f"t-{uuid.uuid4().hex[:8]}", "nobody", roles=("nobody",))
    async with stack.client(token) as http:
        r = await http.post("/graphql", json={"query": "{ system_ping { message } }"})
    body = r.json()
    assert body["data"] == {"system_ping": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
