"""billing.capturePayment end to end: a running server, real HTTP, localstripe."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.stack import Stack


def rid() -> str:
    return f"test-{uuid.uuid4().hex}"


async def create_invoice(
    stack: Stack, token: str, amount: str = "12.50", currency: str = "usd"
) -> dict[str, Any]:
    async with stack.client(token) as http:
        r = await http.post(
            "/api/ops/billing.createInvoice", json={"amount": amount, "currency": currency}
        )
    assert r.status_code == 200, r.text
    invoice: dict[str, Any] = r.json()
    return invoice


async def test_happy_path_pays_the_invoice(stack: Stack) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    alice = await stack.key(tenant, "alice")
    invoice = await create_invoice(stack, alice)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(
            "/api/ops/billing.capturePayment",
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
        after = await http.get("/api/ops/billing.getInvoice", params={"invoiceId": invoice["id"]})
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
