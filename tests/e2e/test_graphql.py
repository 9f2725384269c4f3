"""GraphQL end to end: real HTTP POSTs to a running server (tests/support/variants_app.py),
localstripe behind billing.capturePayment, audit rows read from the database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from graphql import get_introspection_query

from tests.support.api import capture_body, new_tenant, only_error, post_graphql, rid
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

CREATE = """
mutation Create($input: CreateInvoiceInput!) {
  invoice: billing_createInvoice(input: $input) {
    id amount amountMinor currency status ownerId createdAt paidAt
  }
}"""
CAPTURE = """
mutation Pay($input: CapturePaymentInput!) {
  pay: billing_capturePayment(input: $input) { transactionId status receiptUrl }
}"""
ONE_DOLLAR_INVOICE = (
    'mutation { billing_createInvoice(input: {amount: 1, currency: "usd"}) { id } }'
)
GET = """
query Get($id: String!) {
  billing_getInvoice_v1_0_0(input: {invoiceId: $id}) { id status transactionId paidAt }
}"""


async def create_invoice(stack: Stack, token: str, amount: str = "12.50") -> dict[str, Any]:
    r = await post_graphql(
        stack, CREATE, {"input": {"amount": amount, "currency": "usd"}}, token=token
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body
    invoice: dict[str, Any] = body["data"]["invoice"]
    return invoice


async def test_ping_query_with_a_key(variants: Stack) -> None:
    tenant = new_tenant()
    alice = await variants.key(tenant, "alice")
    request_id = rid()
    r = await post_graphql(
        variants,
        '{ system_ping(input: {message: "hello"}) { message actorId tenantId } }',
        token=alice,
        headers={"X-Request-Id": request_id},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == request_id
    assert r.json() == {
        "data": {"system_ping": {"message": "hello", "actorId": "alice", "tenantId": tenant}}
    }
    [row] = await variants.audit(request_id)
    assert (row["transport"], row["outcome"], row["decision"]) == ("graphql", "OK", "allow")
    assert (row["operation_key"], row["operation_version"]) == ("system.ping", "1.0.0")
    assert (row["tenant_id"], row["actor_id"]) == (tenant, "alice")


async def test_create_invoice_then_capture_payment(variants: Stack) -> None:
    tenant = new_tenant()
    alice = await variants.key(tenant, "alice")
    invoice = await create_invoice(variants, alice)
    assert invoice["id"].startswith("inv_")
    assert (invoice["amount"], invoice["amountMinor"], invoice["currency"]) == (
        "12.50",
        1250,
        "usd",
    )
    assert (invoice["status"], invoice["ownerId"], invoice["paidAt"]) == ("OPEN", "alice", None)
    assert invoice["createdAt"].endswith("Z") or "+" in invoice["createdAt"]

    request_id = rid()
    r = await post_graphql(
        variants,
        CAPTURE,
        {"input": capture_body(invoice, amount=12.5)},
        token=alice,
        headers={"X-Request-Id": request_id},
    )
    body = r.json()
    assert "errors" not in body, body
    paid = body["data"]["pay"]
    assert paid["status"] == "succeeded"
    assert paid["transactionId"].startswith("pi_")

    after = (await post_graphql(variants, GET, {"id": invoice["id"]}, token=alice)).json()
    got = after["data"]["billing_getInvoice_v1_0_0"]
    assert (got["status"], got["transactionId"]) == ("PAID", paid["transactionId"])
    assert got["paidAt"] is not None

    [row] = await variants.audit(request_id)
    assert (row["transport"], row["outcome"], row["decision"]) == ("graphql", "OK", "allow")
    assert (row["operation_key"], row["tenant_id"], row["actor_id"]) == (
        "billing.capturePayment",
        tenant,
        "alice",
    )
    assert row["idempotency_key"] is None


async def test_input_the_contract_refuses_is_invalid_input(variants: Stack) -> None:
    alice = await variants.key(new_tenant(), "alice")
    request_id = rid()
    r = await post_graphql(
        variants,
        'mutation { billing_createInvoice(input: {amount: 12.555, currency: "usd"}) { id } }',
        token=alice,
        headers={"X-Request-Id": request_id},
    )
    body = r.json()
    assert body["data"] == {"billing_createInvoice": None}
    error = only_error(body)
    assert error["path"] == ["billing_createInvoice"]
    ext = error["extensions"]
    assert (ext["code"], ext["status"]) == ("INVALID_INPUT", 422)
    assert ext["issues"] == [
        {
            "path": "amount",
            "code": "currency_precision",
            "message": "USD amounts have at most 2 decimal places",
        }
    ]
    assert ext["operation"] == {
        "key": "billing.createInvoice",
        "version": "1.0.0",
        "kind": "command",
    }
    assert ext["requestId"] == request_id
    assert {"type", "title", "detail"} <= set(ext)
    [row] = await variants.audit(request_id)
    assert (row["transport"], row["outcome"], row["status"]) == ("graphql", "INVALID_INPUT", 422)


async def test_input_graphql_refuses_is_audited_without_values(variants: Stack) -> None:
    alice = await variants.key(new_tenant(), "alice")
    request_id = rid()
    r = await post_graphql(
        variants,
        CREATE,
        {"input": {"amount": "twelve", "currency": "usd"}},
        token=alice,
        headers={"X-Request-Id": request_id},
    )
    body = r.json()
    assert body["data"] is None
    ext = only_error(body)["extensions"]
    assert ext["code"] == "INVALID_INPUT"
    assert [issue["path"] for issue in ext["issues"]] == ["amount"]
    assert ext["requestId"] == request_id
    # GraphQL refused the document before any field ran: one record, against the
    # endpoint, naming the caller and the field, not the value sent
    [row] = await variants.audit(request_id)
    assert (row["transport"], row["operation_key"], row["outcome"], row["status"]) == (
        "graphql",
        "graphql",
        "INVALID_INPUT",
        422,
    )
    assert row["actor_id"] == "alice"
    assert "amount" in row["detail"] and "twelve" not in str(row)


@pytest.mark.parametrize("authorization", [None, "Basic YWxpY2U6c2VjcmV0", "Bearer sk_live_nope"])
async def test_no_or_bad_credentials_are_unauthenticated(
    variants: Stack, authorization: str | None
) -> None:
    request_id = rid()
    headers = {"X-Request-Id": request_id}
    if authorization:
        headers["Authorization"] = authorization
    r = await post_graphql(variants, "{ system_ping { message } }", headers=headers)
    body = r.json()
    assert body["data"] == {"system_ping": None}
    ext = only_error(body)["extensions"]
    assert (ext["code"], ext["status"]) == ("UNAUTHENTICATED", 401)
    [row] = await variants.audit(request_id)
    assert (row["transport"], row["outcome"], row["decision"]) == (
        "graphql",
        "UNAUTHENTICATED",
        "deny",
    )


async def test_another_tenants_invoice_is_not_found(variants: Stack) -> None:
    alice = await variants.key(new_tenant(), "alice")
    mallory = await variants.key(new_tenant(), "alice")  # same user id, other tenant
    invoice = await create_invoice(variants, alice)
    request_id = rid()
    r = await post_graphql(
        variants,
        CAPTURE,
        {"input": capture_body(invoice)},
        token=mallory,
        headers={"X-Request-Id": request_id},
    )
    body = r.json()
    assert body["data"] == {"pay": None}
    ext = only_error(body)["extensions"]
    assert (ext["code"], ext["status"]) == ("INVOICE_NOT_FOUND", 404)
    assert ext["operation"]["key"] == "billing.capturePayment"
    read = (await post_graphql(variants, GET, {"id": invoice["id"]}, token=mallory)).json()
    assert only_error(read)["extensions"]["code"] == "INVOICE_NOT_FOUND"
    [row] = await variants.audit(request_id)
    assert (row["transport"], row["outcome"], row["decision"]) == (
        "graphql",
        "INVOICE_NOT_FOUND",
        "deny",
    )


async def test_idempotent_retry_replays_the_payment(variants: Stack) -> None:
    alice = await variants.key(new_tenant(), "alice")
    invoice = await create_invoice(variants, alice)
    key = f"pay-{uuid.uuid4().hex}"
    first_id, second_id = rid(), rid()
    first = await post_graphql(
        variants,
        CAPTURE,
        {"input": capture_body(invoice)},
        token=alice,
        headers={"Idempotency-Key": key, "X-Request-Id": first_id},
    )
    second = await post_graphql(
        variants,
        CAPTURE,
        {"input": capture_body(invoice)},
        token=alice,
        headers={"Idempotency-Key": key, "X-Request-Id": second_id},
    )
    assert "errors" not in first.json() and "errors" not in second.json()
    assert second.json()["data"] == first.json()["data"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["extensions"] == {"replayed": ["pay"]}
    [row] = await variants.audit(second_id)
    assert (row["replayed"], row["idempotency_key"]) == (True, f"{key}:pay")

    # the same key with another request is a conflict, not a second payment
    other = await post_graphql(
        variants,
        CAPTURE,
        {"input": capture_body(invoice, amount="13.00")},
        token=alice,
        headers={"Idempotency-Key": key},
    )
    assert only_error(other.json())["extensions"]["code"] == "IDEMPOTENCY_CONFLICT"


async def test_each_mutation_of_a_request_has_its_own_key(variants: Stack) -> None:
    alice = await variants.key(new_tenant(), "alice")
    query = """mutation {
      a: billing_createInvoice(input: {amount: 1, currency: "usd"}) { id }
      b: billing_createInvoice(input: {amount: 1, currency: "usd"}) { id }
    }"""
    headers = {"Idempotency-Key": f"batch-{uuid.uuid4().hex}"}
    first = (await post_graphql(variants, query, token=alice, headers=headers)).json()["data"]
    again = (await post_graphql(variants, query, token=alice, headers=headers)).json()["data"]
    assert first["a"]["id"] != first["b"]["id"]
    assert again == first


async def test_partial_data_one_field_fails_the_other_resolves(variants: Stack) -> None:
    alice = await variants.key(new_tenant(), "alice")
    request_id = rid()
    r = await post_graphql(
        variants,
        """{
          me: system_ping { actorId }
          missing: billing_getInvoice(input: {invoiceId: "inv_missing"}) { id }
        }""",
        token=alice,
        headers={"X-Request-Id": request_id},
    )
    body = r.json()
    assert body["data"] == {"me": {"actorId": "alice"}, "missing": None}
    error = only_error(body)
    assert error["path"] == ["missing"]
    assert error["extensions"]["code"] == "INVOICE_NOT_FOUND"
    rows = await variants.audit(request_id, count=2)
    assert sorted((r["operation_key"], r["outcome"]) for r in rows) == [
        ("billing.getInvoice", "INVOICE_NOT_FOUND"),
        ("system.ping", "OK"),
    ]
    assert {r["transport"] for r in rows} == {"graphql"}


async def test_introspection_on_by_default_and_refused_when_off(variants: Stack) -> None:
    query = get_introspection_query(descriptions=True)
    alice = await variants.key(new_tenant(), "alice")
    body = (await post_graphql(variants, query, token=alice)).json()
    assert "errors" not in body
    types = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"Query", "Mutation", "Invoice", "InvoiceStatus", "Decimal", "DateTime"} <= types

    locked = (await post_graphql(variants, query, token=alice, path="/graphql-locked")).json()
    assert locked["data"] is None
    assert {e["extensions"]["code"] for e in locked["errors"]} == {"FORBIDDEN"}
    assert "Introspection is disabled" in locked["errors"][0]["message"]

    served = await post_graphql(
        variants, "{ system_ping { message } }", token=alice, path="/graphql-locked"
    )
    assert served.json() == {"data": {"system_ping": {"message": "ping"}}}


@pytest.mark.parametrize(
    ("path", "query", "limit"),
    [
        ("/graphql-locked", "{ billing_listInvoices { items { id } } }", "depth"),
        ("/graphql-locked", "{ a: system_ping { message } b: system_ping { message } "
                            "c: system_ping { message } }", "aliases"),
        ("/graphql", "{ " + " ".join(f"p{i}: system_ping {{ message }}" for i in range(16)) + " }",
         "aliases"),
        ("/graphql", "{ " + " ".join(f"p{i}: system_ping {{ message }}" for i in range(11)) + " }",
         "rootFields"),
    ],
)  # fmt: skip
async def test_abusive_queries_are_refused(
    variants: Stack, path: str, query: str, limit: str
) -> None:
    alice = await variants.key(new_tenant(), "alice")
    for _ in range(2):  # the second time, the server has seen the document before
        request_id = rid()
        r = await post_graphql(
            variants, query, token=alice, path=path, headers={"X-Request-Id": request_id}
        )
        body = r.json()
        assert body["data"] is None
        errors = body["errors"]
        refusals = [e for e in errors if e["extensions"].get("limit", {}).get("name") == limit]
        assert refusals, body
        ext = refusals[0]["extensions"]
        assert (ext["code"], ext["title"]) == (
            "MALFORMED_REQUEST",
            "Query exceeds the server's limits",
        )
        assert "limit" in refusals[0]["message"]
        [row] = await variants.audit(request_id)  # no field ran: audited against the endpoint
        assert (row["operation_key"], row["outcome"], row["status"], row["decision"]) == (
            "graphql",
            "MALFORMED_REQUEST",
            400,
            "none",
        )


async def test_requests_that_cannot_run_answer_a_problem(variants: Stack) -> None:
    alice = await variants.key(new_tenant(), "alice")
    async with variants.client(alice) as http:
        not_json = await http.post(
            "/graphql", content=b"{oops", headers={"Content-Type": "application/json"}
        )
        form = await http.post("/graphql", data={"query": "{ system_ping { message } }"})
        mutation_by_get = await http.get(
            "/graphql",
            params={"query": ONE_DOLLAR_INVOICE},
        )
        batch = await http.post("/graphql", json=[{"query": "{ system_ping { message } }"}])
        query_by_get = await http.get("/graphql", params={"query": "{ system_ping { message } }"})
        json_type = {"Content-Type": "application/json"}
        too_large = await http.post("/graphql", content=b" " * (1024 * 1024 + 1), headers=json_type)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(17):
                yield b" " * 65536

        too_large_chunked = await http.post("/graphql", content=chunks(), headers=json_type)
    assert "content-length" not in too_large_chunked.request.headers
    for response, status in (
        (not_json, 400),
        (form, 415),
        (mutation_by_get, 400),
        (batch, 400),
        (too_large, 413),
        (too_large_chunked, 413),
    ):
        assert response.status_code == status, response.text
        ext = only_error(response.json())["extensions"]
        assert ext["code"] == "MALFORMED_REQUEST" and ext["status"] == status
        assert response.headers["x-request-id"] == ext["requestId"]
    assert query_by_get.json() == {"data": {"system_ping": {"message": "ping"}}}
