"""Every code of the error catalogue, end to end: status, problem document, headers, and
exactly one audit row with the right outcome and decision."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from policy.api_keys import ApiKeyStore, key_id_of
from tests.support.api import (
    CAPTURE,
    CAPTURE_OP,
    CATALOGUE_SPECS,
    CREATE,
    CREATE_OP,
    DOMAIN_SPECS,
    GET_INVOICE,
    GET_OP,
    LIST_INVOICES,
    LIST_OP,
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
from tests.support.extra_ops import LEAKY_DETAIL
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024

# (code, status) of every catalogue and billing error, and the test here that shows it.
COVERED = {
    ("MALFORMED_REQUEST", 400): "test_a_request_refused_before_its_handler[body-not-json]",
    ("MALFORMED_REQUEST", 415): "test_a_request_refused_before_its_handler[media-type-*]",
    ("MALFORMED_REQUEST", 413): "test_body_over_one_mib_is_413",
    ("MALFORMED_REQUEST", 405): "test_a_request_refused_before_its_handler[get-on-a-command]",
    ("INVALID_INPUT", 422): "test_amount_too_precise_for_its_currency",
    ("UNAUTHENTICATED", 401): "test_bad_credentials_are_401",
    ("FORBIDDEN", 403): "test_role_without_grants_is_forbidden",
    ("OP_NOT_FOUND", 404): "test_unknown_operation_is_404",
    ("IDEMPOTENCY_CONFLICT", 422): "test_idempotency.test_same_key_different_body_is_422",
    ("IDEMPOTENCY_CONFLICT", 409): "test_idempotency.test_same_key_while_running_is_409_busy",
    ("RATE_LIMITED", 429): "test_rate_limited_is_429_with_retry_after",
    ("UPSTREAM_UNAVAILABLE", 503): "test_without_stripe_key_capture_is_503",
    ("TIMEOUT", 504): "test_handler_past_its_timeout_is_504",
    ("INTERNAL", 500): "test_handler_failures_are_500_without_details",
    # never an answer: the record of a command whose process died (audit only)
    ("INTERRUPTED", 500): "test_audit_crash.test_no_effect_is_left_without_a_record_after_sigkill",
    ("INVOICE_NOT_FOUND", 404): "test_unknown_invoice_is_404",
    ("INVOICE_ALREADY_PAID", 409): "test_paying_twice_is_409_already_paid",
    ("PAYMENT_IN_PROGRESS", 409): "test_idempotency.test_concurrent_captures_with_different_keys",
    ("AMOUNT_MISMATCH", 422): "test_amount_or_currency_mismatch_is_422",
    ("CARD_DECLINED", 402): "test_declined_card_is_402_and_invoice_stays_open",
}


def test_every_catalogued_code_has_an_end_to_end_test() -> None:
    known = {(s.code, s.status) for s in CATALOGUE_SPECS}
    # PAYMENT_METHOD_INVALID needs a payment method localstripe refuses as unusable.
    known |= {(s.code, s.status) for s in DOMAIN_SPECS if s.code != "PAYMENT_METHOD_INVALID"}
    assert known - COVERED.keys() == set()


# -- MALFORMED_REQUEST and INVALID_INPUT: refused before the handler ------------------


@dataclass(frozen=True)
class Refusal:
    """A request refused before its handler runs, by an identified caller unless
    ``caller`` is False, and what its answer and its one audit row say."""

    method: str
    path: str
    status: int
    code: str
    operation: dict[str, str]
    send: dict[str, Any] = field(default_factory=dict)  # httpx request arguments
    content_type: str | None = None
    caller: bool = True
    detail: str | None = None
    detail_prefix: str = ""
    issues: list[dict[str, str]] | None = None
    issue_codes: dict[str, str] | None = None  # path -> code, each with a message
    not_echoed: tuple[str, ...] = ()
    allow: str | None = None
    audit: dict[str, Any] = field(default_factory=dict)


JSON = "application/json"
REFUSALS = {
    "body-not-json": Refusal(
        "POST",
        CAPTURE,
        400,
        "MALFORMED_REQUEST",
        CAPTURE_OP,
        send={"content": b'{"invoiceId": "inv_1", "amount": '},
        content_type=JSON,
        detail="The body is not valid JSON",
        audit={
            "operation_key": "billing.capturePayment",
            "operation_version": "1.0.0",
            "input_digest": None,
        },
    ),
    "input-parameter-not-json": Refusal(
        "GET",
        LIST_INVOICES,
        400,
        "MALFORMED_REQUEST",
        LIST_OP,
        send={"params": {"input": "{limit: 2"}},
    ),
    **{
        f"media-type-{media_type}": Refusal(
            "POST",
            CREATE,
            415,
            "MALFORMED_REQUEST",
            CREATE_OP,
            send={"content": b'{"amount": "1", "currency": "usd"}'},
            content_type=media_type,
        )
        for media_type in ("text/plain", "application/x-www-form-urlencoded", None)
    },
    # The method is refused before anyone is identified.
    "get-on-a-command": Refusal(
        "GET",
        CAPTURE,
        405,
        "MALFORMED_REQUEST",
        CAPTURE_OP,
        send={"params": {"invoiceId": "inv_1"}},
        caller=False,
        allow="POST",
        audit={"operation_key": "billing.capturePayment"},
    ),
    "currency-stripe-does-not-support": Refusal(
        "POST",
        CREATE,
        422,
        "INVALID_INPUT",
        CREATE_OP,
        send={"json": {"amount": "25.00", "currency": "xyz"}},
        issues=[
            {
                "path": "currency",
                "code": "currency_unsupported",
                "message": "XYZ is not a currency Stripe supports",
            }
        ],
    ),
    "extra-fields-and-wrong-types": Refusal(
        "POST",
        CAPTURE,
        422,
        "INVALID_INPUT",
        CAPTURE_OP,
        send={"json": {"invoiceId": 5, "amount": "lots", "currency": "usd", "tip": 1}},
        detail_prefix="4 invalid fields: ",
        issue_codes={
            "invoiceId": "string_type",
            "amount": "decimal_parsing",
            "paymentMethodId": "missing",
            "tip": "extra_forbidden",
        },
        not_echoed=("lots",),  # submitted values are not echoed back
    ),
    "input-not-an-object": Refusal(
        "POST",
        CREATE,
        422,
        "INVALID_INPUT",
        CREATE_OP,
        send={"json": [1, 2]},
        issues=[{"path": "", "code": "object_type", "message": "Input should be an object"}],
    ),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
async def test_a_request_refused_before_its_handler(stack: Stack, case: Refusal) -> None:
    tenant, alice = await new_user(stack)
    request_id = rid()
    extra = {"Content-Type": case.content_type} if case.content_type else {}
    async with stack.client(alice) as http:
        r = await http.request(
            case.method, case.path, headers=headers(request_id, **extra), **case.send
        )
        listed = await http.get(LIST_INVOICES)
    body = assert_problem(
        r, case.status, case.code, request_id=request_id, operation=case.operation
    )
    if case.detail is not None:
        assert body["detail"] == case.detail
    assert body["detail"].startswith(case.detail_prefix)
    if case.allow is not None:
        assert r.headers["allow"] == case.allow
        assert case.allow in body["detail"]
    if case.issues is not None:
        assert body["issues"] == case.issues
    if case.issue_codes is not None:
        assert {i["path"]: i["code"] for i in body["issues"]} == case.issue_codes
        assert all(isinstance(i["message"], str) and i["message"] for i in body["issues"])
    for value in case.not_echoed:
        assert value not in r.text
    assert listed.status_code == 200 and listed.json()["items"] == []  # nothing was created
    await one_audit(
        stack,
        request_id,
        outcome=case.code,
        status=case.status,
        decision="none",
        tenant_id=tenant if case.caller else None,
        actor_id="alice" if case.caller else None,
        **case.audit,
    )


# -- MALFORMED_REQUEST: media types, body size, methods -------------------------------


async def test_json_suffix_media_types_are_accepted(stack: Stack) -> None:
    _, alice = await new_user(stack)
    async with stack.client(alice) as http:
        r = await http.post(
            CREATE,
            content=b'{"amount": "1", "currency": "usd"}',
            headers={"Content-Type": "application/merge-patch+json; charset=utf-8"},
        )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_body_over_one_mib_is_413(stack: Stack, framing: str) -> None:
    tenant, alice = await new_user(stack)
    request_id = rid()
    payload = json.dumps({"amount": "1", "currency": "usd", "description": "x" * MIB}).encode()
    assert len(payload) > MIB

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    content = payload if framing == "content-length" else chunks()
    async with stack.client(alice) as http:
        r = await http.post(
            CREATE,
            content=content,
            headers=headers(request_id, **{"Content-Type": "application/json"}),
        )
    assert_problem(r, 413, "MALFORMED_REQUEST", request_id=request_id, operation=CREATE_OP)
    await one_audit(
        stack,
        request_id,
        outcome="MALFORMED_REQUEST",
        status=413,
        decision="none",
        tenant_id=tenant,
        actor_id="alice",
    )


async def test_body_of_exactly_one_mib_is_read(stack: Stack) -> None:
    """The limit is on bytes: a body of exactly 1 MiB gets past it (then fails validation
    of the description's length, proving it was parsed)."""
    _, alice = await new_user(stack)
    prefix = b'{"amount": "1", "currency": "usd", "description": "'
    payload = prefix + b"x" * (MIB - len(prefix) - 2) + b'"}'
    assert len(payload) == MIB
    async with stack.client(alice) as http:
        r = await http.post(CREATE, content=payload, headers={"Content-Type": "application/json"})
    body = assert_problem(r, 422, "INVALID_INPUT", operation=CREATE_OP)
    assert [i["path"] for i in body["issues"]] == ["description"]


async def test_head_on_a_command_does_not_run_it(stack: Stack) -> None:
    _, alice = await new_user(stack)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.request(
            "HEAD", CREATE, json={"amount": "3.00", "currency": "usd"}, headers=headers(request_id)
        )
        listed = await http.get(LIST_INVOICES)
    assert listed.json()["items"] == [], "a HEAD request created an invoice"
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    await one_audit(stack, request_id, outcome="MALFORMED_REQUEST", status=405, tenant_id=None)


# -- INVALID_INPUT ---------------------------------------------------------------------


async def test_amount_too_precise_for_its_currency(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(
            CAPTURE,
            json=capture_body(invoice, amount=12.555),
            headers=headers(request_id),
        )
    body = assert_problem(r, 422, "INVALID_INPUT", request_id=request_id, operation=CAPTURE_OP)
    assert body["issues"] == [
        {
            "path": "amount",
            "code": "currency_precision",
            "message": "USD amounts have at most 2 decimal places",
        }
    ]
    assert body["detail"].startswith("1 invalid field: amount")
    await one_audit(
        stack,
        request_id,
        outcome="INVALID_INPUT",
        status=422,
        decision="none",
        tenant_id=tenant,
        actor_id="alice",
        input_digest=None,
    )
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"


async def test_get_query_parameters_are_coerced_and_validated(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    await create_invoice(stack, alice)
    ok_id, bad_id, low_id = rid(), rid(), rid()
    async with stack.client(alice) as http:
        ok = await http.get(LIST_INVOICES, params={"limit": "1"}, headers=headers(ok_id))
        bad = await http.get(LIST_INVOICES, params={"limit": "abc"}, headers=headers(bad_id))
        low = await http.get(
            LIST_INVOICES, params={"limit": "0", "status": "lost"}, headers=headers(low_id)
        )
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["items"]) == 1
    body = assert_problem(bad, 422, "INVALID_INPUT", request_id=bad_id, operation=LIST_OP)
    assert [(i["path"], i["code"]) for i in body["issues"]] == [("limit", "int_parsing")]
    body = assert_problem(low, 422, "INVALID_INPUT", request_id=low_id, operation=LIST_OP)
    assert {(i["path"], i["code"]) for i in body["issues"]} == {
        ("limit", "greater_than_equal"),
        ("status", "enum"),
    }
    await one_audit(stack, ok_id, outcome="OK", decision="allow", tenant_id=tenant)
    await one_audit(stack, bad_id, outcome="INVALID_INPUT", decision="none", tenant_id=tenant)
    await one_audit(stack, low_id, outcome="INVALID_INPUT", decision="none", tenant_id=tenant)


# -- UNAUTHENTICATED -------------------------------------------------------------------

BAD_AUTHORIZATION = {
    "missing": None,
    "basic scheme": "Basic YWxpY2U6c2VjcmV0",
    "bearer without token": "Bearer",
    "unknown key": "Bearer sk_live_abcdefghijkl_notARealSecretAtAllxxxxxxxxxxxxxxxxxxxxx",
    "not a key": "Bearer hello",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION.keys())
async def test_bad_credentials_are_401(stack: Stack, authorization: str | None) -> None:
    _, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    request_id = rid()
    extra = {"Authorization": authorization} if authorization is not None else {}
    async with stack.client() as http:
        r = await http.post(
            CAPTURE, json=capture_body(invoice), headers=headers(request_id, **extra)
        )
    body = assert_problem(r, 401, "UNAUTHENTICATED", request_id=request_id, operation=CAPTURE_OP)
    assert body["detail"] in ("This operation needs credentials", "Invalid credentials")
    presented = (authorization or "").partition(" ")[2].strip()
    if presented:
        assert presented not in r.text
    row = await one_audit(
        stack,
        request_id,
        outcome="UNAUTHENTICATED",
        status=401,
        decision="deny",
        tenant_id=None,
        credential_id=None,
    )
    assert row["actor_id"] == ("anonymous" if authorization is None else None)
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"


async def test_401_carries_a_bearer_challenge(stack: Stack) -> None:
    async with stack.client() as http:
        r = await http.get(LIST_INVOICES)
    assert r.status_code == 401
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")


async def test_key_revoked_before_first_use_is_401(stack: Stack) -> None:
    _, alice = await new_user(stack)
    key_id = key_id_of(alice)
    assert key_id is not None
    assert await ApiKeyStore(stack.db).revoke(key_id)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.get(LIST_INVOICES, headers=headers(request_id))
    assert_problem(r, 401, "UNAUTHENTICATED", request_id=request_id, operation=LIST_OP)
    await one_audit(
        stack, request_id, outcome="UNAUTHENTICATED", decision="deny", tenant_id=None, actor_id=None
    )


async def test_key_revoked_after_use_is_401_without_identity_cache(testing_stack: Stack) -> None:
    stack = testing_stack  # SPECOPS_IDENTITY_CACHE_SECONDS=0
    tenant, alice = await new_user(stack)
    ok_id, revoked_id = rid(), rid()
    async with stack.client(alice) as http:
        ok = await http.get(LIST_INVOICES, headers=headers(ok_id))
        assert ok.status_code == 200, ok.text
        key_id = key_id_of(alice)
        assert key_id is not None
        assert await ApiKeyStore(stack.db).revoke(key_id)
        r = await http.get(LIST_INVOICES, headers=headers(revoked_id))
    assert_problem(r, 401, "UNAUTHENTICATED", request_id=revoked_id, operation=LIST_OP)
    await one_audit(stack, ok_id, outcome="OK", tenant_id=tenant, credential_id=key_id)
    await one_audit(stack, revoked_id, outcome="UNAUTHENTICATED", decision="deny", tenant_id=None)


# -- FORBIDDEN -------------------------------------------------------------------------


async def test_role_without_grants_is_forbidden(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    nobody = await stack.key(tenant, "alice", roles=("nobody",))
    pay_id, create_id = rid(), rid()
    async with stack.client(nobody) as http:
        pay = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(pay_id))
        create = await http.post(
            CREATE, json={"amount": "1", "currency": "usd"}, headers=headers(create_id)
        )
    body = assert_problem(pay, 403, "FORBIDDEN", request_id=pay_id, operation=CAPTURE_OP)
    assert "pay" in body["detail"] and "invoice" in body["detail"]
    assert_problem(create, 403, "FORBIDDEN", request_id=create_id, operation=CREATE_OP)
    await one_audit(
        stack,
        pay_id,
        outcome="FORBIDDEN",
        status=403,
        decision="deny",
        tenant_id=tenant,
        actor_id="alice",
    )
    await one_audit(stack, create_id, outcome="FORBIDDEN", decision="deny", tenant_id=tenant)
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"
    assert await intents_for(stack, invoice["id"]) == []


async def test_operation_granted_to_admins_only_is_forbidden_to_users(
    testing_stack: Stack,
) -> None:
    stack = testing_stack
    tenant, alice = await new_user(stack)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(
            "/api/ops/testing.explode", json={"token": rid()}, headers=headers(request_id)
        )
    body = assert_problem(
        r,
        403,
        "FORBIDDEN",
        request_id=request_id,
        operation={"key": "testing.explode", "version": "1.0.0", "kind": "command"},
    )
    assert "testing.explode" in body["detail"]
    await one_audit(stack, request_id, outcome="FORBIDDEN", decision="deny", tenant_id=tenant)


async def test_creating_an_invoice_for_another_user_without_assign_is_403(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(
            CREATE,
            json={"amount": "1", "currency": "usd", "ownerId": "bob"},
            headers=headers(request_id),
        )
    assert_problem(r, 403, "FORBIDDEN", request_id=request_id, operation=CREATE_OP)
    await one_audit(stack, request_id, outcome="FORBIDDEN", tenant_id=tenant, actor_id="alice")
    root = await stack.key(tenant, "root", roles=("admin",))
    async with stack.client(root) as http:
        bobs = await http.get(LIST_INVOICES, params={"ownerId": "bob"})
    assert bobs.json()["items"] == []


# -- OP_NOT_FOUND ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key", "version"),
    [
        ("/api/ops/billing.refundPayment", "billing.refundPayment", None),
        ("/api/ops/billing.capturePayment/v9.9.9", "billing.capturePayment", "9.9.9"),
        ("/api/ops/billing.capturePayment/vlatest", "billing.capturePayment", "latest"),
    ],
)
async def test_unknown_operation_is_404(
    stack: Stack, path: str, key: str, version: str | None
) -> None:
    tenant, alice = await new_user(stack)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(path, json={}, headers=headers(request_id))
    body = assert_problem(r, 404, "OP_NOT_FOUND", request_id=request_id, operation=None)
    assert key in body["detail"]
    if version:
        assert version in body["detail"]
    await one_audit(
        stack,
        request_id,
        outcome="OP_NOT_FOUND",
        status=404,
        decision="none",
        operation_key=key,
        operation_version=version,
        tenant_id=tenant,  # an unknown operation's record names its caller
        actor_id="alice",
    )


async def test_over_long_pinned_version_is_404_and_audited(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    version = "1.0.0-" + "a" * 100
    request_id = rid()
    async with stack.client() as http:
        r = await http.post(f"{CAPTURE}/v{version}", json={}, headers=headers(request_id))
    assert_problem(r, 404, "OP_NOT_FOUND", request_id=request_id, operation=None)
    row = await one_audit(stack, request_id, outcome="OP_NOT_FOUND", status=404)
    assert row["operation_version"] is not None


async def test_pinned_known_version_resolves(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice, amount="7.00")
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(
            f"{CAPTURE}/v1.0.0", json=capture_body(invoice), headers=headers(request_id)
        )
    assert r.status_code == 200, r.text
    await one_audit(stack, request_id, outcome="OK", operation_version="1.0.0", tenant_id=tenant)


# -- declared billing errors -----------------------------------------------------------


async def test_unknown_invoice_is_404(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    get_id, pay_id = rid(), rid()
    missing = {"id": "inv_doesnotexist", "amount": "1.00", "currency": "usd"}
    async with stack.client(alice) as http:
        got = await http.get(
            GET_INVOICE, params={"invoiceId": missing["id"]}, headers=headers(get_id)
        )
        pay = await http.post(CAPTURE, json=capture_body(missing), headers=headers(pay_id))
    assert_problem(got, 404, "INVOICE_NOT_FOUND", request_id=get_id, operation=GET_OP)
    assert_problem(pay, 404, "INVOICE_NOT_FOUND", request_id=pay_id, operation=CAPTURE_OP)
    # The invoice is loaded for the policy decision; absent, the decision is a denial.
    await one_audit(
        stack, get_id, outcome="INVOICE_NOT_FOUND", status=404, decision="deny", tenant_id=tenant
    )
    await one_audit(
        stack, pay_id, outcome="INVOICE_NOT_FOUND", status=404, decision="deny", tenant_id=tenant
    )


async def test_paying_twice_is_409_already_paid(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    first_id, second_id = rid(), rid()
    async with stack.client(alice) as http:
        first = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(first_id))
        assert first.status_code == 200, first.text
        second = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(second_id))
    body = assert_problem(
        second,
        409,
        "INVOICE_ALREADY_PAID",
        request_id=second_id,
        operation=CAPTURE_OP,
        retryable=False,
    )
    assert invoice["id"] in body["detail"]
    await one_audit(
        stack,
        second_id,
        outcome="INVOICE_ALREADY_PAID",
        status=409,
        decision="allow",
        tenant_id=tenant,
        actor_id="alice",
    )
    assert len(await intents_for(stack, invoice["id"])) == 1


async def test_declined_card_is_402_and_invoice_stays_open(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice, amount="20.00")
    declined_id, retry_id = rid(), rid()
    async with stack.client(alice) as http:
        declined = await http.post(
            CAPTURE,
            json=capture_body(invoice, "pm_card_chargeCustomerFail"),
            headers=headers(declined_id),
        )
        assert_problem(declined, 402, "CARD_DECLINED", request_id=declined_id, operation=CAPTURE_OP)
        assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"
        retry = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(retry_id))
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "succeeded"
    paid = await get_invoice(stack, alice, invoice["id"])
    assert (paid["status"], paid["transactionId"]) == ("paid", retry.json()["transactionId"])
    await one_audit(
        stack, declined_id, outcome="CARD_DECLINED", status=402, decision="allow", tenant_id=tenant
    )
    await one_audit(stack, retry_id, outcome="OK", status=200, tenant_id=tenant)
    succeeded = [i for i in await intents_for(stack, invoice["id"]) if i["status"] == "succeeded"]
    assert [i["id"] for i in succeeded] == [retry.json()["transactionId"]]


async def test_a_retried_capture_sends_stripe_the_same_request(stack: Stack) -> None:
    """A retry reuses the Stripe idempotency key, and Stripe replays a key's first answer
    only to a request with the same parameters: nothing of the request may differ."""
    _, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice, amount="20.00")
    async with stack.client(alice) as http:
        for _ in range(2):
            request_id = rid()
            declined = await http.post(
                CAPTURE,
                json=capture_body(invoice, "pm_card_chargeCustomerFail"),
                headers=headers(request_id),
            )
            assert_problem(
                declined, 402, "CARD_DECLINED", request_id=request_id, operation=CAPTURE_OP
            )
    # localstripe keeps no idempotency keys: each attempt left a PaymentIntent
    intents = await intents_for(stack, invoice["id"])
    assert len(intents) == 2
    first, second = (
        {field: intent[field] for field in ("amount", "currency", "customer", "metadata")}
        for intent in intents
    )
    assert first == second
    assert first["metadata"] == {
        "invoiceId": invoice["id"],
        "tenantId": first["metadata"]["tenantId"],
    }


@pytest.mark.parametrize(
    "overrides", [{"amount": "12.49"}, {"currency": "eur"}], ids=["amount", "currency"]
)
async def test_amount_or_currency_mismatch_is_422(stack: Stack, overrides: dict[str, str]) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(
            CAPTURE, json=capture_body(invoice, **overrides), headers=headers(request_id)
        )
    body = assert_problem(r, 422, "AMOUNT_MISMATCH", request_id=request_id, operation=CAPTURE_OP)
    assert "issues" not in body
    assert "12.50 USD" in body["detail"]
    await one_audit(
        stack, request_id, outcome="AMOUNT_MISMATCH", status=422, decision="allow", tenant_id=tenant
    )
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"
    assert await intents_for(stack, invoice["id"]) == []


# -- UPSTREAM_UNAVAILABLE --------------------------------------------------------------


async def test_without_stripe_key_capture_is_503(testing_stack: Stack) -> None:
    stack = testing_stack
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)  # other operations work
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.post(CAPTURE, json=capture_body(invoice), headers=headers(request_id))
        ping = await http.get("/api/ops/system.ping")
        ready = await http.get("/readyz")
    body = assert_problem(
        r, 503, "UPSTREAM_UNAVAILABLE", request_id=request_id, operation=CAPTURE_OP, retryable=True
    )
    assert "STRIPE_SECRET_KEY" in body["detail"]
    assert ping.status_code == 200 and ping.json()["tenantId"] == tenant
    assert ready.status_code == 200, ready.text
    await one_audit(
        stack,
        request_id,
        outcome="UPSTREAM_UNAVAILABLE",
        status=503,
        decision="allow",
        tenant_id=tenant,
    )
    assert (await get_invoice(stack, alice, invoice["id"]))["status"] == "open"
    assert await intents_for(stack, invoice["id"]) == []


# -- RATE_LIMITED, TIMEOUT, INTERNAL (test-only operations) -----------------------------


def _testing_op(name: str, kind: str = "command") -> dict[str, str]:
    return {"key": f"testing.{name}", "version": "1.0.0", "kind": kind}


async def test_rate_limited_is_429_with_retry_after(testing_stack: Stack) -> None:
    stack = testing_stack
    tenant, root = await new_user(stack, "root", ("admin",))
    ids = [rid() for _ in range(3)]
    async with stack.client(root) as http:
        answers = [
            await http.post("/api/ops/testing.limited", json={"token": rid()}, headers=headers(i))
            for i in ids
        ]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert_problem(
        answers[2],
        429,
        "RATE_LIMITED",
        request_id=ids[2],
        operation=_testing_op("limited"),
        retryable=True,
    )
    retry_after = answers[2].headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    await one_audit(
        stack,
        ids[2],
        outcome="RATE_LIMITED",
        status=429,
        decision="allow",
        tenant_id=tenant,
        actor_id="root",
    )
    # Counted per actor: another admin of the same tenant is not limited.
    other = await stack.key(tenant, "root2", ("admin",))
    async with stack.client(other) as http:
        r = await http.post("/api/ops/testing.limited", json={"token": rid()})
    assert r.status_code == 200, r.text


async def test_handler_past_its_timeout_is_504(testing_stack: Stack) -> None:
    stack = testing_stack
    tenant, root = await new_user(stack, "root", ("admin",))
    request_id = rid()
    async with stack.client(root) as http:
        r = await http.post(
            "/api/ops/testing.slow",
            json={"token": rid(), "seconds": 2},
            headers=headers(request_id),
        )
    body = assert_problem(
        r, 504, "TIMEOUT", request_id=request_id, operation=_testing_op("slow"), retryable=True
    )
    assert body["detail"] == "testing.slow did not finish within 0.3s"
    row = await one_audit(
        stack, request_id, outcome="TIMEOUT", status=504, decision="allow", tenant_id=tenant
    )
    assert 300 <= row["latency_ms"] < 2000


@pytest.mark.parametrize(
    ("name", "kind"),
    [("explode", "command"), ("undeclared", "command"), ("badOutput", "query")],
)
async def test_handler_failures_are_500_without_details(
    testing_stack: Stack, name: str, kind: str
) -> None:
    stack = testing_stack
    tenant, root = await new_user(stack, "root", ("admin",))
    request_id = rid()
    async with stack.client(root) as http:
        if kind == "query":
            r = await http.get(
                f"/api/ops/testing.{name}", params={"token": rid()}, headers=headers(request_id)
            )
        else:
            r = await http.post(
                f"/api/ops/testing.{name}", json={"token": rid()}, headers=headers(request_id)
            )
    body = assert_problem(
        r,
        500,
        "INTERNAL",
        request_id=request_id,
        operation=_testing_op(name, kind),
        retryable=False,
    )
    assert body["detail"] == body["title"] == "Internal error"
    for leak in (LEAKY_DETAIL, "Traceback", "RuntimeError", "WIDGET_MELTED", "surprise", "runId"):
        assert leak not in r.text
    row = await one_audit(
        stack,
        request_id,
        outcome="INTERNAL",
        status=500,
        decision="allow",
        tenant_id=tenant,
        actor_id="root",
        detail=None,
    )
    assert LEAKY_DETAIL not in repr(row)
