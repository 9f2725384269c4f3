"""Owner-only payment: who may read and who may pay an invoice, across users and tenants."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import (
    CAPTURE,
    CAPTURE_OP,
    GET_INVOICE,
    GET_OP,
    assert_problem,
    capture_body,
    create_invoice,
    get_invoice,
    headers,
    intents_for,
    new_tenant,
    new_user,
    one_audit,
    rid,
)
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


async def test_owner_pays_their_invoice(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice, amount="31.99")
    assert (invoice["ownerId"], invoice["status"], invoice["amountMinor"]) == (
        "alice",
        "open",
        3199,
    )
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(request_id))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert "idempotent-replayed" not in r.headers
    result = r.json()
    assert result["status"] == "succeeded"
    paid = await get_invoice(stack, alice, invoice["id"])
    assert (paid["status"], paid["transactionId"]) == ("paid", result["transactionId"])
    assert paid["paidAt"] is not None
    row = await one_audit(
        stack,
        request_id,
        outcome="OK",
        status=200,
        decision="allow",
        tenant_id=tenant,
        actor_id="alice",
        actor_kind="user",
        operation_key="billing.capturePayment",
        operation_version="1.0.0",
        replayed=False,
        detail=None,
    )
    assert row["credential_id"] and row["input_digest"]
    [intent] = await intents_for(stack, invoice["id"])
    assert (intent["id"], intent["amount"], intent["currency"]) == (
        result["transactionId"],
        3199,
        "usd",
    )
    # nothing of the request itself: a retry must send Stripe the very same parameters
    # with the same idempotency key (Stripe refuses a key reused with others)
    assert intent["metadata"] == {"invoiceId": invoice["id"], "tenantId": tenant}


async def test_another_user_of_the_tenant_may_read_but_not_pay(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    bob = await stack.key(tenant, "bob")
    invoice = await create_invoice(stack, alice)
    read_id, pay_id = rid(), rid()
    async with stack.client(bob) as http:
        read = await http.get(
            GET_INVOICE, params={"invoiceId": invoice["id"]}, headers=headers(read_id)
        )
        pay = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(pay_id))
    assert read.status_code == 200, read.text
    assert read.json()["ownerId"] == "alice"
    body = assert_problem(
        pay, 403, "FORBIDDEN", request_id=pay_id, operation=CAPTURE_OP, retryable=False
    )
    assert "owner" in body["detail"]
    await one_audit(stack, read_id, outcome="OK", decision="allow", actor_id="bob")
    await one_audit(
        stack,
        pay_id,
        outcome="FORBIDDEN",
        status=403,
        decision="deny",
        tenant_id=tenant,
        actor_id="bob",
    )
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"
    assert await intents_for(stack, invoice["id"]) == []


async def test_admin_of_the_tenant_may_read_but_not_pay_for_the_owner(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    root = await stack.key(tenant, "root", roles=("admin",))
    invoice = await create_invoice(stack, alice)
    read_id, pay_id = rid(), rid()
    async with stack.client(root) as http:
        read = await http.get(
            GET_INVOICE, params={"invoiceId": invoice["id"]}, headers=headers(read_id)
        )
        pay = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(pay_id))
    assert read.status_code == 200, read.text
    assert read.json()["id"] == invoice["id"]
    assert_problem(pay, 403, "FORBIDDEN", request_id=pay_id, operation=CAPTURE_OP)
    await one_audit(stack, read_id, outcome="OK", decision="allow", actor_id="root")
    await one_audit(
        stack, pay_id, outcome="FORBIDDEN", decision="deny", actor_id="root", tenant_id=tenant
    )
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"
    assert await intents_for(stack, invoice["id"]) == []


@pytest.mark.parametrize("roles", [("user",), ("admin",)], ids=["user", "admin"])
async def test_other_tenant_gets_404_not_403(stack: Stack, roles: tuple[str, ...]) -> None:
    """A caller of another tenant cannot tell the invoice exists: the answers are those
    for an invoice id that exists nowhere."""
    alice = await stack.key(new_tenant(), "alice")
    invoice = await create_invoice(stack, alice)
    other_tenant = new_tenant()
    # Same user id in another tenant, so only the tenant differs.
    mallory = await stack.key(other_tenant, "alice", roles=roles)
    answers = {}
    async with stack.client(mallory) as http:
        for target in (invoice["id"], "inv_000000000000000000000000"):
            get_id, pay_id = rid(), rid()
            got = await http.get(GET_INVOICE, params={"invoiceId": target}, headers=headers(get_id))
            pay = await http.post(
                CAPTURE, json=capture_body({**invoice, "id": target}), headers=headers(pay_id)
            )
            answers[target] = [
                assert_problem(got, 404, "INVOICE_NOT_FOUND", request_id=get_id, operation=GET_OP),
                assert_problem(
                    pay, 404, "INVOICE_NOT_FOUND", request_id=pay_id, operation=CAPTURE_OP
                ),
            ]
            for request_id in (get_id, pay_id):
                await one_audit(
                    stack,
                    request_id,
                    outcome="INVOICE_NOT_FOUND",
                    status=404,
                    decision="deny",
                    tenant_id=other_tenant,
                    actor_id="alice",
                )

    def shape(body: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v.replace(invoice["id"], "X").replace("inv_000000000000000000000000", "X")
            if isinstance(v, str)
            else v
            for k, v in body.items()
            if k != "requestId"
        }

    real, absent = answers[invoice["id"]], answers["inv_000000000000000000000000"]
    assert [shape(b) for b in real] == [shape(b) for b in absent]
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"
    assert await intents_for(stack, invoice["id"]) == []
