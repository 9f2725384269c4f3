"""Helpers for end-to-end tests: ids, invoices, problem documents, audit rows, localstripe."""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from registry.errors import CATALOGUE
from specs.billing.errors import (
    AMOUNT_MISMATCH,
    CARD_DECLINED,
    INVOICE_ALREADY_PAID,
    INVOICE_NOT_FOUND,
    PAYMENT_IN_PROGRESS,
    PAYMENT_METHOD_INVALID,
)
from storage.tables import audit_events
from tests.support.stack import STRIPE_TEST_KEY, Stack

CAPTURE = "/api/ops/billing.capturePayment"
CREATE = "/api/ops/billing.createInvoice"
GET_INVOICE = "/api/ops/billing.getInvoice"
LIST_INVOICES = "/api/ops/billing.listInvoices"

CAPTURE_OP = {"key": "billing.capturePayment", "version": "1.0.0", "kind": "command"}
CREATE_OP = {"key": "billing.createInvoice", "version": "1.0.0", "kind": "command"}
GET_OP = {"key": "billing.getInvoice", "version": "1.0.0", "kind": "query"}
LIST_OP = {"key": "billing.listInvoices", "version": "1.0.0", "kind": "query"}

#: Titles of the catalogue entries, by (code, status).
CATALOGUE_SPECS = [getattr(CATALOGUE, f.name) for f in dataclasses.fields(CATALOGUE)]
DOMAIN_SPECS = [
    AMOUNT_MISMATCH,
    CARD_DECLINED,
    INVOICE_ALREADY_PAID,
    INVOICE_NOT_FOUND,
    PAYMENT_IN_PROGRESS,
    PAYMENT_METHOD_INVALID,
]
TITLES = {(spec.code, spec.status): spec.title for spec in CATALOGUE_SPECS + DOMAIN_SPECS}


def rid(label: str = "e2e") -> str:
    """A fresh request id, to correlate a request with its audit rows."""
    return f"{label}-{uuid.uuid4().hex}"


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def new_user(
    stack: Stack, user: str = "alice", roles: tuple[str, ...] = ("user",)
) -> tuple[str, str]:
    """An API key for ``user`` (with ``roles``) in a tenant of its own: (tenant, token)."""
    tenant = new_tenant()
    return tenant, await stack.key(tenant, user, roles)


def headers(request_id: str, idempotency_key: str | None = None, **extra: str) -> dict[str, str]:
    found = {"X-Request-Id": request_id, **extra}
    if idempotency_key is not None:
        found["Idempotency-Key"] = idempotency_key
    return found


async def create_invoice(
    stack: Stack,
    token: str,
    amount: str = "12.50",
    currency: str = "usd",
    **fields: Any,
) -> dict[str, Any]:
    async with stack.client(token) as http:
        r = await http.post(CREATE, json={"amount": amount, "currency": currency, **fields})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def capture_body(
    invoice: dict[str, Any], method: str = "pm_card_visa", **overrides: Any
) -> dict[str, Any]:
    body = {
        "invoiceId": invoice["id"],
        "amount": str(Decimal(invoice["amount"])),
        "currency": invoice["currency"],
        "paymentMethodId": method,
    }
    body.update(overrides)
    return body


async def get_invoice(stack: Stack, token: str, invoice_id: str) -> dict[str, Any]:
    async with stack.client(token) as http:
        r = await http.get(GET_INVOICE, params={"invoiceId": invoice_id})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def post_graphql(
    stack: Stack,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/graphql",
) -> httpx.Response:
    """POST a GraphQL request (``query`` and its ``variables``) to the stack's ``path``."""
    async with stack.client(token) as http:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await http.post(path, json=body, headers=headers or {})


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    """The one error of a GraphQL response body."""
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    error: dict[str, Any] = errors[0]
    return error


def assert_problem(
    r: httpx.Response,
    status: int,
    code: str,
    *,
    request_id: str | None = None,
    operation: dict[str, str] | Any | None = ...,
    title: str | None = None,
    retryable: bool | None = None,
) -> dict[str, Any]:
    """Check a problem document (RFC 9457 fields plus ours) and return it.

    ``operation`` is the expected ``{key, version, kind}``, or None when no operation was
    resolved (the field must then be absent); left out, it is not checked."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == "application/problem+json", r.headers
    body: dict[str, Any] = r.json()
    assert body["type"] == f"https://specops.dev/problems/{code.lower().replace('_', '-')}"
    assert body["status"] == status
    assert body["code"] == code
    expected_title = title or TITLES.get((code, status))
    if expected_title is not None:
        assert body["title"] == expected_title
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if retryable is not None:
        assert body["retryable"] is retryable
    if request_id is not None:
        assert body["requestId"] == request_id
        assert r.headers["x-request-id"] == request_id
    if operation is None:
        assert "operation" not in body, body
    elif operation is not ...:
        assert body["operation"] == operation
    if code != "INVALID_INPUT":
        assert "issues" not in body
    return body


async def one_audit(stack: Stack, request_id: str, **expected: Any) -> dict[str, Any]:
    """The single audit row of a request, checked against ``expected`` column values."""
    rows = await stack.audit(request_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["transport"] == "rest"
    actual = {name: row[name] for name in expected}
    assert actual == expected, row
    if row["status"] != 200 and "status" not in expected:
        assert row["outcome"] != "OK"
    return row


async def all_audit_rows(stack: Stack) -> list[dict[str, Any]]:
    async with stack.db.connect() as conn:
        rows = await conn.execute(select(audit_events))
        return [dict(r) for r in rows.mappings().all()]


async def intents_for(stack: Stack, invoice_id: str) -> list[dict[str, Any]]:
    """Every PaymentIntent localstripe holds for an invoice (metadata invoiceId)."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    async with httpx.AsyncClient(
        base_url=stack.stripe_url,
        headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
        timeout=30,
    ) as http:
        while True:
            r = await http.get("/v1/payment_intents", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            found.extend(
                i for i in page["data"] if (i.get("metadata") or {}).get("invoiceId") == invoice_id
            )
            if not page.get("has_more") or not page["data"]:
                return found
            params["starting_after"] = page["data"][-1]["id"]


async def new_card(stack: Stack, number: str = "5555555555554444") -> str:
    """A PaymentMethod created in localstripe (a Mastercard unless told), for a payment by
    another card than the test tokens localstripe knows (``pm_card_visa``...)."""
    async with httpx.AsyncClient(
        base_url=stack.stripe_url,
        headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
        timeout=30,
    ) as http:
        r = await http.post(
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2030",
                "card[cvc]": "123",
            },
        )
    assert r.status_code == 200, r.text
    method: str = r.json()["id"]
    return method
