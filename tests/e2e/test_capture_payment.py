"""billing.capturePayment end to end: a running server, real HTTP, localstripe."""

from __future__ import annotations

from tests.support.api import CAPTURE, GET_INVOICE, create_invoice, new_user, rid
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
