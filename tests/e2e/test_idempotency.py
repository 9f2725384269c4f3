"""Idempotency keys end to end: replays, conflicts, what is stored and what is not, and
concurrent duplicates."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import update

from storage.tables import invoices
from tests.support.api import (
    CAPTURE,
    CAPTURE_OP,
    CREATE,
    CREATE_OP,
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

pytestmark = pytest.mark.e2e


def ikey() -> str:
    return f"idem-{uuid.uuid4()}"


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "requestId"}


async def test_retry_with_same_key_and_body_replays(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    key, first_id, second_id = ikey(), rid(), rid()
    async with stack.client(alice) as http:
        first = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(first_id, key))
        second = await http.post(
            CAPTURE, json=capture_body(invoice), headers=headers(second_id, key)
        )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert second.headers["x-request-id"] == second_id
    one = await one_audit(
        stack,
        first_id,
        outcome="OK",
        replayed=False,
        idempotency_key=key,
        tenant_id=tenant,
        decision="allow",
    )
    two = await one_audit(
        stack,
        second_id,
        outcome="OK",
        replayed=True,
        idempotency_key=key,
        tenant_id=tenant,
        decision="allow",
    )
    assert one["input_digest"] == two["input_digest"]
    [intent] = await intents_for(stack, invoice["id"])
    assert intent["id"] == first.json()["transactionId"]
    # one PaymentIntent, the first request's (the replay made none)
    assert intent["metadata"] == {"invoiceId": invoice["id"], "tenantId": tenant}


async def test_same_key_different_body_is_422(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    key, first_id, changed_id, other_op_id = ikey(), rid(), rid(), rid()
    async with stack.client(alice) as http:
        first = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(first_id, key))
        assert first.status_code == 200, first.text
        changed = await http.post(
            CAPTURE,
            json=capture_body(invoice, "pm_card_mastercard"),
            headers=headers(changed_id, key),
        )
        other_op = await http.post(
            CREATE, json={"amount": "1", "currency": "usd"}, headers=headers(other_op_id, key)
        )
    assert_problem(
        changed,
        422,
        "IDEMPOTENCY_CONFLICT",
        request_id=changed_id,
        operation=CAPTURE_OP,
        retryable=False,
    )
    assert "idempotent-replayed" not in changed.headers
    assert_problem(
        other_op, 422, "IDEMPOTENCY_CONFLICT", request_id=other_op_id, operation=CREATE_OP
    )
    await one_audit(
        stack,
        changed_id,
        outcome="IDEMPOTENCY_CONFLICT",
        status=422,
        decision="allow",
        replayed=False,
        tenant_id=tenant,
        idempotency_key=key,
    )
    await one_audit(stack, other_op_id, outcome="IDEMPOTENCY_CONFLICT", status=422)
    assert len(await intents_for(stack, invoice["id"])) == 1


async def test_keys_are_scoped_to_the_caller(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    bob = await stack.key(tenant, "bob")
    key = ikey()
    alices = await create_invoice(stack, alice)
    bobs = await create_invoice(stack, bob)
    async with stack.client(alice) as http:
        a = await http.post(CAPTURE, json=capture_body(alices), headers={"Idempotency-Key": key})
    async with stack.client(bob) as http:
        b = await http.post(CAPTURE, json=capture_body(bobs), headers={"Idempotency-Key": key})
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert "idempotent-replayed" not in b.headers
    assert a.json()["transactionId"] != b.json()["transactionId"]


@pytest.mark.parametrize(
    "key", ["", "tab\tinside", "k" * 256], ids=["empty", "not-printable", "too-long"]
)
async def test_malformed_idempotency_key_is_400(
    stack: Stack, key: str, request: pytest.FixtureRequest
) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(request_id, key))
    body = assert_problem(r, 400, "MALFORMED_REQUEST", request_id=request_id, operation=CAPTURE_OP)
    assert "Idempotency-Key" in body["detail"]
    await one_audit(stack, request_id, outcome="MALFORMED_REQUEST", status=400, tenant_id=tenant)
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"


async def test_declared_error_outcomes_are_replayed(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    mismatch_key, declined_key = ikey(), ikey()
    ids = [rid() for _ in range(4)]
    wrong = capture_body(invoice, amount="12.51")
    declined = capture_body(invoice, "pm_card_chargeCustomerFail")
    async with stack.client(alice) as http:
        m1 = await http.post(CAPTURE, json=wrong, headers=headers(ids[0], mismatch_key))
        m2 = await http.post(CAPTURE, json=wrong, headers=headers(ids[1], mismatch_key))
        d1 = await http.post(CAPTURE, json=declined, headers=headers(ids[2], declined_key))
        d2 = await http.post(CAPTURE, json=declined, headers=headers(ids[3], declined_key))
    for first, again, code, status in (
        (m1, m2, "AMOUNT_MISMATCH", 422),
        (d1, d2, "CARD_DECLINED", 402),
    ):
        a = assert_problem(first, status, code, operation=CAPTURE_OP)
        b = assert_problem(again, status, code, operation=CAPTURE_OP)
        assert without_request_id(a) == without_request_id(b)
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
    for request_id, replayed, outcome in zip(
        ids,
        (False, True, False, True),
        ("AMOUNT_MISMATCH",) * 2 + ("CARD_DECLINED",) * 2,
        strict=True,
    ):
        await one_audit(stack, request_id, outcome=outcome, replayed=replayed, tenant_id=tenant)
    # The declined card was charged once: the replay did not reach Stripe.
    [intent] = await intents_for(stack, invoice["id"])
    assert intent["status"] != "succeeded"
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"


async def test_upstream_unavailable_is_not_stored(testing_stack: Stack) -> None:
    stack = testing_stack  # no STRIPE_SECRET_KEY
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    key, ids = ikey(), [rid(), rid()]
    async with stack.client(alice) as http:
        answers = [
            await http.post(CAPTURE, json=capture_body(invoice), headers=headers(i, key))
            for i in ids
        ]
    for request_id, r in zip(ids, answers, strict=True):
        assert_problem(
            r,
            503,
            "UPSTREAM_UNAVAILABLE",
            request_id=request_id,
            retryable=True,
            operation=CAPTURE_OP,
        )
        assert "idempotent-replayed" not in r.headers
        await one_audit(
            stack,
            request_id,
            outcome="UPSTREAM_UNAVAILABLE",
            replayed=False,
            idempotency_key=key,
            tenant_id=tenant,
        )
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"


async def _runs(stack: Stack, token: str, admin: str) -> int:
    async with stack.client(admin) as http:
        r = await http.get("/api/ops/testing.runs", params={"token": token})
    assert r.status_code == 200, r.text
    return int(r.json()["runs"])


async def test_internal_error_is_not_stored(testing_stack: Stack) -> None:
    stack = testing_stack
    tenant, root = await new_user(stack, roles=("admin",))
    token, key, ids = rid(), ikey(), [rid(), rid(), rid()]
    async with stack.client(root) as http:
        answers = [
            await http.post(
                "/api/ops/testing.flaky", json={"token": token}, headers=headers(i, key)
            )
            for i in ids
        ]
    assert_problem(
        answers[0],
        500,
        "INTERNAL",
        request_id=ids[0],
        operation={"key": "testing.flaky", "version": "1.0.0", "kind": "command"},
    )
    assert answers[1].status_code == answers[2].status_code == 200
    assert "idempotent-replayed" not in answers[1].headers
    assert answers[2].headers["idempotent-replayed"] == "true"
    assert answers[2].json() == answers[1].json()
    assert await _runs(stack, token, root) == 2  # the failure, then the success; no third
    for request_id, outcome, replayed in zip(
        ids, ("INTERNAL", "OK", "OK"), (False, False, True), strict=True
    ):
        await one_audit(stack, request_id, outcome=outcome, replayed=replayed, tenant_id=tenant)


async def test_timeout_is_not_stored(testing_stack: Stack) -> None:
    stack = testing_stack
    tenant, root = await new_user(stack, roles=("admin",))
    token, key, ids = rid(), ikey(), [rid(), rid()]
    async with stack.client(root) as http:
        answers = [
            await http.post(
                "/api/ops/testing.slow",
                json={"token": token, "seconds": 1},
                headers=headers(i, key),
            )
            for i in ids
        ]
    for request_id, r in zip(ids, answers, strict=True):
        assert_problem(
            r,
            504,
            "TIMEOUT",
            request_id=request_id,
            retryable=True,
            operation={"key": "testing.slow", "version": "1.0.0", "kind": "command"},
        )
        assert "idempotent-replayed" not in r.headers
        await one_audit(stack, request_id, outcome="TIMEOUT", replayed=False, tenant_id=tenant)
    assert await _runs(stack, token, root) == 2


async def test_same_key_while_running_is_409_busy(testing_stack: Stack) -> None:
    stack = testing_stack  # SPECOPS_IDEMPOTENCY_WAIT_SECONDS=0.2
    tenant, root = await new_user(stack, roles=("admin",))
    token, key = rid(), ikey()
    first_id, busy_id, later_id = rid(), rid(), rid()
    body = {"token": token, "seconds": 2}
    path = "/api/ops/testing.slowCommand"
    async with stack.client(root) as http:
        first = asyncio.create_task(http.post(path, json=body, headers=headers(first_id, key)))
        for _ in range(200):  # until its handler runs, so the key is claimed
            if await _runs(stack, token, root):
                break
            await asyncio.sleep(0.02)
        assert not first.done()
        busy = await http.post(path, json=body, headers=headers(busy_id, key))
        done = await first
        later = await http.post(path, json=body, headers=headers(later_id, key))
    assert_problem(
        busy,
        409,
        "IDEMPOTENCY_CONFLICT",
        request_id=busy_id,
        retryable=True,
        operation={"key": "testing.slowCommand", "version": "1.0.0", "kind": "command"},
    )
    assert busy.headers["retry-after"] == "1"
    assert done.status_code == later.status_code == 200, (done.text, later.text)
    assert later.headers["idempotent-replayed"] == "true"
    assert later.json() == done.json()
    assert await _runs(stack, token, root) == 1
    await one_audit(stack, first_id, outcome="OK", replayed=False, tenant_id=tenant)
    await one_audit(
        stack,
        busy_id,
        outcome="IDEMPOTENCY_CONFLICT",
        status=409,
        decision="allow",
        replayed=False,
        idempotency_key=key,
        tenant_id=tenant,
    )
    await one_audit(stack, later_id, outcome="OK", replayed=True, tenant_id=tenant)


async def test_concurrent_duplicates_run_once(stack: Stack) -> None:
    _, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    key = ikey()
    ids = [rid(f"dup{n}") for n in range(8)]
    async with stack.client(alice) as http:
        answers = await asyncio.gather(
            *(http.post(CAPTURE, json=capture_body(invoice), headers=headers(i, key)) for i in ids)
        )
    assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
    assert len({r.json()["transactionId"] for r in answers}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in answers) == 1
    rows = [await one_audit(stack, i, outcome="OK", idempotency_key=key) for i in ids]
    assert sorted(row["replayed"] for row in rows) == [False] + [True] * 7
    [intent] = await intents_for(stack, invoice["id"])
    assert intent["id"] == answers[0].json()["transactionId"]
    paid = await get_invoice(stack, alice, invoice["id"])
    assert (paid["status"], paid["transactionId"]) == ("paid", intent["id"])


async def test_concurrent_captures_with_different_keys(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    ids = [rid(f"race{n}") for n in range(8)]
    async with stack.client(alice) as http:
        answers = await asyncio.gather(
            *(
                http.post(CAPTURE, json=capture_body(invoice), headers=headers(i, ikey()))
                for i in ids
            )
        )
    won = [r for r in answers if r.status_code == 200]
    assert len(won) == 1, [r.text for r in answers]
    for request_id, r in zip(ids, answers, strict=True):
        if r.status_code == 200:
            await one_audit(stack, request_id, outcome="OK", replayed=False)
            continue
        code = r.json()["code"]
        assert code in ("PAYMENT_IN_PROGRESS", "INVOICE_ALREADY_PAID"), r.text
        assert_problem(
            r,
            409,
            code,
            request_id=request_id,
            operation=CAPTURE_OP,
            retryable=code == "PAYMENT_IN_PROGRESS",
        )
        await one_audit(
            stack,
            request_id,
            outcome=code,
            status=409,
            decision="allow",
            replayed=False,
            tenant_id=tenant,
        )
    succeeded = [i for i in await intents_for(stack, invoice["id"]) if i["status"] == "succeeded"]
    assert [i["id"] for i in succeeded] == [won[0].json()["transactionId"]]
    paid = await get_invoice(stack, alice, invoice["id"])
    assert (paid["status"], paid["transactionId"]) == ("paid", won[0].json()["transactionId"])


async def test_retryable_declared_error_is_not_replayed(stack: Stack) -> None:
    _, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)

    async def set_status(status: str) -> None:
        async with stack.db.begin() as conn:
            await conn.execute(
                update(invoices).where(invoices.c.id == invoice["id"]).values(status=status)
            )

    key = ikey()
    async with stack.client(alice) as http:
        await set_status("processing")  # another payment attempt is running
        busy = await http.post(
            CAPTURE, json=capture_body(invoice), headers={"Idempotency-Key": key}
        )
        assert_problem(busy, 409, "PAYMENT_IN_PROGRESS", retryable=True)
        await set_status("open")  # ... and has failed: the invoice may be paid again
        retry = await http.post(
            CAPTURE, json=capture_body(invoice), headers={"Idempotency-Key": key}
        )
    assert "idempotent-replayed" not in retry.headers
    assert retry.status_code == 200, retry.text
