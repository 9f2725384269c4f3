"""audit.log.AuditLog: group-committed table rows and the structlog line, on real databases."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from structlog.testing import capture_logs

from audit.log import AuditLog, log_level
from audit.record import AuditRecord
from storage.tables import audit_events


def record(**changes) -> AuditRecord:
    base = AuditRecord(
        at=time.time(),
        request_id=f"req-{uuid.uuid4().hex}",
        transport="rest",
        client="127.0.0.1",
        tenant_id="acme",
        actor_id="alice",
        actor_kind="user",
        credential_id="abcdefghijkl",
        operation_key="billing.capturePayment",
        operation_version="1.0.0",
        decision="allow",
        outcome="OK",
        status=200,
        latency_ms=12.5,
        idempotency_key="idem-1",
        replayed=False,
        input_digest="0" * 64,
        detail=None,
    )
    return replace(base, **changes)


async def stored(database, request_id: str | None = None) -> list[dict[str, Any]]:
    query = select(audit_events).order_by(audit_events.c.id)
    if request_id is not None:
        query = query.where(audit_events.c.request_id == request_id)
    async with database.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def count(database) -> int:
    async with database.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
        )


@pytest.fixture
async def audit(database):
    log = AuditLog(database)
    try:
        yield log
    finally:
        await log.close()


async def test_a_durable_write_is_stored_when_it_returns(audit, database) -> None:
    rec = record(detail="Payment captured", replayed=True)
    await audit.write(rec, durable=True)
    rows = await stored(database, rec.request_id)
    assert len(rows) == 1
    row = rows[0]
    for name, value in rec.as_dict().items():
        if name == "at":
            at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC)
            assert at.timestamp() == pytest.approx(rec.at, abs=1e-3)
        else:
            assert row[name] == value, name


async def test_a_non_durable_write_is_stored_by_close(audit, database) -> None:
    rec = record(outcome="FORBIDDEN", status=403, decision="deny")
    assert await audit.write(rec, durable=False) is None
    await audit.close()
    rows = await stored(database, rec.request_id)
    assert [(r["outcome"], r["status"], r["decision"]) for r in rows] == [
        ("FORBIDDEN", 403, "deny")
    ]


async def test_writes_after_close_start_a_new_writer(audit, database) -> None:
    await audit.write(record(), durable=True)
    await audit.close()
    await audit.write(record(), durable=True)
    await audit.write(record(), durable=False)
    await audit.close()
    assert await count(database) == 3


async def test_close_without_writes_is_harmless(audit) -> None:
    await audit.close()
    await audit.close()


async def test_many_concurrent_durable_writes_share_few_commits(audit, database) -> None:
    commits = []
    event.listen(database.engine.sync_engine, "commit", lambda conn: commits.append(1))
    records = [record(request_id=f"bulk-{i:04d}") for i in range(200)]
    results = await asyncio.gather(*(audit.write(r, durable=True) for r in records))
    assert results == [None] * 200
    assert await count(database) == 200  # every row is there before close()
    rows = await stored(database)
    assert sorted(r["request_id"] for r in rows) == [r.request_id for r in records]
    assert 1 <= len(commits) <= 5, len(commits)


async def test_batches_are_capped_by_max_batch(database) -> None:
    audit = AuditLog(database, max_batch=7)
    commits = []
    event.listen(database.engine.sync_engine, "commit", lambda conn: commits.append(1))
    try:
        await asyncio.gather(*(audit.write(record(), durable=True) for _ in range(50)))
    finally:
        await audit.close()
    assert await count(database) == 50
    assert len(commits) >= 8  # ceil(50 / 7)


async def test_a_failed_store_fails_durable_writes(audit, database) -> None:
    broken = record(operation_key=None)  # NOT NULL in the table
    with pytest.raises(IntegrityError):
        await audit.write(broken, durable=True)
    ok = record()
    await audit.write(ok, durable=True)  # the writer survives a failed batch
    assert len(await stored(database, ok.request_id)) == 1


def test_log_levels_follow_the_status() -> None:
    assert [log_level(s) for s in (200, 404, 422, 401, 403, 429, 500, 503)] == [
        logging.INFO, logging.INFO, logging.INFO,
        logging.WARNING, logging.WARNING, logging.WARNING,
        logging.ERROR, logging.ERROR,
    ]  # fmt: skip


@pytest.mark.parametrize(("status", "level"), [(403, "warning"), (503, "error")])
async def test_the_log_line_carries_the_record(audit, status: int, level: str) -> None:
    rec = record(status=status, outcome="SOMETHING", credential_id="abcdefghijkl")
    with capture_logs() as logs:
        await audit.write(rec, durable=False)
    lines = [e for e in logs if e.get("event") == "invocation"]
    assert len(lines) == 1
    line = lines[0]
    assert line["log_level"] == level
    expected = rec.as_dict()
    del expected["at"]
    assert {k: v for k, v in line.items() if k not in ("event", "log_level")} == expected
