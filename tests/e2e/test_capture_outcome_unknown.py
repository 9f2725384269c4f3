"""A capture whose Stripe outcome is unknown charges an invoice once, however it is retried.

The server talks to localstripe through a Stripe-like proxy (``tests.support.stripe_proxy``)
that honours idempotency keys and, on command, loses the answer to a PaymentIntent
creation in one of five ways: the response is dropped after the charge, delayed past the
client's timeout, replaced by a 500, or the server is SIGKILLed while the proxy holds the
request before or after forwarding it (then restarted on the same database). Each is then
retried with the same request, another idempotency key, another card, or over GraphQL or
MCP. Every cell must end with one succeeded charge or none, and the invoice as Stripe
has it: paid by that charge, or open.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from storage.tables import idempotency_keys, invoices
from tests.conftest import BACKENDS, _database_url
from tests.support import api
from tests.support.captures import CALLS, Answer
from tests.support.processes import start_specops
from tests.support.stack import Stack
from tests.support.stripe_proxy import Fault, StripeProxy, running_proxy

pytestmark = pytest.mark.e2e

#: The server's Stripe client gives up on an answer after this long, and retries once;
#: the proxy delays answers three times as long.
STRIPE_TIMEOUT_SECONDS = 1.0
SERVER_ENV: dict[str, str | None] = {
    "SPECOPS_STRIPE_TIMEOUT_SECONDS": str(STRIPE_TIMEOUT_SECONDS),
    "SPECOPS_STRIPE_MAX_NETWORK_RETRIES": "1",
    # The crashed captures' idempotency claims stay "running": answer busy at once.
    "SPECOPS_IDEMPOTENCY_WAIT_SECONDS": "0.2",
}

FAULTS = {
    "lost-response": Fault.DROP,
    "timeout": Fault.DELAY,
    "5xx-after-success": Fault.ERROR,
    "crash-before-call": Fault.HOLD_BEFORE,
    "crash-after-call": Fault.HOLD_AFTER,
}
CARD, OTHER_CARD = "pm_card_visa", "another card"  # a Mastercard made per test


@dataclass(frozen=True)
class Retry:
    transport: str
    card: str
    #: Whether it sends the first capture's Idempotency-Key again.
    same_key: bool


RETRIES = {
    "same-request": Retry("rest", CARD, same_key=True),
    "another-key": Retry("rest", CARD, same_key=False),
    "another-card": Retry("rest", OTHER_CARD, same_key=False),
    # GraphQL scopes the key by the mutation field: another key, as far as specops knows.
    "graphql": Retry("graphql", CARD, same_key=True),
    "mcp-another-card": Retry("mcp", OTHER_CARD, same_key=False),
}


@dataclass
class Proxied:
    """A server of this module's own (the crash patterns kill it), whose Stripe is the
    proxy in front of localstripe."""

    stack: Stack
    proxy: StripeProxy
    tmp: Path
    #: The first captures each crash pattern cut off, by retry (``crashed_captures``).
    crashed: dict[str, dict[str, FirstCapture]] = field(default_factory=dict)

    def restart(self) -> None:
        self.stack.server = start_specops(self.tmp, self.stack.env)
        self.stack.url = self.stack.server.url


@pytest.fixture(scope="module", params=BACKENDS)
async def proxied(
    request: pytest.FixtureRequest, localstripe: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Proxied]:
    tmp = tmp_path_factory.mktemp(f"proxied-{request.param}")
    with running_proxy(localstripe, delay_seconds=3 * STRIPE_TIMEOUT_SECONDS) as proxy:
        async for url in _database_url(request.param, tmp):
            async with Stack.start(tmp, url, proxy.url, env=SERVER_ENV) as stack:
                proxied = Proxied(stack, proxy, tmp)
                try:
                    yield proxied
                finally:
                    stack.server.stop()  # the one running now, should a crash have replaced it


def ikey() -> str:
    return f"unknown-{uuid.uuid4().hex}"


async def succeeded_charges(stack: Stack, invoice_id: str) -> list[dict[str, Any]]:
    return [i for i in await api.intents_for(stack, invoice_id) if i["status"] == "succeeded"]


@dataclass(frozen=True)
class FirstCapture:
    """A user's invoice, and the Idempotency-Key of its first capture (with CARD)."""

    tenant: str
    token: str
    invoice: dict[str, Any]
    key: str

    @classmethod
    async def new(cls, stack: Stack) -> FirstCapture:
        tenant, token = await api.new_user(stack)
        return cls(tenant, token, await api.create_invoice(stack, token, amount="25.00"), ikey())

    async def run(self, stack: Stack) -> Answer:
        payload = api.capture_body(self.invoice, CARD)
        return await CALLS["rest"](stack, self.token, payload, api.rid(), self.key)


async def crashed_captures(proxied: Proxied, pattern: str) -> dict[str, FirstCapture]:
    """One first capture for each retry, all cut off by one crash: started together, the
    server SIGKILLed once the proxy holds all their PaymentIntent requests, and another
    server started on the same database. (Once per pattern: a restart takes seconds.)"""
    if pattern in proxied.crashed:
        return proxied.crashed[pattern]
    stack, proxy = proxied.stack, proxied.proxy
    firsts = {retry: await FirstCapture.new(stack) for retry in RETRIES}
    proxy.arm(FAULTS[pattern])
    try:
        calls = [asyncio.create_task(first.run(stack)) for first in firsts.values()]
        held = await asyncio.to_thread(proxy.wait_held, len(calls), 30)
        assert held, "the captures' PaymentIntent requests never all reached the proxy"
        os.kill(stack.server.proc.pid, signal.SIGKILL)
        stack.server.proc.wait(timeout=10)
        answers = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(a, httpx.HTTPError) for a in answers), answers
    finally:
        proxy.disarm()
    proxied.restart()
    proxied.crashed[pattern] = firsts
    return firsts


async def let_time_pass(stack: Stack, tenant: str, invoice_id: str) -> None:
    """Ten minutes later, as far as the stored rows tell: the crashed capture's hold on the
    invoice and its request's idempotency claim have stalled."""
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    async with stack.db.begin() as conn:
        await conn.execute(
            update(invoices).where(invoices.c.id == invoice_id).values(updated_at=long_ago)
        )
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.tenant_id == tenant)
            .values(created_at=long_ago)
        )


async def assert_invoice_matches_stripe(stack: Stack, token: str, invoice_id: str) -> str | None:
    """One succeeded charge and the invoice paid by it, or none and the invoice open.
    Returns the charge's id."""
    charges = await succeeded_charges(stack, invoice_id)
    assert len(charges) <= 1, [c["id"] for c in charges]
    invoice = await api.get_invoice(stack, token, invoice_id)
    if not charges:
        assert invoice["status"] == "open", invoice
        return None
    assert (invoice["status"], invoice["transactionId"]) == ("paid", charges[0]["id"]), invoice
    return str(charges[0]["id"])


@pytest.mark.parametrize("retry", list(RETRIES))
@pytest.mark.parametrize("pattern", list(FAULTS))
async def test_an_unknown_outcome_is_settled_with_one_charge(
    proxied: Proxied, pattern: str, retry: str
) -> None:
    stack, proxy, how = proxied.stack, proxied.proxy, RETRIES[retry]
    crash = pattern.startswith("crash")
    if crash:
        first = (await crashed_captures(proxied, pattern))[retry]
    else:
        first = await FirstCapture.new(stack)
        proxy.arm(FAULTS[pattern])
        try:
            answer = await first.run(stack)
        finally:
            proxy.disarm()
        assert (answer.code, answer.fields["status"]) == ("PAYMENT_IN_PROGRESS", 409), answer
        assert answer.fields["retryable"] is True
        assert "not known" in answer.fields["detail"], answer
    tenant, token, invoice = first.tenant, first.token, first.invoice

    # Stripe may have charged: the invoice stays held until specops knows.
    held = await api.get_invoice(stack, token, invoice["id"])
    assert held["status"] == "processing", held
    charged = await succeeded_charges(stack, invoice["id"])
    assert len(charged) == (0 if pattern == "crash-before-call" else 1)

    card = CARD if how.card == CARD else await api.new_card(stack)

    async def retried() -> Answer:
        payload = api.capture_body(invoice, card)
        key = first.key if how.same_key else ikey()
        return await CALLS[how.transport](stack, token, payload, api.rid(), key)

    if crash:
        # A restarted server cannot tell a crashed capture from one still running.
        early = await retried()
        assert early.code in ("PAYMENT_IN_PROGRESS", "IDEMPOTENCY_CONFLICT"), early
        assert early.fields["retryable"] is True
        await let_time_pass(stack, tenant, invoice["id"])
    answer = await retried()

    charge = await assert_invoice_matches_stripe(stack, token, invoice["id"])
    # The first capture's card, sent to Stripe again under its idempotency key, was
    # charged once (now, if its first request never got there).
    assert charge is not None
    if charged:
        assert charge == charged[0]["id"]
    if how.card == CARD:
        assert (answer.code, answer.fields.get("transactionId")) == ("OK", charge), answer
    else:
        assert answer.code == "INVOICE_ALREADY_PAID", answer
        assert charge in answer.fields["detail"], answer


async def test_a_declined_card_gives_the_invoice_back_at_once(proxied: Proxied) -> None:
    """Stripe answered, and charged nothing: the invoice is payable again, by another card."""
    stack = proxied.stack
    _, token = await api.new_user(stack)
    invoice = await api.create_invoice(stack, token, amount="25.00")
    declined = await CALLS["rest"](
        stack, token, api.capture_body(invoice, "pm_card_chargeCustomerFail"), api.rid(), None
    )
    assert declined.code == "CARD_DECLINED", declined
    assert (await api.get_invoice(stack, token, invoice["id"]))["status"] == "open"
    other_card = await api.new_card(stack)
    paid = await CALLS["rest"](stack, token, api.capture_body(invoice, other_card), api.rid(), None)
    assert paid.code == "OK", paid
    assert (
        await assert_invoice_matches_stripe(stack, token, invoice["id"])
        == (paid.fields["transactionId"])
    )
