"""Tampering with the audit trail, on real databases.

The table is append-only: UPDATE, DELETE (and on PostgreSQL TRUNCATE) are refused by
triggers. An attacker who can get past them (a superuser disabling triggers on
PostgreSQL, anyone who can write the SQLite file) is simulated, and ``verify_chain``
must name the record each change concerns.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from audit.chain import chain_hash, row_content
from audit.log import AuditLog
from audit.verify import verify_chain
from storage.database import Database
from storage.tables import audit_chain_head, audit_events
from tests.unit.test_audit_chain import record

COUNT = 30


@pytest.fixture
async def trail(database: Database) -> Database:
    """A database with COUNT chained records, written in several batches."""
    audit = AuditLog(database, max_batch=4)
    try:
        for i in range(0, COUNT, 6):
            for j in range(6):
                await audit.write(record(request_id=f"r{i + j}"), durable=j == 5)
    finally:
        await audit.close()
    report = await verify_chain(database)
    assert report.ok and report.checked == COUNT, report
    return database


async def row_at(db: Database, seq: int) -> dict[str, Any]:
    async with db.connect() as conn:
        result = await conn.execute(select(audit_events).where(audit_events.c.seq == seq))
        return dict(result.mappings().one())


async def refused(db: Database, statement: Any) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.begin() as conn:
            if isinstance(statement, str):
                await conn.exec_driver_sql(statement)
            else:
                await conn.execute(statement)


async def assert_append_only(db: Database) -> None:
    await refused(db, update(audit_events).values(detail="changed"))
    await refused(db, delete(audit_events).where(audit_events.c.seq == 3))
    if not db.is_sqlite:
        await refused(db, "TRUNCATE audit_events")


class attacker:
    """``async with attacker(db) as conn``: a transaction past the append-only triggers:
    on PostgreSQL a superuser's session with triggers off, on SQLite one that dropped
    them (as anyone who can write the file can)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._begin: Any = None

    async def __aenter__(self) -> AsyncConnection:
        await assert_append_only(self.db)
        self._begin = self.db.begin()
        conn: AsyncConnection = await self._begin.__aenter__()
        if self.db.is_sqlite:
            await conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            await conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        else:
            await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        return conn

    async def __aexit__(self, *exc: object) -> None:
        await self._begin.__aexit__(*exc)


async def forge(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(audit_events).values(**values))


def forged_row(template: dict[str, Any], **changes: Any) -> dict[str, Any]:
    row = {k: v for k, v in template.items() if k != "id"}
    row.update(changes)
    return row


def self_consistent(row: dict[str, Any]) -> dict[str, Any]:
    """The row with the hash an attacker can compute from its content and prev_hash."""
    return {**row, "hash": chain_hash(row["prev_hash"], row["seq"], row_content(row))}


async def test_the_table_is_append_only(trail: Database) -> None:
    await assert_append_only(trail)
    assert (await verify_chain(trail)).ok


async def test_an_edited_field_names_its_record(trail: Database) -> None:
    target = await row_at(trail, 17)
    async with attacker(trail) as conn:
        await conn.execute(
            update(audit_events).where(audit_events.c.seq == 17).values(outcome="FORBIDDEN")
        )
    report = await verify_chain(trail)
    assert not report.ok
    assert (report.seq, report.id) == (17, target["id"])
    assert report.problem == (
        f"record seq 17 (id {target['id']}) was altered: its hash does not match its content"
    )


async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(trail: Database) -> None:
    target = await row_at(trail, 9)
    following = await row_at(trail, 10)
    changed = self_consistent({**target, "status": 200, "outcome": "OK", "detail": "nothing"})
    async with attacker(trail) as conn:
        await conn.execute(
            update(audit_events)
            .where(audit_events.c.seq == 9)
            .values(detail="nothing", hash=changed["hash"])
        )
    report = await verify_chain(trail)
    assert (report.seq, report.id) == (10, following["id"])
    assert f"record seq 10 (id {following['id']}) does not follow seq 9" in str(report.problem)


async def test_a_deleted_middle_record_is_a_gap(trail: Database) -> None:
    after = await row_at(trail, 13)
    async with attacker(trail) as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 12))
    report = await verify_chain(trail)
    assert (report.seq, report.id) == (13, after["id"])
    assert "seq 12 is gone" in str(report.problem)
    assert f"record seq 13 (id {after['id']}) follows seq 11" in str(report.problem)


async def test_deleted_records_at_the_end_show_against_the_head(trail: Database) -> None:
    async with attacker(trail) as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq >= COUNT - 1))
    report = await verify_chain(trail)
    assert report.checked == COUNT - 2
    assert report.problem == (
        f"records after seq {COUNT - 2} are missing: "
        f"the chain head says the last record is seq {COUNT}"
    )


async def test_an_emptied_table_shows_against_the_head(trail: Database) -> None:
    async with attacker(trail) as conn:
        if trail.is_sqlite:
            await conn.execute(delete(audit_events))
        else:
            await conn.exec_driver_sql("TRUNCATE audit_events")
    report = await verify_chain(trail)
    assert report.problem == (
        f"the table was emptied: the chain head says the last record is seq {COUNT}"
    )


async def test_a_forged_record_in_place_of_another_is_named(trail: Database) -> None:
    original = await row_at(trail, 12)
    async with attacker(trail) as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 12))
        # Forged with its own content, a made-up prev_hash and a hash that fits both.
        await forge(
            conn,
            self_consistent(forged_row(original, detail="nothing happened", prev_hash="f" * 64)),
        )
    forged = await row_at(trail, 12)
    assert forged["id"] != original["id"]
    report = await verify_chain(trail)
    assert (report.seq, report.id) == (12, forged["id"])
    assert f"record seq 12 (id {forged['id']}) does not follow seq 11" in str(report.problem)


async def test_a_forged_record_that_links_up_is_out_of_turn(trail: Database) -> None:
    original = await row_at(trail, 12)
    async with attacker(trail) as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 12))
        await forge(conn, self_consistent(forged_row(original, detail="nothing happened")))
    forged = await row_at(trail, 12)
    report = await verify_chain(trail)
    assert (report.seq, report.id) == (12, forged["id"])
    assert f"record seq 12 (id {forged['id']}) was inserted out of turn" in str(report.problem)


async def test_a_record_appended_past_the_head_is_named(trail: Database) -> None:
    last = await row_at(trail, COUNT)
    async with attacker(trail) as conn:
        await forge(
            conn,
            self_consistent(
                forged_row(last, seq=COUNT + 1, prev_hash=last["hash"], request_id="forged")
            ),
        )
    appended = await row_at(trail, COUNT + 1)
    report = await verify_chain(trail)
    assert (report.seq, report.id) == (COUNT + 1, appended["id"])
    assert report.problem == (
        f"record seq {COUNT + 1} (id {appended['id']}) lies beyond the chain head "
        f"(seq {COUNT}): it was not written by the audit log"
    )


async def test_a_changed_head_is_noticed(trail: Database) -> None:
    async with trail.begin() as conn:  # the head is not append-only: writers move it
        await conn.execute(update(audit_chain_head).values(hash="0" * 64))
    report = await verify_chain(trail)
    assert report.seq == COUNT
    assert "is not the one the chain head names" in str(report.problem)
