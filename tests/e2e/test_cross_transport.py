"""One billing.capturePayment scenario over REST, GraphQL and MCP against the real server
(``specops serve``): each transport's real client, the same outcome and the same audit
record, transport aside.

Each step's answer is normalized into an ``Answer`` (the code, the problem's fields or
the output, and whether it was an idempotent replay), which must equal what REST answers.
Each step writes exactly one audit row; once the columns that name the transport, the
request or the moment are dropped, it must equal the row of the same step of a reference
run over REST (every column, including any this test does not name). Each run has its own
tenant, keys and invoice: the tenant, credential, payment id and input digest are checked
against the run's own values, then replaced by placeholders. The digest must be that of
the validated input, so identical inputs have identical digests on every transport.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest

from policy.api_keys import key_id_of
from registry.digest import input_digest
from specs.billing.capture_payment import CapturePaymentInput
from tests.support import api
from tests.support.captures import CALLS, CAPTURE_FIELD, Answer
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

#: Audit columns that differ by nature between two calls: which call, when, how long, by
#: which transport and from where. ``idempotency_key`` is checked per transport (GraphQL
#: derives ``<key>:<response key>``).
PER_CALL_COLUMNS = {
    "id",
    "at",
    "request_id",
    "latency_ms",
    "transport",
    "client",
    "idempotency_key",
    "trace_id",
    "seq",
    "prev_hash",
    "hash",
}


def audited_key(transport: str, key: str | None) -> str | None:
    """The idempotency key the audit row of a capture sent with ``key`` records."""
    if key is None or transport != "graphql":
        return key
    return f"{key}:{CAPTURE_FIELD}"


def digest(payload: dict[str, Any]) -> str:
    """The input digest of a valid capture input: of the validated input, whatever the
    transport carried it in."""
    return input_digest(CapturePaymentInput.model_validate(payload))


def comparable_input(stored: str, invoice_id: str) -> dict[str, Any]:
    """A record's stored input with the run's invoice replaced by a placeholder and the
    amount as a decimal string (GraphQL's Decimal scalar hands over ``"12.555"`` where
    REST's JSON had ``12.555``: an input that failed validation is kept as sent)."""
    found: dict[str, Any] = json.loads(stored)
    assert found["invoiceId"] == invoice_id
    return {**found, "invoiceId": "<invoice>", "amount": str(Decimal(str(found["amount"])))}


@dataclass
class Run:
    """One run of the scenario, with what differs between runs replaced by placeholders."""

    answers: dict[str, Answer]
    rows: dict[str, dict[str, Any]]


async def run_scenario(stack: Stack, transport: str) -> Run:
    """Create an invoice (over REST), then over ``transport``: (a) capture with an amount
    too precise for USD, (b) capture as another user of the tenant, (c) capture as the
    owner with an idempotency key, (d) retry (c)."""
    call = CALLS[transport]
    tenant, alice = await api.new_user(stack)
    bob = await stack.key(tenant, "bob")  # same tenant, not the invoice's owner
    invoice = await api.create_invoice(stack, alice)
    payment = api.capture_body(invoice)
    key = f"cross-{uuid.uuid4().hex}"
    steps: list[tuple[str, str, dict[str, Any], str | None]] = [
        ("invalid", alice, api.capture_body(invoice, amount=12.555), None),
        ("refused", bob, payment, None),
        ("paid", alice, payment, key),
        ("retried", alice, payment, key),
    ]
    answers: dict[str, Answer] = {}
    request_ids: dict[str, str] = {}
    for step, token, payload, idempotency_key in steps:
        request_ids[step] = api.rid(f"{transport}-{step}")
        answers[step] = await call(stack, token, payload, request_ids[step], idempotency_key)

    # the payment happened once, and the retry answered it again
    transaction_id = answers["paid"].fields.get("transactionId")
    assert isinstance(transaction_id, str) and transaction_id.startswith("pi_"), answers
    assert answers["retried"].fields.get("transactionId") == transaction_id, answers
    after = await api.get_invoice(stack, alice, invoice["id"])
    assert (after["status"], after["transactionId"]) == ("paid", transaction_id)
    assert [intent["id"] for intent in await api.intents_for(stack, invoice["id"])] == [
        transaction_id
    ]
    for step in ("paid", "retried"):
        fields = {**answers[step].fields, "transactionId": "<payment>"}
        answers[step] = replace(answers[step], fields=fields)

    keys = {alice: "<alice's key>", bob: "<bob's key>"}
    rows: dict[str, dict[str, Any]] = {}
    for step, token, _, idempotency_key in steps:
        found = await stack.audit(request_ids[step])
        assert len(found) == 1, (step, found)
        row = found[0]
        assert (row["transport"], row["client"]) == (transport, "127.0.0.1"), row
        assert row["idempotency_key"] == audited_key(transport, idempotency_key), row
        assert row["tenant_id"] == tenant, row
        assert row["credential_id"] == key_id_of(token), row
        assert row["input_digest"] in (None, digest(payment)), row
        assert re.fullmatch(r"[0-9a-f]{32}", row["trace_id"]), row
        stored_input = json.loads(row["input"])
        assert stored_input["invoiceId"] == invoice["id"], row
        assert stored_input["paymentMethodId"] == "[REDACTED]", row
        rows[step] = {
            **{name: value for name, value in row.items() if name not in PER_CALL_COLUMNS},
            "tenant_id": "<tenant>",
            "credential_id": keys[token],
            "input_digest": None if row["input_digest"] is None else "<digest of the payment>",
            "input": comparable_input(row["input"], invoice["id"]),
        }
    return Run(answers, rows)


@pytest.fixture(scope="module")
async def rest_reference(stack: Stack) -> Run:
    """The scenario over REST, once per backend: the rows every transport must write."""
    return await run_scenario(stack, "rest")


def problem_fields(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    status = {"INVALID_INPUT": 422, "FORBIDDEN": 403}[code]
    return {
        "status": status,
        "title": api.TITLES[(code, status)],
        "detail": detail,
        "retryable": False,
        "operation": api.CAPTURE_OP,
        **extra,
    }


PAID = {"transactionId": "<payment>", "status": "succeeded", "receiptUrl": None}
#: What REST answers each step.
EXPECTED_ANSWERS = {
    "invalid": Answer(
        "INVALID_INPUT",
        problem_fields(
            "INVALID_INPUT",
            "1 invalid field: amount: USD amounts have at most 2 decimal places",
            issues=[
                {
                    "path": "amount",
                    "code": "currency_precision",
                    "message": "USD amounts have at most 2 decimal places",
                }
            ],
        ),
        replayed=False,
    ),
    "refused": Answer(
        "FORBIDDEN",
        problem_fields("FORBIDDEN", "Only the invoice's owner may pay it"),
        replayed=False,
    ),
    "paid": Answer("OK", PAID, replayed=False),
    "retried": Answer("OK", PAID, replayed=True),
}


def audited(actor: str, **columns: Any) -> dict[str, Any]:
    return {
        "tenant_id": "<tenant>",
        "actor_id": actor,
        "actor_kind": "user",
        "credential_id": f"<{actor}'s key>",
        "operation_key": "billing.capturePayment",
        "operation_version": "1.0.0",
        "replayed": False,
        "input_digest": "<digest of the payment>",
        "detail": None,
        **columns,
    }


#: The columns of each step's audit row that this test names (the row must equal the
#: reference row in every other column too).
EXPECTED_COLUMNS = {
    "invalid": audited(
        "alice",
        decision="none",
        outcome="INVALID_INPUT",
        status=422,
        input_digest=None,
        detail=EXPECTED_ANSWERS["invalid"].fields["detail"],
    ),
    "refused": audited(
        "bob",
        decision="deny",
        outcome="FORBIDDEN",
        status=403,
        detail=EXPECTED_ANSWERS["refused"].fields["detail"],
    ),
    "paid": audited("alice", decision="allow", outcome="OK", status=200),
    "retried": audited("alice", decision="allow", outcome="OK", status=200, replayed=True),
}


@pytest.mark.parametrize("transport", list(CALLS))
async def test_capture_payment_is_the_same_over_every_transport(
    stack: Stack, rest_reference: Run, transport: str
) -> None:
    run = await run_scenario(stack, transport)
    assert run.answers == EXPECTED_ANSWERS
    named = {
        step: {name: row.get(name) for name in EXPECTED_COLUMNS[step]}
        for step, row in run.rows.items()
    }
    assert named == EXPECTED_COLUMNS
    assert run.rows == rest_reference.rows
