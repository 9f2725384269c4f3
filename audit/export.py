"""Audit rows as JSON objects, for ``specops audit tail`` and ``export``; and back.

An exported record holds every column: ``at`` as ``2024-05-01T12:00:00.123456Z``,
``input`` parsed back to JSON, and beside it ``input_text``, the stored text itself. The
hash covers that text, and re-serialising the parsed value need not give the same bytes,
so ``input_text`` is what lets ``specops audit verify --file`` check an export offline
with the same code as the database's chain (``row_of_export`` turns a record back into
the row it came from).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sqlalchemy import select

from audit.query import EventFilter, conditions
from storage.database import Database
from storage.tables import audit_events as t
from storage.times import naive_utc, time_text

#: No filter: every record.
ALL_RECORDS = EventFilter()

#: The keys of an exported record, in order.
EXPORT_KEYS: tuple[str, ...] = (
    "seq",
    "id",
    "at",
    "request_id",
    "trace_id",
    "transport",
    "client",
    "tenant_id",
    "actor_id",
    "actor_kind",
    "credential_id",
    "operation_key",
    "operation_version",
    "decision",
    "outcome",
    "status",
    "latency_ms",
    "idempotency_key",
    "replayed",
    "input_digest",
    "input",
    "input_text",
    "detail",
    "policy_rule",
    "prev_hash",
    "hash",
)


def parse_input(text: str | None) -> Any:
    """The recorded input as JSON; text that is not JSON stays text."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def export_record(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One ``audit_events`` row (from either database) as a JSON-ready dict."""
    record: dict[str, Any] = {}
    for key in EXPORT_KEYS:
        if key == "at":
            record[key] = time_text(naive_utc(row["at"]))
        elif key == "input":
            record[key] = parse_input(row["input"])
        elif key == "input_text":
            record[key] = row["input"]
        elif key == "replayed":
            record[key] = bool(row["replayed"])
        else:
            record[key] = row[key]
    return record


def row_of_export(record: Mapping[str, Any]) -> dict[str, Any]:
    """An exported record as the row it was made from (``input`` is ``input_text``)."""
    row = {key: record.get(key) for key in EXPORT_KEYS if key not in ("input", "input_text")}
    row["input"] = record.get("input_text")
    return row


def to_json_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def summary_line(record: Mapping[str, Any]) -> str:
    """One readable line: ``seq at transport tenant/actor op@version decision outcome
    status latency request``."""
    who = f"{record['tenant_id'] or '-'}/{record['actor_id'] or 'anonymous'}"
    operation = record["operation_key"]
    if record["operation_version"]:
        operation += f"@{record['operation_version']}"
    return (
        f"{record['seq']:>8}  {record['at']}  {record['transport']:<7} {who:<24} "
        f"{operation:<36} {record['decision']:<5} {record['outcome']} {record['status']} "
        f"{record['latency_ms']:.1f}ms  {record['request_id']}"
        + (" replayed" if record["replayed"] else "")
    )


async def export_records(
    db: Database,
    filters: EventFilter = ALL_RECORDS,
    *,
    after_seq: int = 0,
    page: int = 2000,
) -> AsyncIterator[dict[str, Any]]:
    """Every matching record after ``after_seq``, in ``seq`` order, read a page at a time."""
    where = conditions(filters)
    async with db.scan() as conn:
        while True:
            query = select(t).where(t.c.seq > after_seq, *where).order_by(t.c.seq).limit(page)
            rows = (await conn.execute(query)).mappings().all()
            await conn.rollback()
            for row in rows:
                yield export_record(row)
            if len(rows) < page:
                return
            after_seq = int(rows[-1]["seq"])


async def latest_records(
    db: Database,
    count: int,
    filters: EventFilter = ALL_RECORDS,
) -> list[dict[str, Any]]:
    """The ``count`` matching records with the highest ``seq``, oldest first."""
    query = select(t).where(*conditions(filters)).order_by(t.c.seq.desc()).limit(count)
    async with db.scan() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [export_record(row) for row in reversed(rows)]
