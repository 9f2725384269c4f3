"""``specops audit``: verify the audit chain, follow the trail, export it.

Every command reads the database of ``DATABASE_URL`` (``Settings().database_url``);
``verify --file`` needs no database at all.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

from audit.export import (
    export_records,
    latest_records,
    row_of_export,
    summary_line,
    to_json_line,
)
from audit.query import EventFilter
from audit.verify import ChainReport, verify_chain, verify_records
from specops.cli_support import run_on_database
from storage.database import Database

#: ``tail --follow`` looks for new records this often.
FOLLOW_SECONDS = 1.0


def _time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from the command line; without a zone, UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=option) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@click.group()
def audit() -> None:
    """The audit trail: verify its hash chain, tail it, export it."""


@audit.command("verify")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Verify an export (JSON lines of `audit export`) instead of the database.",
)
@click.option("--batch", default=5000, show_default=True, help="Records read per page.")
def audit_verify(path: Path | None, batch: int) -> None:
    """Check the hash chain: every record unchanged, none missing, none inserted.
    Prints the first problem and exits 1 when the chain is broken."""
    if path is not None:
        report = _verify_file(path)
        where = str(path)
    else:
        report = run_on_database(lambda db: verify_chain(db, batch=batch))
        where = "the database"
    if report.ok:
        click.echo(f"OK: {report.checked} records checked in {where}, the chain is intact")
        return
    click.echo(f"BROKEN: {report.problem}")
    click.echo(f"({report.checked} records checked before it, in {where})", err=True)
    sys.exit(1)


def _verify_file(path: Path) -> ChainReport:
    def records(stream: IO[str]) -> Iterator[dict[str, Any]]:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                yield row_of_export(json.loads(line))
            except (ValueError, AttributeError) as exc:
                raise click.ClickException(f"{path}:{number}: not an exported record") from exc

    with path.open(encoding="utf-8") as stream:
        report = verify_records(records(stream))
    return report


@audit.command("tail")
@click.option("-n", "--lines", "count", default=20, show_default=True, help="How many records.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records (Ctrl-C stops).")
@click.option("--tenant", default=None, help="Only this tenant's records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_tail(count: int, follow: bool, tenant: str | None, as_json: bool) -> None:
    """The latest records, oldest first, one line each."""
    filters = EventFilter(tenant_id=tenant)
    show = to_json_line if as_json else summary_line

    async def work(db: Database) -> None:
        records = await latest_records(db, count, filters)
        for record in records:
            click.echo(show(record))
        if follow:
            last = records[-1]["seq"] if records else await _last_seq(db)
            await follow_records(db, filters, last, lambda r: click.echo(show(r)))

    with suppress(KeyboardInterrupt):
        run_on_database(work)


async def _last_seq(db: Database) -> int:
    records = await latest_records(db, 1)
    return int(records[0]["seq"]) if records else 0


async def follow_records(
    db: Database,
    filters: EventFilter,
    after_seq: int,
    emit: Callable[[dict[str, Any]], None],
    *,
    interval: float = FOLLOW_SECONDS,
    polls: int | None = None,
) -> int:
    """Emit each matching record written after ``after_seq``, looking every ``interval``
    seconds (``polls`` times; None: until cancelled). Returns the last seq seen."""
    done = 0
    while polls is None or done < polls:
        async for record in export_records(db, filters, after_seq=after_seq):
            emit(record)
            after_seq = int(record["seq"])
        done += 1
        if polls is None or done < polls:
            await asyncio.sleep(interval)
    return after_seq


@audit.command("export")
@click.option(
    "--jsonl",
    is_flag=True,
    default=True,
    help="One JSON object per line, in seq order (the only format, and the default).",
)
@click.option("--since", default=None, help="From this time on (ISO 8601; UTC if no zone).")
@click.option("--until", default=None, help="Before this time (ISO 8601; UTC if no zone).")
@click.option("--tenant", default=None, help="Only this tenant's records.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file instead of stdout.",
)
def audit_export(
    jsonl: bool, since: str | None, until: str | None, tenant: str | None, output: Path | None
) -> None:
    """Every record, with its seq, prev_hash and hash: an unfiltered export can be
    verified offline (`specops audit verify --file`), a filtered one record by record
    from its first record on."""
    filters = EventFilter(
        tenant_id=tenant, since=_time(since, "--since"), until=_time(until, "--until")
    )

    async def work(db: Database) -> int:
        written = 0
        with ExitStack() as stack:
            sink: IO[str] = (
                stack.enter_context(output.open("w", encoding="utf-8"))
                if output is not None
                else sys.stdout
            )
            async for record in export_records(db, filters):
                sink.write(to_json_line(record) + "\n")
                written += 1
        return written

    written = run_on_database(work)
    click.echo(f"{written} records exported", err=True)
