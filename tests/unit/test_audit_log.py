"""audit.log.AuditLog: group-committed, hash-chained table rows and the structlog line, on
real databases; and what it does while the store is unavailable."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from dataclasses import replace
from datetime import UTC
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from structlog.testing import capture_logs

from audit.log import AuditLog, log_level
from audit.sqlite_appender import bind_common_values_directly
from audit.verify import verify_chain
from registry.audit_record import AuditRecord
from registry.ports import AuditUnavailable
from storage.database import Database
from storage.tables import audit_events
from tests.support.processes import free_port
from tests.support.waiting import eventually


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
        trace_id=uuid.uuid4().hex,
        input='{"invoiceId":"inv_1","card":"[REDACTED]"}',
    )
    return replace(base, **changes)


async def stored(database, request_id: str | None = None) -> list[dict[str, Any]]:
    query = select(audit_events).order_by(audit_events.c.seq)
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
    assert (row["seq"], row["prev_hash"]) == (1, "0" * 64)
    assert len(row["hash"]) == 64


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
    before = audit.commits
    records = [record(request_id=f"bulk-{i:04d}") for i in range(200)]
    results = await asyncio.gather(*(audit.write(r, durable=True) for r in records))
    assert results == [None] * 200
    assert await count(database) == 200  # every row is there before close()
    rows = await stored(database)
    assert sorted(r["request_id"] for r in rows) == [r.request_id for r in records]
    assert 1 <= audit.commits - before <= 5, audit.commits - before


async def test_batches_are_capped_by_max_batch(database) -> None:
    audit = AuditLog(database, max_batch=7)
    before = audit.commits
    try:
        await asyncio.gather(*(audit.write(record(), durable=True) for _ in range(50)))
    finally:
        await audit.close()
    assert await count(database) == 50
    assert audit.commits - before >= 8  # ceil(50 / 7)


async def test_a_record_the_database_refuses_fails_only_its_durable_write(audit, database) -> None:
    broken = record(operation_key=None)  # NOT NULL in the table
    with pytest.raises((IntegrityError, sqlite3.IntegrityError)):  # SQLAlchemy's or sqlite3's
        await audit.write(broken, durable=True)
    ok = record()
    await audit.write(ok, durable=True)  # the writer survives a failed batch
    assert len(await stored(database, ok.request_id)) == 1
    assert await audit.available()
    assert (await verify_chain(database)).ok


async def test_a_bad_record_in_a_batch_costs_only_itself(database) -> None:
    audit = AuditLog(database, flush_seconds=0.2)
    good = [record(request_id=f"good-{i}") for i in range(10)]
    with capture_logs() as logs:
        for rec in good[:5]:
            await audit.write(rec, durable=False)
        await audit.write(record(operation_key=None), durable=False)
        await audit.write(record(latency_ms="slow"), durable=False)  # fails to encode
        for rec in good[5:]:
            await audit.write(rec, durable=False)
        await audit.close()
    rows = await stored(database)
    assert [r["request_id"] for r in rows] == [r.request_id for r in good]
    assert [r["seq"] for r in rows] == list(range(1, 11))  # no gap for the refused ones
    assert len([e for e in logs if e["event"] == "audit_record_rejected"]) == 2
    assert (await verify_chain(database)).ok


async def test_rows_form_a_chain_across_batches(database) -> None:
    audit = AuditLog(database, max_batch=7)
    try:
        await asyncio.gather(*(audit.write(record(), durable=i % 3 == 0) for i in range(60)))
    finally:
        await audit.close()
    rows = await stored(database)
    assert [r["seq"] for r in rows] == list(range(1, 61))
    assert rows[0]["prev_hash"] == "0" * 64
    assert all(r["prev_hash"] == p["hash"] for p, r in pairwise(rows))
    report = await verify_chain(database)
    assert report.ok and report.checked == 60, report


async def test_nulls_and_booleans_are_stored_as_they_were(audit, database) -> None:
    records = [
        record(replayed=True, detail=None, idempotency_key=None, client=None),
        record(replayed=False, detail="refused", tenant_id=None, input=None),
    ]
    for rec in records:
        await audit.write(rec, durable=True)
    first, second = [await stored(database, rec.request_id) for rec in records]
    assert first[0]["replayed"] is True
    assert (first[0]["detail"], first[0]["idempotency_key"], first[0]["client"]) == (None,) * 3
    assert second[0]["replayed"] is False
    assert (second[0]["tenant_id"], second[0]["input"]) == (None, None)
    assert second[0]["detail"] == "refused"
    report = await verify_chain(database)
    assert report.ok and report.checked == 2, report


def test_the_sqlite_driver_binds_none_and_booleans_as_before() -> None:
    bind_common_values_directly()
    bind_common_values_directly()  # idempotent
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (a, b, c, d)")
        conn.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (None, True, False, 7))
        row = conn.execute("SELECT a, b, c, d, typeof(a), typeof(b), typeof(c) FROM t").fetchone()
    finally:
        conn.close()
    assert row == (None, 1, 0, 7, "null", "integer", "integer")


async def test_a_late_record_keeps_its_own_time(audit, database) -> None:
    at = time.time() - 3600.0000004
    rec = record(at=at)
    await audit.write(rec, durable=True)
    (row,) = await stored(database, rec.request_id)
    stored_at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC)
    assert stored_at.timestamp() == pytest.approx(at, abs=1e-6)


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


# -- when the store is unavailable -------------------------------------------------------------


async def rename_events_table(database, old: str, new: str) -> None:
    """From a connection of its own: the audit table disappears (or comes back)."""
    async with database.begin() as conn:
        await conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")


async def wait_available(audit: AuditLog, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await audit.available():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_records_wait_out_an_outage_and_are_stored_once(database) -> None:
    audit = AuditLog(database, durable_timeout_seconds=0.5, flush_seconds=0.01)
    try:
        before = record(request_id="before")
        await audit.write(before, durable=True)
        assert await audit.available()

        await rename_events_table(database, "audit_events", "audit_events_away")
        kept = [record(request_id=f"kept-{i}") for i in range(5)]
        with capture_logs() as logs:
            for rec in kept:
                await audit.write(rec, durable=False)
            timed_out = record(request_id="timed-out")
            started = time.monotonic()
            with pytest.raises(AuditUnavailable, match="timed-out"):
                await audit.write(timed_out, durable=True)
            assert time.monotonic() - started < 1.5
            assert await audit.available() is False
            assert await audit.available() is False  # answered from the last look
        assert any(e["event"] == "audit_store_unavailable" for e in logs)
        assert not any(e["event"] == "audit_record_rejected" for e in logs)

        await rename_events_table(database, "audit_events_away", "audit_events")
        assert await wait_available(audit)
        after = record(request_id="after")
        await audit.write(after, durable=True)
    finally:
        await audit.close()

    rows = await stored(database)
    expected = ["before", *(r.request_id for r in kept), "timed-out", "after"]
    assert [r["request_id"] for r in rows] == expected  # each once, in order
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    (late,) = await stored(database, "timed-out")
    late_at = late["at"] if late["at"].tzinfo else late["at"].replace(tzinfo=UTC)
    assert late_at.timestamp() == pytest.approx(timed_out.at, abs=1e-6)  # its own time
    assert (await verify_chain(database)).ok


async def test_a_waiting_write_returns_once_its_record_is_stored(audit, database) -> None:
    rec = record(outcome="FORBIDDEN", status=403, decision="deny")
    assert await audit.write(rec, durable=False, wait=True) is None
    assert [r["outcome"] for r in await stored(database, rec.request_id)] == ["FORBIDDEN"]


async def test_a_waiting_write_of_a_refused_record_does_not_fail_its_caller(
    audit, database
) -> None:
    with capture_logs() as logs:
        await audit.write(record(operation_key=None), durable=False, wait=True)  # NOT NULL
    assert [e["event"] for e in logs].count("audit_record_rejected") == 1
    ok = record()
    await audit.write(ok, durable=False, wait=True)
    assert len(await stored(database, ok.request_id)) == 1


async def test_a_waiting_write_goes_on_when_the_store_fails_and_its_record_is_kept(
    database,
) -> None:
    audit = AuditLog(database, durable_timeout_seconds=10)
    try:
        await audit.write(record(request_id="before"), durable=True)
        await rename_events_table(database, "audit_events", "audit_events_away")
        with capture_logs():
            started = time.monotonic()
            await audit.write(record(request_id="during"), durable=False, wait=True)
            assert time.monotonic() - started < 3  # the failed attempt, not the timeout
            started = time.monotonic()
            await audit.write(record(request_id="known-down"), durable=False, wait=True)
            assert time.monotonic() - started < 0.5  # a store known down is not waited for
            assert await audit.available() is False
        await rename_events_table(database, "audit_events_away", "audit_events")
        assert await wait_available(audit)
        await audit.write(record(request_id="after"), durable=True)
    finally:
        await audit.close()
    rows = await stored(database)
    assert [r["request_id"] for r in rows] == ["before", "during", "known-down", "after"]
    assert (await verify_chain(database)).ok


async def test_an_unreachable_database_queues_records_and_close_counts_the_lost() -> None:
    db = Database(f"postgresql://specops@127.0.0.1:{free_port()}/nowhere")
    audit = AuditLog(db, durable_timeout_seconds=0.3, close_seconds=0.3)
    try:
        with capture_logs() as logs:
            await audit.write(record(), durable=False)
            with pytest.raises(AuditUnavailable):
                await audit.write(record(), durable=True)
            assert await audit.available() is False
            await audit.close()
        lost = [e for e in logs if e["event"] == "audit_records_lost"]
        assert [e["count"] for e in lost] == [2]
        assert lost[0]["log_level"] == "error"
    finally:
        await audit.close()
        await db.dispose()


async def test_a_full_queue_refuses_records_and_says_so() -> None:
    db = Database(f"postgresql://specops@127.0.0.1:{free_port()}/nowhere")
    audit = AuditLog(db, max_queued=3, durable_timeout_seconds=0.2, close_seconds=0.1)
    try:
        with capture_logs() as logs:
            for _ in range(3):
                await audit.write(record(status=403), durable=False)
            await audit.write(
                record(status=403), durable=False
            )  # dropped: only its log line remains
            with pytest.raises(AuditUnavailable, match="full"):
                await audit.write(record(status=403), durable=True)
            await audit.close()
        events = [e["event"] for e in logs]
        assert events.count("invocation") == 5
        assert "audit_queue_full" in events
        assert [e["count"] for e in logs if e["event"] == "audit_records_dropped"] == [2]
    finally:
        await audit.close()
        await db.dispose()


async def test_a_nul_in_caller_text_does_not_cost_the_record(audit, database) -> None:
    """PostgreSQL refuses NUL in text: such a record is kept, with U+FFFD in its place."""
    odd = record(operation_key="nothing\x00here", detail="No operation nothing\x00here")
    await audit.write(odd, durable=True)
    [row] = await stored(database, odd.request_id)
    assert (row["operation_key"], row["detail"]) == (
        "nothing\ufffdhere",
        "No operation nothing\ufffdhere",
    )
    assert (await verify_chain(database)).ok


async def test_on_sqlite_writers_of_one_process_queue_instead_of_meeting_the_busy_handler(
    database,
) -> None:
    """Application transactions (``Database.begin``) and the audit writer's batches take
    turns on ``write_lock``: a record written while a transaction is open is stored once
    it closes, and no transaction overlaps another."""
    if database.write_lock is None:
        pytest.skip("only SQLite has a single writer")
    audit = AuditLog(database, flush_seconds=0.01)
    spans: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()

    async def transaction() -> None:
        async with database.begin() as conn:
            start = loop.time()
            await conn.exec_driver_sql("SELECT 1")
            await asyncio.sleep(0.02)
            spans.append((start, loop.time()))

    try:
        async with database.begin():
            write = asyncio.create_task(audit.write(record(request_id="req-locked"), durable=True))
            await asyncio.sleep(0.05)
            assert not write.done()  # the batch waits for this transaction
        await asyncio.wait_for(write, 5)
        assert [row["request_id"] for row in await stored(database, "req-locked")] == ["req-locked"]
        await asyncio.gather(*(transaction() for _ in range(5)))
        spans.sort()
        assert all(end <= later_start for (_, end), (later_start, _) in pairwise(spans))
    finally:
        await audit.close()


async def test_a_busy_server_does_not_wait_out_the_flush_window_per_batch(database) -> None:
    """Records nobody waits for are gathered for up to ``flush_seconds``, but a queue that
    already holds a whole batch is written at once: otherwise a server answering more
    than ``max_batch / flush_seconds`` calls a second falls ever further behind."""
    audit = AuditLog(database, max_batch=10, flush_seconds=30)
    try:
        for _ in range(25):
            await audit.write(record(), durable=False)

        async def twenty_stored() -> bool:
            return await count(database) >= 20

        await eventually(twenty_stored, within=10)
        assert await count(database) == 20  # two whole batches; five wait for more
    finally:
        await audit.close()
    assert await count(database) == 25


async def test_on_sqlite_a_batch_locked_by_another_process_is_written_once_it_lets_go(
    database,
) -> None:
    """The event loop never waits for SQLite's lock: when another connection (another
    process) holds it, the batch goes to the appender's thread, which waits for it."""
    if not database.is_sqlite:
        pytest.skip("SQLite's file lock")
    audit = AuditLog(database)
    appender = audit._sqlite
    assert appender is not None
    other = sqlite3.connect(appender.path, isolation_level=None)
    try:
        await audit.write(record(), durable=True)  # opens the event loop's connection
        other.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        started = loop.time()
        write = asyncio.create_task(audit.write(record(request_id="req-busy"), durable=True))
        await asyncio.sleep(0.2)
        assert not write.done()
        assert loop.time() - started < 0.5  # the loop itself was never held up
        assert appender.deferred == 1
        other.execute("COMMIT")
        await asyncio.wait_for(write, 5)
        assert [r["request_id"] for r in await stored(database, "req-busy")] == ["req-busy"]
        assert (await verify_chain(database)).ok
    finally:
        other.close()
        await audit.close()


async def test_on_sqlite_the_wal_is_checkpointed_off_the_event_loop(
    database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database.is_sqlite:
        pytest.skip("SQLite's write-ahead log")
    checkpoints = database.checkpoints
    assert checkpoints is not None
    monkeypatch.setattr(checkpoints, "every", 10)
    audit = AuditLog(database, max_batch=5)
    try:
        await asyncio.gather(*(audit.write(record(), durable=True) for _ in range(30)))

        async def checkpointed() -> bool:
            return bool(checkpoints.done >= 1)

        await eventually(checkpointed, within=5)
    finally:
        await audit.close()
    assert await count(database) == 30
