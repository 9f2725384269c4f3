"""``specops audit``: verify, tail, export (and verify an export), on real databases.

The commands run their own event loop (``asyncio.run``), so CliRunner runs them in a
thread, beside the test's loop.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import delete, select

from audit.log import AuditLog
from audit.query import EventFilter
from specops.audit_cli import audit, follow_records
from storage.database import Database
from storage.tables import audit_events
from tests.unit.test_audit_chain import record
from tests.unit.test_audit_tamper import attacker


async def run(db: Database, *args: str) -> Result:
    runner = CliRunner(env={"DATABASE_URL": db.url, "SPECOPS_DATABASE_URL": None})
    return await asyncio.to_thread(runner.invoke, audit, list(args), catch_exceptions=False)


async def write(db: Database, *records: Any) -> None:
    log = AuditLog(db)
    try:
        for rec in records:
            await log.write(rec, durable=False)
    finally:
        await log.close()


@pytest.fixture
async def trail(database: Database) -> Database:
    await write(
        database,
        *(
            record(request_id=f"r{i}", tenant_id="acme" if i % 2 else "globex", replayed=i == 3)
            for i in range(12)
        ),
    )
    return database


async def test_verify_says_ok_with_the_count(trail: Database) -> None:
    result = await run(trail, "verify")
    assert result.exit_code == 0
    assert result.stdout == "OK: 12 records checked in the database, the chain is intact\n"


async def test_verify_exits_1_and_names_the_first_problem(trail: Database) -> None:
    async with attacker(trail) as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq.in_([5, 9])))
    result = await run(trail, "verify", "--batch", "3")
    assert result.exit_code == 1
    assert result.stdout.startswith("BROKEN: records are missing: seq 5 is gone, record seq 6")
    assert "4 records checked before it" in result.stderr


async def test_verify_on_an_empty_chain(database: Database) -> None:
    result = await run(database, "verify")
    assert result.exit_code == 0
    assert "OK: 0 records" in result.stdout


async def test_export_then_verify_the_file(trail: Database, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    result = await run(trail, "export", "--jsonl", "--output", str(out))
    assert result.exit_code == 0
    assert "12 records exported" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, 13))
    first = lines[0]
    assert first["input"] == {"invoiceId": "inv_1", "card": "[REDACTED]"}  # parsed back
    assert first["at"].endswith("Z") and len(first["at"]) == len("2024-01-01T00:00:00.000000Z")
    assert {"prev_hash", "hash", "trace_id", "input_text", "id"} <= set(first)
    assert lines[3]["replayed"] is True

    result = await run(trail, "verify", "--file", str(out))
    assert result.exit_code == 0, result.stdout
    assert "OK: 12 records checked" in result.stdout

    # Edit one record of the file: verify names it.
    lines[6]["status"] = 500
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    result = await run(trail, "verify", "--file", str(out))
    assert result.exit_code == 1
    assert result.stdout == (
        f"BROKEN: record seq 7 (id {lines[6]['id']}) was altered: "
        "its hash does not match its content\n"
    )


async def test_export_to_stdout_filters_by_tenant_and_time(trail: Database) -> None:
    result = await run(trail, "export", "--tenant", "acme")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(1, 12, 2)]

    async with trail.connect() as conn:
        times = [r.at for r in await conn.execute(select(audit_events.c.at))]
    newest = max(times)
    since = (newest if newest.tzinfo else newest.replace(tzinfo=None)).isoformat()
    result = await run(trail, "export", "--since", since)
    assert [json.loads(line)["request_id"] for line in result.stdout.splitlines()] == ["r11"]
    result = await run(trail, "export", "--until", since)
    assert len(result.stdout.splitlines()) == 11

    result = await run(trail, "export", "--since", "yesterday")
    assert result.exit_code == 2
    assert "not an ISO 8601 time" in result.stderr


async def test_a_partial_export_verifies_from_its_first_record(
    trail: Database, tmp_path: Path
) -> None:
    out = tmp_path / "acme.jsonl"
    await run(trail, "export", "--tenant", "acme", "-o", str(out))
    result = await run(trail, "verify", "--file", str(out))
    assert result.exit_code == 1  # records of the other tenant are not in it
    assert "records are missing: seq 3 is gone" in result.stdout


async def test_tail_prints_the_latest_records_oldest_first(trail: Database) -> None:
    result = await run(trail, "tail", "-n", "3")
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert [line.split()[0] for line in lines] == ["10", "11", "12"]
    assert "acme/alice" in lines[0] and "billing.capturePayment@1.0.0" in lines[0]
    assert lines[0].endswith("r9")

    result = await run(trail, "tail", "--tenant", "globex", "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(0, 12, 2)]
    assert (await run(trail, "tail")).stdout.splitlines()[3].endswith("r3 replayed")


async def test_follow_prints_records_as_they_arrive(trail: Database) -> None:
    seen: list[dict[str, Any]] = []

    async def later() -> None:
        await asyncio.sleep(0.15)
        await write(trail, record(request_id="new-acme", tenant_id="acme"))
        await write(trail, record(request_id="new-globex", tenant_id="globex"))

    writer = asyncio.create_task(later())
    last = await follow_records(
        trail, EventFilter(tenant_id="acme"), 12, seen.append, interval=0.1, polls=6
    )
    await writer
    assert [r["request_id"] for r in seen] == ["new-acme"]
    assert last == 13
