"""The invoice store's state changes on SQLite and PostgreSQL: atomic, tenant-scoped, and
the capture lock that a retry of the same capture may take over once it stalled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handlers.billing.invoices_store import InvoiceStore
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
    assert not await store.start_capture("other", invoice, "k1", stalled_before=soon)
    assert await store.start_capture("acme", invoice, "k1", stalled_before=soon)
    assert await status_of(store, invoice) is PROCESSING
    # neither the same capture nor another may take it while it has not stalled
    assert not await store.start_capture("acme", invoice, "k1", stalled_before=soon)
    assert not await store.start_capture("acme", invoice, "k2", stalled_before=soon)


async def test_only_the_same_capture_takes_over_a_stalled_invoice(database: Database) -> None:
    store = InvoiceStore(database)
    invoice = await new_invoice(store)
    assert await store.start_capture("acme", invoice, "k1", stalled_before=datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(seconds=1)  # as if a minute had passed
    assert not await store.start_capture("acme", invoice, "k2", stalled_before=later)
    assert not await store.start_capture("other", invoice, "k1", stalled_before=later)
    assert await store.start_capture("acme", invoice, "k1", stalled_before=later)
    # taking it over moved it: it has not stalled any more
    a_minute_ago = datetime.now(UTC) - timedelta(seconds=60)
    assert not await store.start_capture("acme", invoice, "k1", stalled_before=a_minute_ago)
    assert await store.transition("acme", invoice, from_status=PROCESSING, to_status=PAID)
    assert not await store.start_capture("acme", invoice, "k1", stalled_before=later)
