"""No secret reaches the audit table or the server log: neither an API key (valid, revoked
or made up) nor the Stripe key."""

from __future__ import annotations

import pytest

from policy.api_keys import ApiKeyStore, key_id_of
from tests.support.api import (
    CAPTURE,
    LIST_INVOICES,
    all_audit_rows,
    capture_body,
    create_invoice,
    headers,
    new_tenant,
    new_user,
    one_audit,
    rid,
)
from tests.support.extra_ops import LEAKY_DETAIL
from tests.support.stack import STRIPE_TEST_KEY, Stack

pytestmark = pytest.mark.e2e

MADE_UP_TOKENS = [
    "sk_live_zzzzzzzzzzzz_madeUpSecretThatMustNotBeLogged0000000000",
    "sk_test_madeUpTokenOfTheWrongShape1111111111",
    "not-even-a-key-2222222222",
]


def secrets_of(token: str) -> list[str]:
    """The token, and its secret part on its own (the key id is not secret)."""
    parts = token.split("_", 3)
    return [token, parts[3]] if len(parts) == 4 else [token]


async def exercise(stack: Stack, *, pays: bool) -> list[str]:
    """A spread of requests: successes, failures, bad and revoked credentials."""
    tenant, alice = await new_user(stack)
    bob = await stack.key(tenant, "bob")
    revoked = await stack.key(tenant, "carol")
    revoked_id = key_id_of(revoked)
    assert revoked_id is not None
    invoice = await create_invoice(stack, alice)
    ids: list[str] = []

    def nid() -> str:
        ids.append(rid("secrets"))
        return ids[-1]

    async with stack.client(alice) as http:
        await http.get(LIST_INVOICES, headers=headers(nid()))
        await http.post(CAPTURE, json=capture_body(invoice), headers=headers(nid(), "k-secrets"))
        if pays:
            await http.post(
                CAPTURE,
                json=capture_body(invoice, "pm_card_chargeCustomerFail"),
                headers=headers(nid()),
            )
        await http.post(CAPTURE, content=b"{", headers=headers(nid()))
    async with stack.client(bob) as http:
        await http.post(CAPTURE, json=capture_body(invoice), headers=headers(nid()))
    async with stack.client(revoked) as http:
        await http.get(LIST_INVOICES, headers=headers(nid()))
        await ApiKeyStore(stack.db).revoke(revoked_id)
        await http.get(LIST_INVOICES, headers=headers(nid()))
    for token in MADE_UP_TOKENS:
        async with stack.client(token) as http:
            await http.get(LIST_INVOICES, headers=headers(nid()))
    for request_id in ids:
        await one_audit(stack, request_id)
    return ids


async def assert_no_secrets(stack: Stack, request_ids: list[str], extra: list[str]) -> None:
    secrets = [s for t in [*stack.issued, *MADE_UP_TOKENS] for s in secrets_of(t)]
    secrets += [STRIPE_TEST_KEY, *extra]
    rows = await all_audit_rows(stack)
    assert {r["request_id"] for r in rows} >= set(request_ids)
    dumped = "\n".join(repr(sorted(r.items())) for r in rows)
    log = stack.server.log()
    assert all(request_id in log for request_id in request_ids), "audit lines are logged"
    for secret in secrets:
        assert secret not in dumped, f"a secret ({secret[:10]}...) is in the audit table"
        assert secret not in log, f"a secret ({secret[:10]}...) is in the server log"


async def test_no_secret_in_audit_rows_or_log(stack: Stack) -> None:
    ids = await exercise(stack, pays=True)
    await assert_no_secrets(stack, ids, [])


async def test_no_secret_in_audit_rows_or_log_of_failing_operations(testing_stack: Stack) -> None:
    stack = testing_stack
    ids = await exercise(stack, pays=False)
    root = await stack.key(new_tenant(), "root", ("admin",))
    async with stack.client(root) as http:
        for name in ("explode", "undeclared"):
            request_id = rid("secrets")
            r = await http.post(
                f"/api/ops/testing.{name}", json={"token": request_id}, headers=headers(request_id)
            )
            assert r.status_code == 500
            ids.append(request_id)
    await assert_no_secrets(stack, ids, [])
    # What a failing handler said stays out of the audit table (the log keeps the
    # traceback, for operators).
    rows = await all_audit_rows(stack)
    assert all(LEAKY_DETAIL not in repr(r) for r in rows)
