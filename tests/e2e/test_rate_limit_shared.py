"""Rate limits across server processes: shared through Redis, per process in memory.

Two ``specops serve`` processes on one database, each with the test-only operations
(``testing.limited``: two calls a minute per actor). With
``SPECOPS_RATE_LIMIT_STORAGE=async+redis://...`` they count every actor's calls together;
with the default ``async+memory://`` each process counts its own.

Every test uses a tenant of its own, so its Redis keys (``testing.limited|actor|<tenant>/
<user>``) cannot collide with another run's; they expire with their one-minute window.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import TESTING_ENV
from tests.support.api import assert_problem, headers, new_tenant, one_audit, rid
from tests.support.databases import sqlite_url
from tests.support.stack import Stack

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
#: A database number of its own, away from the default 0.
REDIS_DB = 11
REDIS_STORAGE = f"async+redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
LIMITED = "/api/ops/testing.limited"


def redis_unavailable() -> str | None:
    """Why Redis cannot be used at REDIS_HOST:REDIS_PORT, or None when it answers PING."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1.0) as s:
            s.settimeout(1.0)
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError as exc:
        return f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}"
    if not reply.startswith(b"+PONG"):
        return f"{REDIS_HOST}:{REDIS_PORT} did not answer PING like Redis: {reply!r}"
    return None


@asynccontextmanager
async def two_servers(tmp: Path, storage: str, localstripe: str) -> AsyncIterator[list[Stack]]:
    """Two server processes on one SQLite database, both with ``storage`` for rate limits.
    Started one after the other, so only the first migrates a new database."""
    url = sqlite_url(tmp)
    env: Mapping[str, str | None] = {**TESTING_ENV, "SPECOPS_RATE_LIMIT_STORAGE": storage}
    async with AsyncExitStack() as stacks:
        started = []
        for n in range(2):
            where = tmp / f"server-{n}"
            where.mkdir()
            started.append(
                await stacks.enter_async_context(Stack.start(where, url, localstripe, env=env))
            )
        yield started


async def call(stack: Stack, token: str, request_id: str) -> httpx.Response:
    async with stack.client(token) as http:
        return await http.post(LIMITED, json={"token": rid()}, headers=headers(request_id))


async def assert_refused(
    stack: Stack, answer: httpx.Response, request_id: str, tenant: str
) -> None:
    """A 429 RATE_LIMITED with a Retry-After of 1 to 60 seconds, audited as an allowed
    call the limit refused."""
    assert_problem(answer, 429, "RATE_LIMITED", request_id=request_id, retryable=True)
    retry_after = answer.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60, retry_after
    await one_audit(
        stack,
        request_id,
        outcome="RATE_LIMITED",
        status=429,
        decision="allow",
        tenant_id=tenant,
        actor_id="root",
    )


async def test_redis_storage_shares_the_limit_between_processes(
    tmp_path: Path, localstripe: str
) -> None:
    reason = redis_unavailable()
    if reason:
        pytest.skip(reason)
    async with two_servers(tmp_path, REDIS_STORAGE, localstripe) as (a, b):
        tenant = new_tenant()
        root = await a.key(tenant, "root", ("admin",))
        # The two allowed calls, one on each server.
        for stack in (a, b):
            request_id = rid()
            answer = await call(stack, root, request_id)
            assert answer.status_code == 200, answer.text
            await one_audit(stack, request_id, outcome="OK", status=200, decision="allow")
        # The third and fourth, on either server, are over the shared limit.
        for stack in (a, b):
            request_id = rid()
            await assert_refused(stack, await call(stack, root, request_id), request_id, tenant)
        # Counted per actor: another admin of the same tenant still has its two calls.
        other = await a.key(tenant, "root2", ("admin",))
        for stack in (b, a):
            answer = await call(stack, other, rid())
            assert answer.status_code == 200, answer.text
        request_id = rid()
        answer = await call(b, other, request_id)
        assert_problem(answer, 429, "RATE_LIMITED", request_id=request_id, retryable=True)


async def test_memory_storage_limits_each_process_on_its_own(
    tmp_path: Path, localstripe: str
) -> None:
    async with two_servers(tmp_path, "async+memory://", localstripe) as (a, b):
        tenant = new_tenant()
        root = await a.key(tenant, "root", ("admin",))
        answers = [await call(a, root, rid()) for _ in range(2)]
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        request_id = rid()
        await assert_refused(a, await call(a, root, request_id), request_id, tenant)
        # The other process has counted none of those calls: its own two, then refused.
        answers = [await call(b, root, rid()) for _ in range(2)]
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        request_id = rid()
        await assert_refused(b, await call(b, root, request_id), request_id, tenant)
