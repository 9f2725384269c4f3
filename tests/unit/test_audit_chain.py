"""audit.chain and the chain on real databases: the canonical encoding is the same for a
record as written and as read back from SQLite and PostgreSQL; several writers (two
AuditLogs, another process) form one gapless chain; migration 0003 chains the rows a
database already had."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from audit.chain import (
    CONTENT_COLUMNS,
    GENESIS,
    canonical,
    chain_hash,
    record_content,
    row_content,
)
from audit.export import export_record, row_of_export
from audit.log import AuditLog
from audit.verify import verify_chain, verify_records
from registry.audit_record import AuditRecord
from storage import migrate
from storage.database import Database
from storage.tables import audit_chain_head, audit_events
from storage.times import timestamp_text
from tests.support.processes import ROOT

FIXED = AuditRecord(
    at=1_700_000_000.1234567,
    request_id="req-1",
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
    policy_rule="p, user, acme, invoice, pay, allow",
    trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    input='{"invoiceId":"inv_1","card":"[REDACTED]"}',
)


def record(**changes: Any) -> AuditRecord:
    fresh: dict[str, Any] = {"at": time.time(), "request_id": f"req-{uuid.uuid4().hex}"}
    return replace(FIXED, **{**fresh, **changes})


async def rows_by_seq(db: Database) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        result = await conn.execute(select(audit_events).order_by(audit_events.c.seq))
        return [dict(r) for r in result.mappings().all()]


# -- the encoding -----------------------------------------------------------------------------


def test_the_encoding_is_frozen() -> None:
    """Changing the encoding changes every stored hash: this golden value must not move."""
    content = record_content(FIXED)
    assert canonical(7, content) == (
        b'[7,"2023-11-14T22:13:20.123457Z","req-1","rest","127.0.0.1","acme","alice","user",'
        b'"abcdefghijkl","billing.capturePayment","1.0.0","allow","OK",200,12.5,"idem-1",false,'
        b'"0000000000000000000000000000000000000000000000000000000000000000",null,'
        b'"p, user, acme, invoice, pay, allow","4bf92f3577b34da6a3ce929d0e0e4736",'
        b'"{\\"invoiceId\\":\\"inv_1\\",\\"card\\":\\"[REDACTED]\\"}"]'
    )
    assert chain_hash(GENESIS, 7, content) == (
        "bea6169f89245db6575833d42846a5ad1345ef5b6f74c4811d9df9e47ad701c8"
    )


def test_a_record_time_is_text_of_its_second_and_microsecond() -> None:
    # records of one second share its text; the next second gets its own
    assert timestamp_text(1_700_000_000.25) == "2023-11-14T22:13:20.250000"
    assert timestamp_text(1_700_000_000.75) == "2023-11-14T22:13:20.750000"
    assert timestamp_text(1_700_000_001.0) == "2023-11-14T22:13:21.000000"
    assert timestamp_text(1_700_000_000.9999996) == "2023-11-14T22:13:21.000000"
    assert timestamp_text(1_699_999_999.5) == "2023-11-14T22:13:19.500000"
    assert timestamp_text(-0.5) == "1969-12-31T23:59:59.500000"
    assert timestamp_text(0.0) == "1970-01-01T00:00:00.000000"
    with pytest.raises(OverflowError):
        timestamp_text(1e12)


def test_times_are_rounded_to_the_microsecond_once() -> None:
    assert timestamp_text(1_700_000_000.1234567) == "2023-11-14T22:13:20.123457"
    assert timestamp_text(0.0000005) == "1970-01-01T00:00:00.000000"  # half to even
    assert timestamp_text(1.9999999) == "1970-01-01T00:00:02.000000"


def test_values_are_normalised_as_the_databases_return_them() -> None:
    as_written = record_content(FIXED)
    row = {name: value for name, value in zip(CONTENT_COLUMNS, as_written, strict=True)}
    assert as_written[0] == "2023-11-14T22:13:20.123457"
    written_at = datetime(2023, 11, 14, 22, 13, 20, 123457)
    sqlite_like = {**row, "replayed": 0, "at": written_at}
    sqlite_text = {**row, "replayed": 0, "at": "2023-11-14 22:13:20.123457"}
    postgres_like = {**row, "at": written_at.replace(tzinfo=UTC).astimezone()}
    exported = {**row, "at": "2023-11-14T22:13:20.123457Z", "latency_ms": 12.5}
    for variant in (sqlite_like, sqlite_text, postgres_like, exported):
        assert row_content(variant) == as_written
    odd = record_content(replace(FIXED, status="201", latency_ms=3, replayed=1, client=5))  # type: ignore[arg-type]
    assert odd[CONTENT_COLUMNS.index("status")] == 201
    assert odd[CONTENT_COLUMNS.index("latency_ms")] == 3.0
    assert odd[CONTENT_COLUMNS.index("replayed")] is True
    assert odd[CONTENT_COLUMNS.index("client")] == "5"


def test_the_hash_covers_every_column_seq_and_prev_hash() -> None:
    content = record_content(FIXED)
    base = chain_hash(GENESIS, 1, content)
    assert chain_hash("1" * 64, 1, content) != base
    assert chain_hash(GENESIS, 2, content) != base
    for index, name in enumerate(CONTENT_COLUMNS[1:], 1):
        value = content[index]
        changed = {str: value + "x" if isinstance(value, str) else value}
        other = (
            not value
            if isinstance(value, bool)
            else value + 1
            if isinstance(value, int | float)
            else "x"
            if value is None
            else changed[str]
        )
        altered = (*content[:index], other, *content[index + 1 :])
        assert chain_hash(GENESIS, 1, altered) != base, name


async def test_stored_rows_hash_like_the_records_written(database) -> None:
    """The same bytes for a record as written and as read back, with awkward values."""
    records = [
        record(detail="Zoë ✓ \u2028 \\ \" '", latency_ms=0.1 + 0.2, replayed=True),
        record(at=1_700_000_000.9999996, latency_ms=1e-7, input=None, trace_id=None),
        record(client=None, tenant_id=None, actor_id=None, latency_ms=123456789.123456789),
    ]
    audit = AuditLog(database)
    try:
        for rec in records:
            await audit.write(rec, durable=True)
    finally:
        await audit.close()
    rows = await rows_by_seq(database)
    assert [r["request_id"] for r in rows] == [r.request_id for r in records]
    prev = GENESIS
    for rec, row in zip(records, rows, strict=True):
        assert row_content(row) == record_content(rec)
        assert row["hash"] == chain_hash(prev, row["seq"], record_content(rec))
        prev = row["hash"]
    exported = [json.loads(json.dumps(export_record(r))) for r in rows]
    assert verify_records(row_of_export(e) for e in exported).ok


# -- several writers, one chain ---------------------------------------------------------------

WRITER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time, uuid
    from dataclasses import replace
    from audit.log import AuditLog
    from storage.database import Database
    from tests.unit.test_audit_chain import FIXED

    async def main(url, count):
        db = Database(url)
        audit = AuditLog(db, max_batch=5)
        try:
            for i in range(count):
                rec = replace(FIXED, at=time.time(), request_id=f"child-{i}")
                await audit.write(rec, durable=i % 2 == 0)
                await asyncio.sleep(0)
        finally:
            await audit.close()
            await db.dispose()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_two_logs_and_another_process_form_one_chain(database) -> None:
    other_db = Database(database.url)  # a second engine: as a second server process would
    first, second = AuditLog(database, max_batch=7), AuditLog(other_db, max_batch=3)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER_SCRIPT, database.url, "120", cwd=str(ROOT)
    )

    async def burst(audit: AuditLog, prefix: str) -> None:
        for i in range(0, 150, 10):
            await asyncio.gather(
                *(
                    audit.write(record(request_id=f"{prefix}-{i + j}"), durable=j % 2 == 0)
                    for j in range(10)
                )
            )

    try:
        await asyncio.gather(burst(first, "first"), burst(second, "second"))
    finally:
        await first.close()
        await second.close()
        await other_db.dispose()
    assert await asyncio.wait_for(child.wait(), 60) == 0

    rows = await rows_by_seq(database)
    assert len(rows) == 420
    assert [r["seq"] for r in rows] == list(range(1, 421))
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # ids grow with seq
    names = {r["request_id"].split("-")[0] for r in rows}
    assert names == {"first", "second", "child"}
    report = await verify_chain(database, batch=50)
    assert report.ok and report.checked == 420, report
    async with database.connect() as conn:
        head = (await conn.execute(select(audit_chain_head))).mappings().one()
    assert (head["seq"], head["hash"]) == (420, rows[-1]["hash"])


# -- migration 0003 ---------------------------------------------------------------------------

#: audit_events as revision 0002 left it.
EVENTS_0002 = sa.table(
    "audit_events",
    *(
        sa.column(name)
        for name in CONTENT_COLUMNS
        if name not in ("trace_id", "input", "at", "replayed")
    ),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("replayed", sa.Boolean()),
)


async def test_upgrading_chains_the_rows_a_database_already_has(database) -> None:
    await migrate.downgrade(database, "0002")
    base = time.time() - 86400
    old = [
        {
            **{n: getattr(FIXED, n) for n in CONTENT_COLUMNS if n not in ("trace_id", "input")},
            "at": datetime.fromtimestamp(base + i * 0.37, UTC),
            "request_id": f"old-{i}",
            "replayed": i % 2 == 0,
            "latency_ms": i / 3,
            "detail": None if i % 3 else f"détail {i}",
        }
        for i in range(25)
    ]
    async with database.begin() as conn:
        await conn.execute(sa.insert(EVENTS_0002), old)

    await migrate.upgrade(database)

    rows = await rows_by_seq(database)
    assert [r["request_id"] for r in rows] == [f"old-{i}" for i in range(25)]  # id order
    assert [r["seq"] for r in rows] == list(range(1, 26))
    assert rows[0]["prev_hash"] == GENESIS
    assert all(r["trace_id"] is None and r["input"] is None for r in rows)
    report = await verify_chain(database, batch=7)
    assert report.ok and report.checked == 25, report

    audit = AuditLog(database)  # the writer carries on from the migrated head
    try:
        await audit.write(record(), durable=True)
    finally:
        await audit.close()
    report = await verify_chain(database)
    assert report.ok and report.checked == 26, report

    # Down and up again: the rows stay, and are chained again the same way.
    await migrate.downgrade(database, "0002")
    await migrate.upgrade(database)
    assert [r["hash"] for r in await rows_by_seq(database)][:25] == [r["hash"] for r in rows]
    assert (await verify_chain(database)).ok


async def test_an_empty_database_starts_at_genesis(database) -> None:
    async with database.connect() as conn:
        head = (await conn.execute(select(audit_chain_head))).mappings().all()
    assert [(h["id"], h["seq"], h["hash"]) for h in head] == [(1, 0, GENESIS)]
    report = await verify_chain(database)
    assert report.ok and report.checked == 0
