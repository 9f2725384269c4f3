"""Command attempts (audit.attempts, AuditLog.record_attempt / close_interrupted): stored
before a handler runs, ended by the command's record, recorded as INTERRUPTED once their
process is gone, and left alone while it lives; on real databases."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from audit.attempts import LEASE_SECONDS, Process, host_key
from audit.log import AuditLog
from audit.verify import verify_chain
from registry.audit_record import AuditRecord
from registry.invocation import Invocation
from registry.ports import AttemptNotStored
from storage.database import Database
from storage.tables import audit_attempts, audit_events, audit_owners
from tests.support.doubles import RUNS, Sink, make_pipeline
from tests.unit.test_audit_log import record


def gone_process() -> Process:
    """A process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return Process(host_key(), child.pid, 1)


async def count(db: Database, table: object) -> int:
    async with db.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()  # type: ignore[arg-type]


async def events(db: Database) -> list[tuple[str, str, int]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            select(audit_events.c.request_id, audit_events.c.outcome, audit_events.c.status)
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows.all()]


async def test_the_attempt_of_a_process_that_is_gone_is_recorded_once_as_interrupted(
    database: Database,
) -> None:
    dead = AuditLog(database, process=gone_process())
    attempt = record(outcome="INTERRUPTED", status=500)
    await dead.record_attempt(attempt)  # ... and the process dies in the handler
    assert await count(database, audit_attempts) == 1
    assert await events(database) == []

    starting = AuditLog(database)
    assert await starting.close_interrupted() == 1
    assert await events(database) == [(attempt.request_id, "INTERRUPTED", 500)]
    assert await count(database, audit_attempts) == 0
    assert await count(database, audit_owners) == 0
    assert await starting.close_interrupted() == 0  # once only
    assert (await verify_chain(database)).ok
    await dead.close()
    await starting.close()


async def test_a_command_record_ends_its_attempt_in_its_own_transaction(
    database: Database,
) -> None:
    log = AuditLog(database, process=gone_process())
    attempt = await log.record_attempt(record(outcome="INTERRUPTED", status=500))
    final = record()
    await log.write(final, durable=True, closes=attempt)
    assert await count(database, audit_attempts) == 0
    assert await AuditLog(database).close_interrupted() == 0
    assert await events(database) == [(final.request_id, "OK", 200)]
    await log.close()


async def test_attempts_of_live_processes_are_left_alone(database: Database) -> None:
    here = AuditLog(database)  # this very process
    elsewhere = AuditLog(database, process=Process("another-host", 1, 1))
    await here.record_attempt(record())
    await elsewhere.record_attempt(record())
    assert await AuditLog(database).close_interrupted() == 0
    assert await count(database, audit_attempts) == 2

    # The other host's process stops renewing its row: once the lease has run out, it
    # counts as gone; this one's does not.
    stale = datetime.now(UTC) - timedelta(seconds=LEASE_SECONDS + 5)
    async with database.begin() as conn:
        await conn.execute(
            update(audit_owners)
            .where(audit_owners.c.id == elsewhere.owner)
            .values(heartbeat_at=stale)
        )
    assert await AuditLog(database).close_interrupted() == 1
    assert await count(database, audit_attempts) == 1
    await here.close()
    await elsewhere.close()


async def test_the_attempt_is_stored_before_the_handler_runs() -> None:
    sink = Sink()
    pipeline = make_pipeline(sink)
    outcome = await pipeline.invoke(
        Invocation(key="test.shout", input={"text": "hi"}, transport="rest")
    )
    assert outcome.problem is None
    (attempt,) = sink.attempts
    assert (attempt.outcome, attempt.status) == ("INTERRUPTED", 500)
    assert attempt.request_id == sink.records[-1].request_id
    assert attempt.input == sink.records[-1].input


async def test_a_command_whose_attempt_is_not_stored_does_not_run() -> None:
    class NoAttempts(Sink):
        async def record_attempt(self, record: AuditRecord) -> str:
            raise AttemptNotStored("not stored in time", "attempt-1")

    sink = NoAttempts()
    text = f"shout-{time.time()}"
    outcome = await make_pipeline(sink).invoke(
        Invocation(key="test.shout", input={"text": text}, transport="rest")
    )
    assert text not in RUNS
    assert outcome.problem is not None and outcome.problem.code == "UPSTREAM_UNAVAILABLE"
    assert "not run" in outcome.problem.detail
    assert sink.records[-1].outcome == "UPSTREAM_UNAVAILABLE"
