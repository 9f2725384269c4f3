"""Crash test: SIGKILL the server during a burst of commands, round after round on one
database, starting a new server after each kill.

Every command whose response reached the client has its audit record (committed before
the response was sent), exactly once. Every invoice that was committed, answered or not,
is named by a record: its own, or the ``INTERRUPTED`` record the next server wrote at
start-up for the attempt the killed one left open. Each invoice's description is the
request id that created it, which links it to its record. The hash chain still verifies.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from audit.verify import verify_chain
from storage.database import Database
from storage.tables import audit_events, invoices
from tests.conftest import BACKENDS, _database_url
from tests.support import api
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

#: Commands sent per round; the server is killed once KILL_AFTER responses have arrived.
BURST = 300
KILL_AFTER = 60
CONCURRENCY = 24
#: Kills per backend (``SPECOPS_CRASH_ROUNDS`` for more).
ROUNDS = int(os.environ.get("SPECOPS_CRASH_ROUNDS") or 10)


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of each backend, for servers of the test's own: it kills them."""
    async for url in _database_url(request.param, tmp_path):
        yield url


@dataclass
class Round:
    tenant: str
    answered: dict[str, int] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)


async def burst(stack: Stack, token: str, sent: Round) -> None:
    """Send BURST createInvoice commands, CONCURRENCY at a time, each describing its
    invoice by its request id; SIGKILL the server once KILL_AFTER have answered."""
    pending = asyncio.Queue[str]()
    for n in range(BURST):
        pending.put_nowait(api.rid(f"crash{n}"))
    killed = asyncio.Event()

    async def worker(http: httpx.AsyncClient) -> None:
        while not pending.empty():
            request_id = pending.get_nowait()
            try:
                r = await http.post(
                    api.CREATE,
                    json={"amount": "1.00", "currency": "usd", "description": request_id},
                    headers={"X-Request-Id": request_id},
                )
            except httpx.HTTPError:
                sent.unanswered.append(request_id)
                continue
            sent.answered[request_id] = r.status_code
            if len(sent.answered) >= KILL_AFTER and not killed.is_set():
                killed.set()
                os.kill(stack.server.proc.pid, signal.SIGKILL)

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with stack.client(token, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(CONCURRENCY)))
    stack.server.proc.wait(timeout=10)
    assert killed.is_set()


async def interrupted_listed(stack: Stack, tenant: str) -> set[str]:
    """The request ids of the tenant's INTERRUPTED records, as audit.listEvents lists them."""
    auditor = await stack.key(tenant, "auditor", ("auditor",))
    async with stack.client(auditor) as http:
        r = await http.post(
            "/api/ops/audit.listEvents",
            json={"outcome": "INTERRUPTED", "operationKey": api.CREATE_OP["key"], "limit": 200},
        )
    assert r.status_code == 200, r.text
    return {event["requestId"] for event in r.json()["items"]}


async def test_no_effect_is_left_without_a_record_after_sigkill(
    database_url: str, localstripe: str, tmp_path: Path
) -> None:
    rounds: list[Round] = []
    listed: set[str] = set()
    for n in range(ROUNDS + 1):
        # Each server starts by recording what the previous one left as INTERRUPTED.
        logs = tmp_path / f"server{n}"
        logs.mkdir()
        async with Stack.start(logs, database_url, localstripe) as stack:
            if n == ROUNDS:
                listed = await interrupted_listed(stack, rounds[-1].tenant)
                break
            tenant, token = await api.new_user(stack, "crasher")
            rounds.append(sent := Round(tenant))
            await burst(stack, token, sent)
            assert stack.server.proc.returncode == -signal.SIGKILL
            assert len(sent.answered) >= KILL_AFTER and sent.unanswered
            assert set(sent.answered.values()) == {200}

    db = Database(database_url)  # the database as the last server left it
    try:
        async with db.connect() as conn:
            records = (
                await conn.execute(
                    select(audit_events.c.request_id, audit_events.c.outcome).where(
                        audit_events.c.operation_key == "billing.createInvoice",
                        audit_events.c.tenant_id.in_([r.tenant for r in rounds]),
                    )
                )
            ).all()
            stored = (
                await conn.execute(
                    select(invoices.c.tenant_id, invoices.c.description).where(
                        invoices.c.tenant_id.in_([r.tenant for r in rounds])
                    )
                )
            ).all()
        outcomes: dict[str, list[str]] = {}
        for request_id, outcome in records:
            outcomes.setdefault(request_id, []).append(outcome)
        unrecorded: dict[str, int] = {}
        for tenant, description in stored:
            if description not in outcomes:
                unrecorded[tenant] = unrecorded.get(tenant, 0) + 1
        per_round = [
            (len(r.answered), unrecorded.get(r.tenant, 0), len(r.unanswered)) for r in rounds
        ]
        assert not unrecorded, (
            f"{sum(unrecorded.values())} committed invoices have no audit record "
            f"(answered, unrecorded invoices, unanswered per round: {per_round})"
        )
        for sent in rounds:
            for request_id in sent.answered:
                assert outcomes.get(request_id) == ["OK"], (request_id, outcomes.get(request_id))
        assert all(len(found) == 1 for found in outcomes.values())
        last = rounds[-1]
        assert listed == {
            rid
            for rid in (*last.answered, *last.unanswered)
            if outcomes.get(rid) == ["INTERRUPTED"]
        }
        assert set(outcomes) <= {rid for r in rounds for rid in (*r.answered, *r.unanswered)}
        report = await verify_chain(db)
        assert report.ok, report
    finally:
        await db.dispose()
