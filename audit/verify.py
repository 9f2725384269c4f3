"""Verifying the audit chain: in the database, or in an exported file.

The rows are read in ``seq`` order, a page at a time (a chain of millions of records is
never held in memory), and each is checked against the one before it:

- ``seq`` follows on (a gap: records were deleted);
- the hash recomputed from the row's content is the stored one (the row was altered);
- its ``id`` is above the previous row's (ids grow with ``seq``: a row with a higher id
  than the next one was inserted later);
- its ``prev_hash`` is the previous row's hash (a record was inserted or replaced);

and at the end the last row is the one ``audit_chain_head`` names (records at the end
were deleted, or the table emptied; rows beyond the head were not written by the log).

The first problem found is reported, naming the record by ``seq`` and ``id``.

What this does not catch: someone able to write the database who recomputes every hash
after the change and moves the head too. Against that, keep exports (or just the head's
``seq`` and ``hash`` now and then) somewhere the database's writers cannot reach, and
compare.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from audit.chain import GENESIS, chain_hash, row_content
from storage.database import Database
from storage.tables import audit_chain_head, audit_events


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What a verification found: the number of records checked and the first problem
    (None: the chain is intact), with the ``seq`` and ``id`` of the record it concerns."""

    checked: int
    problem: str | None = None
    seq: int | None = None
    id: int | None = None
    #: The chain head's seq (None when verifying a file).
    head_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.problem is None:
            return f"OK: {self.checked} records, the chain is intact"
        return f"BROKEN after {self.checked} records: {self.problem}"


def _name(seq: int, row_id: Any) -> str:
    return f"seq {seq}" if row_id is None else f"seq {seq} (id {row_id})"


class ChainChecker:
    """Checks rows fed in ``seq`` order; stops at the first problem.

    ``from_start``: the rows must start at seq 1 (a whole chain). Otherwise (a part of
    one, such as a filtered export) the first row's seq and prev_hash are taken as they
    are."""

    def __init__(self, *, from_start: bool = True) -> None:
        self.checked = 0
        self.last_seq = 0
        self.last_hash: str | None = GENESIS if from_start else None
        self.last_id: Any = None
        self.problem: str | None = None
        self.problem_seq: int | None = None
        self.problem_id: Any = None
        self._started = from_start

    def feed(self, row: Mapping[Any, Any]) -> bool:
        """Check one row; False (and ``problem`` set) when it breaks the chain."""
        seq = int(row["seq"])
        row_id = row.get("id")
        name = _name(seq, row_id)
        if not self._started:
            self._started = True
            self.last_seq = seq - 1
        elif seq <= self.last_seq:
            return self._broken(
                f"record {name} repeats seq {seq}: the chain has two records there", seq, row_id
            )
        elif seq > self.last_seq + 1:
            missing = (
                f"seq {seq - 1} is"
                if seq - 1 == self.last_seq + 1
                else f"seq {self.last_seq + 1} to {seq - 1} are"
            )
            return self._broken(
                f"records are missing: {missing} gone, record {name} follows "
                f"{_name(self.last_seq, self.last_id) if self.last_seq else 'the start'}",
                seq,
                row_id,
            )
        prev_hash = row["prev_hash"]
        try:
            altered = chain_hash(str(prev_hash), seq, row_content(row)) != row["hash"]
        except (TypeError, ValueError, KeyError, UnicodeError):
            altered = True
        if altered:
            return self._broken(
                f"record {name} was altered: its hash does not match its content", seq, row_id
            )
        if self.last_id is not None and row_id is not None and row_id <= self.last_id:
            return self._broken(
                f"record {_name(self.last_seq, self.last_id)} was inserted out of turn: "
                f"its id is above that of the next record, {name}",
                self.last_seq,
                self.last_id,
            )
        if self.last_hash is not None and prev_hash != self.last_hash:
            return self._broken(
                f"record {name} does not follow {_name(self.last_seq, self.last_id)}: its "
                f"prev_hash {str(prev_hash)[:12]}... is not that record's hash "
                f"{self.last_hash[:12]}... (a record was inserted or replaced)",
                seq,
                row_id,
            )
        self.checked += 1
        self.last_seq, self.last_hash, self.last_id = seq, str(row["hash"]), row_id
        return True

    def _broken(self, problem: str, seq: int, row_id: Any) -> bool:
        self.problem, self.problem_seq, self.problem_id = problem, seq, row_id
        return False

    def report(self, head_seq: int | None = None) -> ChainReport:
        return ChainReport(
            self.checked,
            self.problem,
            self.problem_seq,
            None if self.problem_id is None else int(self.problem_id),
            head_seq,
        )


async def _page(conn: AsyncConnection, after_seq: int, limit: int) -> list[Mapping[Any, Any]]:
    # ``>=``: a second row with the last seq of the previous page (possible only without
    # the unique index) is not skipped; the rows already seen are dropped by the caller.
    query = (
        select(audit_events)
        .where(audit_events.c.seq >= after_seq)
        .order_by(audit_events.c.seq, audit_events.c.id)
        .limit(limit)
    )
    rows = (await conn.execute(query)).mappings().all()
    await conn.rollback()  # no transaction held open between pages
    return list(rows)


async def verify_chain(db: Database, *, batch: int = 5000) -> ChainReport:
    """Check the whole chain of ``audit_events`` against itself and the chain head."""
    checker = ChainChecker()
    seen: tuple[int, Any] = (0, 0)  # (seq, id) of the last row checked
    async with db.scan() as conn:
        while True:
            rows = await _page(conn, seen[0], batch)
            fresh = [r for r in rows if (r["seq"], r["id"]) > seen]
            for row in fresh:
                if not checker.feed(row):
                    return checker.report()
                seen = (row["seq"], row["id"])
            if len(rows) >= batch and fresh:
                continue
            head = (
                await conn.execute(
                    select(audit_chain_head.c.seq, audit_chain_head.c.hash).where(
                        audit_chain_head.c.id == 1
                    )
                )
            ).first()
            await conn.rollback()
            if head is None:
                return ChainReport(checker.checked, "the chain head (audit_chain_head) is gone")
            head_seq, head_hash = int(head.seq), str(head.hash)
            if head_seq > checker.last_seq and fresh:
                continue  # records were committed while we read: read them too
            return await _against_head(conn, checker, head_seq, head_hash)


async def _against_head(
    conn: AsyncConnection, checker: ChainChecker, head_seq: int, head_hash: str
) -> ChainReport:
    last = checker.last_seq
    if last < head_seq:
        what = "the table was emptied" if last == 0 else f"records after seq {last} are missing"
        return ChainReport(
            checker.checked,
            f"{what}: the chain head says the last record is seq {head_seq}",
            last + 1,
            None,
            head_seq,
        )
    if last > head_seq:
        beyond = (
            await conn.execute(
                select(audit_events.c.seq, audit_events.c.id)
                .where(audit_events.c.seq > head_seq)
                .order_by(audit_events.c.seq)
                .limit(1)
            )
        ).first()
        await conn.rollback()
        seq, row_id = (int(beyond.seq), int(beyond.id)) if beyond else (head_seq + 1, None)
        return ChainReport(
            checker.checked,
            f"record {_name(seq, row_id)} lies beyond the chain head (seq {head_seq}): "
            "it was not written by the audit log",
            seq,
            row_id,
            head_seq,
        )
    if checker.last_hash != head_hash:
        return ChainReport(
            checker.checked,
            f"record {_name(last, checker.last_id)} is not the one the chain head names: "
            "its hash differs from the head's",
            last,
            None if checker.last_id is None else int(checker.last_id),
            head_seq,
        )
    return checker.report(head_seq)


def verify_records(records: Iterable[Mapping[str, Any]]) -> ChainReport:
    """Check records (rows, or exported records read back with
    ``audit.export.row_of_export``) against each other. A part of the chain is checked
    from its first record on: records before it cannot be checked, nor those after it."""
    iterator = iter(records)
    first = next(iterator, None)
    if first is None:
        return ChainReport(0)
    checker = ChainChecker(from_start=int(first["seq"]) == 1)
    if not checker.feed(first):
        return checker.report()
    for record in iterator:
        if not checker.feed(record):
            break
    return checker.report()
