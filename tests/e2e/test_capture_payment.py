"""billing.capturePayment end to end: a running server, real HTTP, localstripe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from handlers.billing.capture_payment import stripe_idempotency_key
from storage.tables import invoices
from tests.support.api import (
    CAPTURE,
    GET_INVOICE,
    assert_problem,
    capture_body,
    create_invoice,
    get_invoice,
    headers,
    intents_for,
    new_user,
    one_audit,
    rid,
)
from tests.support.stack import Stack


async def test_happy_path_pays_the_invoice(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(
            CAPTURE,
            json={
                "invoiceId": invoice["id"],
                "amount": 12.5,
                "currency": "usd",
                "paymentMethodId": "pm_card_visa",
            },
            headers={"X-Request-Id": request_id},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "succeeded"
        assert body["transactionId"].startswith("pi_")
        after = await http.get(GET_INVOICE, params={"invoiceId": invoice["id"]})
    assert after.json()["status"] == "paid"
    assert after.json()["transactionId"] == body["transactionId"]
    rows = await stack.audit(request_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["outcome"], row["decision"], row["transport"]) == ("OK", "allow", "rest")
    assert (row["tenant_id"], row["actor_id"], row["operation_key"]) == (
        tenant,
        "alice",
        "billing.capturePayment",
    )


# -- a capture whose process crashed ------------------------------------------------------


async def crashed_capture(
    stack: Stack, tenant: str, invoice: dict[str, Any], method: str, *, seconds_ago: float
) -> None:
    """Leave ``invoice`` as a process that crashed mid-capture would: processing, holding
    the capture's Stripe idempotency key, unmoved for ``seconds_ago``."""
    key = stripe_idempotency_key(tenant, invoice["id"], method, invoice["amountMinor"])
    async with stack.db.begin() as conn:
        await conn.execute(
            update(invoices)
            .where(invoices.c.id == invoice["id"])
            .values(
                status="processing",
                capture_key=key,
                updated_at=datetime.now(UTC) - timedelta(seconds=seconds_ago),
            )
        )


async def test_a_stalled_capture_is_settled_by_the_same_capture_retried(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    await crashed_capture(stack, tenant, invoice, "pm_card_visa", seconds_ago=120)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(request_id))
    assert r.status_code == 200, r.text
    paid = await get_invoice(stack, alice, invoice["id"])
    assert (paid["status"], paid["transactionId"]) == ("paid", r.json()["transactionId"])
    await one_audit(stack, request_id, outcome="OK", status=200, tenant_id=tenant)


async def test_a_stalled_capture_is_not_taken_over_by_another_payment_method(
    stack: Stack,
) -> None:
    """Its charge may have gone through: only the same request (same idempotency key)
    can find that out without charging twice."""
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    await crashed_capture(stack, tenant, invoice, "pm_card_visa", seconds_ago=120)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(
            CAPTURE,
            json=capture_body(invoice, "pm_card_mastercard"),
            headers=headers(request_id),
        )
    body = assert_problem(r, 409, "PAYMENT_IN_PROGRESS", request_id=request_id, retryable=True)
    assert "same payment method" in body["detail"]
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "processing"
    assert await intents_for(stack, invoice["id"]) == []


async def test_a_capture_still_under_way_is_not_taken_over(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    await crashed_capture(stack, tenant, invoice, "pm_card_visa", seconds_ago=5)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(request_id))
    assert_problem(r, 409, "PAYMENT_IN_PROGRESS", request_id=request_id, retryable=True)
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "processing"
    assert await intents_for(stack, invoice["id"]) == []
