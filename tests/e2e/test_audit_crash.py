"""Crash test: SIGKILL the server during a burst of commands. Every command whose response
reached the client has its audit record (it was committed before the response was sent),
exactly once, and the hash chain still verifies.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from audit.verify import verify_chain
from storage.database import Database
from storage.tables import audit_events, invoices
from tests.conftest import BACKENDS, _database_url
from tests.support import api
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

#: Commands sent in all; the server is killed once KILL_AFTER responses have arrived.
BURST = 300
KILL_AFTER = 60
CONCURRENCY = 24


@pytest.fixture(params=BACKENDS)
async def crash_stack(
    request: pytest.FixtureRequest, localstripe: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    """A server of its own: this test kills it."""
    async for url in _database_url(request.param, tmp_path):
        async with Stack.start(tmp_path, url, localstripe) as running:
            yield running


async def burst(stack: Stack, token: str) -> tuple[dict[str, int], list[str]]:
    """Send BURST createInvoice commands, CONCURRENCY at a time; SIGKILL the server once
    KILL_AFTER have answered. Returns the request ids that got a response (with its
    status) and those that did not."""
    answered: dict[str, int] = {}
    unanswered: list[str] = []
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
                    json={"amount": "1.00", "currency": "usd"},
                    headers={"X-Request-Id": request_id},
                )
            except httpx.HTTPError:
                unanswered.append(request_id)
                continue
            answered[request_id] = r.status_code
            if len(answered) >= KILL_AFTER and not killed.is_set():
                killed.set()
                os.kill(stack.server.proc.pid, signal.SIGKILL)

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with stack.client(token, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(CONCURRENCY)))
    stack.server.proc.wait(timeout=10)
    assert killed.is_set()
    return answered, unanswered


async def test_every_answered_command_survives_sigkill(crash_stack: Stack) -> None:
    stack = crash_stack
    tenant, token = await api.new_user(stack, "crasher")
    answered, unanswered = await burst(stack, token)
    assert stack.server.proc.returncode == -signal.SIGKILL
    assert len(answered) >= KILL_AFTER and unanswered, (len(answered), len(unanswered))
    assert set(answered.values()) == {200}

    # A fresh connection pool: the database as the next server would find it.
    db = Database(stack.database_url)
    try:
        async with db.connect() as conn:
            rows = (
                await conn.execute(
                    select(audit_events.c.request_id, func.count())
                    .where(audit_events.c.request_id.in_(list(answered)))
                    .group_by(audit_events.c.request_id)
                )
            ).all()
            paid_for = (
                await conn.execute(
                    select(func.count()).select_from(invoices).where(invoices.c.tenant_id == tenant)
                )
            ).scalar_one()
        counts: dict[str, int] = {request_id: n for request_id, n in rows}
        missing = sorted(set(answered) - set(counts))
        assert not missing, f"{len(missing)} answered commands have no audit record: {missing[:5]}"
        assert set(counts.values()) == {1}
        # Every answered command's invoice exists; some unanswered ones may have run too.
        assert len(answered) <= paid_for <= BURST
        report = await verify_chain(db)
        assert report.ok, report
    finally:
        await db.dispose()
