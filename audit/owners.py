"""This process' row in ``audit_owners`` (its lease, renewed by a heartbeat while it
has stored attempts), and the sweep that records the attempts of processes that are
gone as ``INTERRUPTED`` (``audit.attempts``)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable

import structlog
from sqlalchemy import select

from audit import sql_store
from audit.attempts import HEARTBEAT_SECONDS, Process, is_gone
from registry.audit_record import AuditRecord
from storage.database import Database
from storage.tables import audit_attempts, audit_owners
from storage.times import EncodeTime, naive_utc, timestamp_text, utc_now

log = structlog.get_logger("specops.audit")


class OwnerLease:
    """This process, as ``audit_owners`` names it once it stores an attempt, and the ids
    of its attempts."""

    def __init__(self, db: Database, process: Process) -> None:
        self.db = db
        self.process = process
        self.id = secrets.token_hex(16)
        self._attempts = 0
        self._renewed_at: float | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    def next_attempt(self) -> str:
        """A new attempt's id: this process' id and a counter."""
        self._attempts += 1
        return f"{self.id}.{self._attempts}"

    def due(self) -> bool:
        """Whether a batch with attempts should store this process' row (new or old)."""
        renewed = self._renewed_at
        return renewed is None or time.monotonic() - renewed >= HEARTBEAT_SECONDS / 2

    def row(self, encode_at: EncodeTime) -> tuple[object, ...]:
        now = encode_at(timestamp_text(time.time()))
        process = self.process
        return (self.id, process.host, process.pid, process.started, now, now)

    def stored(self) -> None:
        """A batch with attempts committed (and this process' row with the first): renew
        the row every ``HEARTBEAT_SECONDS`` from now on, attempts or not."""
        if self._renewed_at is None:
            self._heartbeat = asyncio.create_task(self._renew(), name="audit-heartbeat")
        self._renewed_at = time.monotonic()

    async def _renew(self) -> None:
        """Keep this process' row fresh, so that other hosts do not take it for gone."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if not self.due():
                continue
            try:
                async with self.db.begin() as conn:
                    row = self.row(sql_store.encoder(conn))
                    await sql_store.renew_owner(conn, row)
                self._renewed_at = time.monotonic()
            except Exception as exc:
                log.warning("audit_heartbeat_failed", error=type(exc).__name__)

    async def close(self) -> None:
        """Stop the heartbeat; the next stored attempt stores the row again."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
            self._renewed_at = None


async def close_interrupted(
    db: Database, lease: OwnerLease, log_line: Callable[[AuditRecord], None]
) -> int:
    """Record the attempts of processes that are gone as ``INTERRUPTED`` (chained like
    any record), deleting them and their processes' rows in the same transaction, and
    pass each record to ``log_line``; returns how many. Processes starting together each
    record a different share."""
    now = utc_now()
    async with db.connect() as conn:
        owners = (await conn.execute(select(audit_owners))).mappings().all()
        with_attempts = set(
            (await conn.execute(select(audit_attempts.c.owner).distinct())).scalars()
        )
    alive = {
        row["id"]
        for row in owners
        if row["id"] == lease.id
        or not is_gone(
            Process(row["host"], row["pid"], row["pid_started"]),
            naive_utc(row["heartbeat_at"]),
            now,
            lease.process,
        )
    }
    gone = sorted(({row["id"] for row in owners} | with_attempts) - alive)
    closed = 0
    while gone:
        async with db.begin() as conn:
            records, more = await sql_store.close_attempts_of(conn, gone)
        closed += len(records)
        for record in records:
            log_line(record)
        if not more:
            break
    if closed:
        log.warning("audit_attempts_interrupted", count=closed, processes=len(gone))
    return closed


__all__ = ["OwnerLease", "close_interrupted"]
