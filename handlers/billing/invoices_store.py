"""Invoice rows, always read and written within one tenant."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update

from registry.fields import as_utc
from registry.money import to_major
from specs.billing.models import Invoice, InvoiceStatus
from storage import cursors
from storage.database import Database
from storage.tables import invoices as t

_INSERT = t.insert()


def _utc(value: datetime | None) -> datetime | None:
    """A stored time, or None, in UTC (SQLite hands back naive ones: UTC already)."""
    return None if value is None else as_utc(value)


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    id: str
    tenant_id: str
    owner_id: str
    amount_minor: int
    currency: str
    status: InvoiceStatus
    description: str | None
    transaction_id: str | None
    paid_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> InvoiceRow:
        return cls(
            row["id"], row["tenant_id"], row["owner_id"], row["amount_minor"], row["currency"],
            InvoiceStatus(row["status"]), row["description"], row["transaction_id"],
            _utc(row["paid_at"]), _utc(row["created_at"]) or datetime.now(UTC),
        )  # fmt: skip

    def view(self) -> Invoice:
        return Invoice(
            id=self.id,
            owner_id=self.owner_id,
            amount=to_major(self.amount_minor, self.currency),
            amount_minor=self.amount_minor,
            currency=self.currency,
            status=self.status,
            description=self.description,
            transaction_id=self.transaction_id,
            paid_at=self.paid_at,
            created_at=self.created_at,
        )


@dataclass(frozen=True, slots=True)
class CaptureHold:
    """The capture holding a processing invoice: its Stripe idempotency key, and the
    payment method its request sends (None for a hold taken before migration 0005)."""

    key: str
    method: str | None


class InvoiceStore:
    """Tenant-scoped access to the ``invoices`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        tenant_id: str,
        owner_id: str,
        amount_minor: int,
        currency: str,
        description: str | None,
    ) -> InvoiceRow:
        now = datetime.now(UTC)
        row = InvoiceRow(
            id=f"inv_{secrets.token_hex(12)}",
            tenant_id=tenant_id,
            owner_id=owner_id,
            amount_minor=amount_minor,
            currency=currency,
            status=InvoiceStatus.OPEN,
            description=description,
            transaction_id=None,
            paid_at=None,
            created_at=now,
        )
        async with self.db.begin() as conn:
            await conn.execute(  # one statement, compiled once; the values are parameters
                _INSERT,
                {
                    "id": row.id,
                    "tenant_id": tenant_id,
                    "owner_id": owner_id,
                    "amount_minor": amount_minor,
                    "currency": currency,
                    "description": description,
                    "status": row.status.value,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        return row

    async def get(self, tenant_id: str, invoice_id: str) -> InvoiceRow | None:
        async with self.db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(t).where(t.c.tenant_id == tenant_id, t.c.id == invoice_id)
                    )
                )
                .mappings()
                .first()
            )
        return InvoiceRow.of(row) if row else None

    async def page(
        self,
        tenant_id: str,
        *,
        owner_id: str | None,
        status: InvoiceStatus | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> tuple[list[InvoiceRow], bool]:
        """Newest first; returns the rows and whether more follow."""
        query = select(t).where(t.c.tenant_id == tenant_id)
        if owner_id is not None:
            query = query.where(t.c.owner_id == owner_id)
        if status is not None:
            query = query.where(t.c.status == status.value)
        query = cursors.keyset_page(query, t.c.created_at, t.c.id, after, limit, newest_first=True)
        async with self.db.connect() as conn:
            rows = [InvoiceRow.of(r) for r in (await conn.execute(query)).mappings().all()]
        return cursors.split(rows, limit)

    async def start_capture(
        self,
        tenant_id: str,
        invoice_id: str,
        capture_key: str,
        method: str,
        *,
        stalled_before: datetime,
    ) -> CaptureHold | None:
        """Hold the invoice for the capture ``capture_key`` (its Stripe idempotency key)
        paying with ``method``, atomically: an open invoice moves to processing. A
        processing invoice is taken over when its capture's outcome is unknown, or when it
        has not moved since ``stalled_before`` (its process crashed).

        Returns the hold the caller now has: its own, or the earlier capture's when it
        took that over (whose request must go to Stripe again before anything else). None
        when a capture still under way holds it, or it is neither open nor processing."""
        now = datetime.now(UTC)
        this = (t.c.tenant_id == tenant_id) & (t.c.id == invoice_id)
        async with self.db.begin() as conn:
            opened = await conn.execute(
                update(t)
                .where(this, t.c.status == InvoiceStatus.OPEN.value)
                .values(
                    status=InvoiceStatus.PROCESSING.value,
                    capture_key=capture_key,
                    capture_method=method,
                    capture_outcome_unknown=False,
                    updated_at=now,
                )
            )
            if opened.rowcount:
                return CaptureHold(capture_key, method)
            row = (
                await conn.execute(
                    select(t.c.status, t.c.capture_key, t.c.capture_method).where(this)
                )
            ).first()
            if row is None or row.status != InvoiceStatus.PROCESSING.value or not row.capture_key:
                return None
            taken = await conn.execute(
                update(t)
                .where(
                    this,
                    t.c.status == InvoiceStatus.PROCESSING.value,
                    t.c.capture_key == row.capture_key,
                    or_(t.c.capture_outcome_unknown.is_(True), t.c.updated_at < stalled_before),
                )
                .values(capture_outcome_unknown=False, updated_at=now)
            )
        return CaptureHold(row.capture_key, row.capture_method) if taken.rowcount else None

    async def outcome_unknown(self, tenant_id: str, invoice_id: str, capture_key: str) -> bool:
        """Mark the invoice's capture ``capture_key`` as ended without Stripe's answer: the
        invoice stays held, and the next capture may take it over at once."""
        return await self._update_hold(
            tenant_id, invoice_id, capture_key, {"capture_outcome_unknown": True}
        )

    async def release(self, tenant_id: str, invoice_id: str, capture_key: str) -> bool:
        """Give the invoice held by the capture ``capture_key`` back (open): Stripe charged
        nothing. False if another capture holds it, or none."""
        return await self._update_hold(
            tenant_id,
            invoice_id,
            capture_key,
            {
                "status": InvoiceStatus.OPEN.value,
                "capture_method": None,
                "capture_outcome_unknown": False,
            },
        )

    async def _update_hold(
        self, tenant_id: str, invoice_id: str, capture_key: str, values: dict[str, Any]
    ) -> bool:
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(t)
                .where(
                    t.c.tenant_id == tenant_id,
                    t.c.id == invoice_id,
                    t.c.status == InvoiceStatus.PROCESSING.value,
                    t.c.capture_key == capture_key,
                )
                .values(**values, updated_at=datetime.now(UTC))
            )
        return bool(result.rowcount)

    async def transition(
        self,
        tenant_id: str,
        invoice_id: str,
        *,
        from_status: InvoiceStatus | tuple[InvoiceStatus, ...],
        to_status: InvoiceStatus,
        transaction_id: str | None = None,
    ) -> bool:
        """Move an invoice between states atomically; False if it was not in ``from_status``
        (one state, or any of several)."""
        sources = from_status if isinstance(from_status, tuple) else (from_status,)
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": to_status.value, "updated_at": now}
        if transaction_id is not None:
            values["transaction_id"] = transaction_id
        if to_status is InvoiceStatus.PAID:
            values["paid_at"] = now
        if to_status is not InvoiceStatus.PROCESSING:
            values.update(capture_method=None, capture_outcome_unknown=False)
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(t)
                .where(
                    t.c.tenant_id == tenant_id,
                    t.c.id == invoice_id,
                    t.c.status.in_([source.value for source in sources]),
                )
                .values(**values)
            )
        return bool(result.rowcount)
