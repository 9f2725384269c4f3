"""billing.capturePayment end to end: a running server, real HTTP, localstripe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
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
    new_card,
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
    stack: Stack,
    tenant: str,
    invoice: dict[str, Any],
    method: str,
    *,
    seconds_ago: float,
    kept_method: bool = True,
) -> None:
    """Leave ``invoice`` as a process that crashed mid-capture (before its request reached
    Stripe) would: processing, holding the capture's Stripe idempotency key and payment
    method (unless ``kept_method`` is False, as before migration 0005), unmoved for
    ``seconds_ago``."""
    key = stripe_idempotency_key(tenant, invoice["id"], method, invoice["amountMinor"])
    async with stack.db.begin() as conn:
        await conn.execute(
            update(invoices)
            .where(invoices.c.id == invoice["id"])
            .values(
                status="processing",
                capture_key=key,
                capture_method=method if kept_method else None,
                updated_at=datetime.now(UTC) - timedelta(seconds=seconds_ago),
            )
        )


@dataclass(frozen=True)
class Retry:
    """A capture retried after another crashed holding the same invoice."""

    tenant: str
    owner: str
    invoice: dict[str, Any]
    request_id: str
    answer: httpx.Response


async def retry_after_crash(
    stack: Stack, *, seconds_ago: float, method: str, kept_method: bool = True
) -> Retry:
    """A new invoice whose capture with ``pm_card_visa`` crashed ``seconds_ago``, and a
    capture of it with ``method`` now."""
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    await crashed_capture(
        stack, tenant, invoice, "pm_card_visa", seconds_ago=seconds_ago, kept_method=kept_method
    )
    request_id = rid()
    async with stack.client(alice) as http:
        answer = await http.post(
            CAPTURE, json=capture_body(invoice, method), headers=headers(request_id)
        )
    return Retry(tenant, alice, invoice, request_id, answer)


async def test_a_stalled_capture_is_settled_by_the_same_capture_retried(stack: Stack) -> None:
    retry = await retry_after_crash(stack, seconds_ago=120, method="pm_card_visa")
    r = retry.answer
    assert r.status_code == 200, r.text
    paid = await get_invoice(stack, retry.owner, retry.invoice["id"])
    assert (paid["status"], paid["transactionId"]) == ("paid", r.json()["transactionId"])
    await one_audit(stack, retry.request_id, outcome="OK", status=200, tenant_id=retry.tenant)


async def test_another_payment_method_settles_a_stalled_capture_first(stack: Stack) -> None:
    """Its charge may have gone through: the stalled capture's own request goes to Stripe
    again, under its idempotency key, and Stripe makes that charge (or answers with the one
    it made). The other card is not charged."""
    other_card = await new_card(stack)
    retry = await retry_after_crash(stack, seconds_ago=120, method=other_card)
    body = assert_problem(
        retry.answer, 409, "INVOICE_ALREADY_PAID", request_id=retry.request_id, retryable=False
    )
    [intent] = await intents_for(stack, retry.invoice["id"])
    assert intent["status"] == "succeeded" and intent["id"] in body["detail"]
    paid = await get_invoice(stack, retry.owner, retry.invoice["id"])
    assert (paid["status"], paid["transactionId"]) == ("paid", intent["id"])


async def test_a_stalled_capture_whose_method_was_not_kept_waits_for_the_same_method(
    stack: Stack,
) -> None:
    """Held before migration 0005: its request cannot be sent again by another capture."""
    retry = await retry_after_crash(
        stack, seconds_ago=120, method=await new_card(stack), kept_method=False
    )
    body = assert_problem(
        retry.answer, 409, "PAYMENT_IN_PROGRESS", request_id=retry.request_id, retryable=True
    )
    assert "same payment method" in body["detail"]
    invoice_id = retry.invoice["id"]
    assert (await get_invoice(stack, retry.owner, invoice_id))["status"] == "processing"
    assert await intents_for(stack, invoice_id) == []
    async with stack.client(retry.owner) as http:  # which the same method then settles
        r = await http.post(CAPTURE, json=capture_body(retry.invoice), headers=headers(rid()))
    assert r.status_code == 200, r.text
    assert (await get_invoice(stack, retry.owner, invoice_id))["status"] == "paid"


async def test_a_capture_still_under_way_is_not_taken_over(stack: Stack) -> None:
    retry = await retry_after_crash(stack, seconds_ago=5, method="pm_card_visa")
    assert_problem(
        retry.answer, 409, "PAYMENT_IN_PROGRESS", request_id=retry.request_id, retryable=True
    )
    invoice_id = retry.invoice["id"]
    assert (await get_invoice(stack, retry.owner, invoice_id))["status"] == "processing"
    assert await intents_for(stack, invoice_id) == []
