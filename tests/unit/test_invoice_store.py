"""The invoice store's state changes on SQLite and PostgreSQL: atomic, tenant-scoped, and
the capture lock that a retry of the same capture may take over once it stalled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handlers.billing.invoices_store import CaptureHold, InvoiceStore
from specs.billing.models import InvoiceStatus
from storage.database import Database

OPEN, PROCESSING, PAID = InvoiceStatus.OPEN, InvoiceStatus.PROCESSING, InvoiceStatus.PAID


async def new_invoice(store: InvoiceStore, tenant: str = "acme") -> str:
    row = await store.create(
        tenant_id=tenant, owner_id="alice", amount_minor=1250, currency="usd", description=None
    )
    return row.id


async def status_of(store: InvoiceStore, invoice_id: str, tenant: str = "acme") -> InvoiceStatus:
    row = await store.get(tenant, invoice_id)
    assert row is not None
    return row.status


async def test_a_transition_from_any_of_several_states(database: Database) -> None:
    store = InvoiceStore(database)
    invoice = await new_invoice(store)
    assert not await store.transition("acme", invoice, from_status=PROCESSING, to_status=PAID)
    assert await store.transition(
        "acme", invoice, from_status=(PROCESSING, OPEN), to_status=PAID, transaction_id="pi_1"
    )
    row = await store.get("acme", invoice)
    assert row is not None and (row.status, row.transaction_id) == (PAID, "pi_1")
    assert row.paid_at is not None
    assert not await store.transition(
        "acme", invoice, from_status=(PROCESSING, OPEN), to_status=PAID
    )
    assert not await store.transition("other", invoice, from_status=PAID, to_status=OPEN)


async def test_a_capture_holds_an_open_invoice_once(database: Database) -> None:
    store = InvoiceStore(database)
    invoice = await new_invoice(store)
    soon = datetime.now(UTC) - timedelta(seconds=60)
    assert await store.start_capture("other", invoice, "k1", "pm_1", stalled_before=soon) is None
    hold = await store.start_capture("acme", invoice, "k1", "pm_1", stalled_before=soon)
    assert hold == CaptureHold("k1", "pm_1")
    assert await status_of(store, invoice) is PROCESSING
    # neither the same capture nor another may take it while it has not stalled
    assert await store.start_capture("acme", invoice, "k1", "pm_1", stalled_before=soon) is None
    assert await store.start_capture("acme", invoice, "k2", "pm_2", stalled_before=soon) is None


async def test_a_stalled_capture_is_taken_over_with_its_own_request(database: Database) -> None:
    """Whoever takes a stalled hold over gets the earlier capture's key and payment
    method, to send Stripe that request again before anything else."""
    store = InvoiceStore(database)
    invoice = await new_invoice(store)
    assert await store.start_capture(
        "acme", invoice, "k1", "pm_1", stalled_before=datetime.now(UTC)
    )
    later = datetime.now(UTC) + timedelta(seconds=1)  # as if a minute had passed
    assert await store.start_capture("other", invoice, "k1", "pm_1", stalled_before=later) is None
    taken = await store.start_capture("acme", invoice, "k2", "pm_2", stalled_before=later)
    assert taken == CaptureHold("k1", "pm_1")
    # taking it over moved it: it has not stalled any more, for the same capture either
    a_minute_ago = datetime.now(UTC) - timedelta(seconds=60)
    for key, method in (("k1", "pm_1"), ("k2", "pm_2")):
        assert (
            await store.start_capture("acme", invoice, key, method, stalled_before=a_minute_ago)
            is None
        )
    assert await store.transition("acme", invoice, from_status=PROCESSING, to_status=PAID)
    assert await store.start_capture("acme", invoice, "k1", "pm_1", stalled_before=later) is None


async def test_a_capture_whose_outcome_is_unknown_may_be_taken_over_at_once(
    database: Database,
) -> None:
    store = InvoiceStore(database)
    invoice = await new_invoice(store)
    a_minute_ago = datetime.now(UTC) - timedelta(seconds=60)
    assert await store.start_capture("acme", invoice, "k1", "pm_1", stalled_before=a_minute_ago)
    assert not await store.outcome_unknown("acme", invoice, "k2")  # not its hold
    assert not await store.outcome_unknown("other", invoice, "k1")
    assert await store.outcome_unknown("acme", invoice, "k1")
    assert await status_of(store, invoice) is PROCESSING  # still held: it may have charged
    taken = await store.start_capture("acme", invoice, "k2", "pm_2", stalled_before=a_minute_ago)
    assert taken == CaptureHold("k1", "pm_1")
    # once taken over it is under way again, unknown no more
    assert (
        await store.start_capture("acme", invoice, "k2", "pm_2", stalled_before=a_minute_ago)
        is None
    )


async def test_only_its_own_capture_gives_an_invoice_back(database: Database) -> None:
    store = InvoiceStore(database)
    invoice = await new_invoice(store)
    a_minute_ago = datetime.now(UTC) - timedelta(seconds=60)
    assert await store.start_capture("acme", invoice, "k1", "pm_1", stalled_before=a_minute_ago)
    assert not await store.release("acme", invoice, "k2")
    assert not await store.release("other", invoice, "k1")
    assert await status_of(store, invoice) is PROCESSING
    assert await store.release("acme", invoice, "k1")
    assert await status_of(store, invoice) is OPEN
    assert not await store.release("acme", invoice, "k1")  # not held any more
    hold = await store.start_capture("acme", invoice, "k2", "pm_2", stalled_before=a_minute_ago)
    assert hold == CaptureHold("k2", "pm_2")
    # a late answer to the first capture cannot give the second one's hold away
    assert not await store.release("acme", invoice, "k1")
    assert await status_of(store, invoice) is PROCESSING
