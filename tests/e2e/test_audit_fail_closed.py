"""The audit trail fails closed, and keeps inputs without their secrets.

In process (a pipeline over in-memory ports): a command never runs while the audit sink
is down; queries are refused or served by mode; a command whose durable record did not
commit answers UPSTREAM_UNAVAILABLE, not its outcome.

Against running servers: billing.capturePayment's record carries the caller's trace id
and its input with the payment method redacted, which shows nowhere (record, log,
response); with the audit table really gone (renamed away from a test connection), a
command is refused without running, a query is refused (``refuse``) or served with a
warning (``log-only``), and once the table is back the refusals' records arrive.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import text

from registry.audit_record import AuditRecord
from registry.invocation import Invocation
from registry.tracing import parse_traceparent
from tests.conftest import _database_url
from tests.support.api import CAPTURE, capture_body, create_invoice, new_user, rid
from tests.support.doubles import RUNS, MemoryIdempotency, Sink, make_pipeline
from tests.support.mcp_client import http_client, meta
from tests.support.stack import Stack

REDACTED = "[REDACTED]"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def traceparent() -> tuple[str, str]:
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


# -- in process ---------------------------------------------------------------------------


async def test_a_command_does_not_run_while_the_audit_store_is_down() -> None:
    sink = Sink(up=False)
    token = uuid.uuid4().hex
    outcome = await make_pipeline(sink).invoke(
        Invocation(key="test.shout", input={"text": token}, transport="rest")
    )
    assert token not in RUNS
    assert outcome.problem is not None
    assert (outcome.problem.code, outcome.problem.status) == ("UPSTREAM_UNAVAILABLE", 503)
    assert outcome.problem.retryable
    assert "audit store is unavailable" in outcome.problem.detail
    assert "not run" in outcome.problem.detail
    # The refusal is itself recorded, without waiting for a commit that cannot come.
    [record] = sink.records
    assert (record.outcome, record.decision, record.status) == (
        "UPSTREAM_UNAVAILABLE",
        "allow",
        503,
    )
    assert sink.durable == [False]


async def test_a_refused_command_frees_its_idempotency_key() -> None:
    sink = Sink(up=False)
    store = MemoryIdempotency()
    p = make_pipeline(sink, idempotency=store)
    outcome = await p.invoke(
        Invocation(key="test.shout", input={}, transport="rest", idempotency_key="k-1")
    )
    assert outcome.code == "UPSTREAM_UNAVAILABLE"
    assert store.events == ["release"]
    sink.up = True
    again = await p.invoke(
        Invocation(key="test.shout", input={}, transport="rest", idempotency_key="k-1")
    )
    assert again.ok and not again.replayed


@pytest.mark.parametrize("mode", ["refuse", "log-only"])
async def test_queries_while_the_store_is_down_follow_the_mode(mode: Any) -> None:
    sink = Sink(up=False)
    token = uuid.uuid4().hex
    with structlog.testing.capture_logs() as logs:
        outcome = await make_pipeline(sink, queries_when_unavailable=mode).invoke(
            Invocation(key="test.echo", input={"text": token}, transport="rest")
        )
    warnings = [e for e in logs if e["event"] == "invocation_while_audit_unavailable"]
    assert [(w["log_level"], w["mode"]) for w in warnings] == [("warning", mode)]
    if mode == "refuse":
        assert outcome.code == "UPSTREAM_UNAVAILABLE"
        assert token not in RUNS
    else:
        assert outcome.ok
        assert RUNS.count(token) == 1
    assert len(sink.records) == 1


async def test_while_the_store_is_up_nothing_changes() -> None:
    sink = Sink()
    with structlog.testing.capture_logs() as logs:
        outcome = await make_pipeline(sink).invoke(
            Invocation(key="test.shout", input={}, transport="rest")
        )
    assert outcome.ok
    assert sink.durable == [True]
    assert not [e for e in logs if e["event"] == "invocation_while_audit_unavailable"]


@pytest.mark.parametrize("with_key", [True, False])
async def test_a_command_whose_record_did_not_commit_does_not_claim_success(
    with_key: bool,
) -> None:
    sink = Sink(fail_durable=True)
    token = uuid.uuid4().hex
    store = MemoryIdempotency(sink.events)
    p = make_pipeline(sink, idempotency=store)
    key = "k-2" if with_key else None
    outcome = await p.invoke(
        Invocation(key="test.shout", input={"text": token}, transport="rest", idempotency_key=key)
    )
    assert RUNS.count(token) == 1  # it ran ...
    assert outcome.problem is not None  # ... but does not answer its output
    assert outcome.output is None
    assert (outcome.problem.code, outcome.problem.status) == ("UPSTREAM_UNAVAILABLE", 503)
    assert "ran" in outcome.problem.detail
    assert "audit record is not stored" in outcome.problem.detail
    # The record (queued by the sink) carries the real outcome.
    [record] = sink.records
    assert (record.outcome, record.status) == ("OK", 200)
    if with_key:
        assert "same Idempotency-Key" in outcome.problem.detail
        assert sink.events == ["complete", "audit"]  # settled before the audit write
        # The retry reads the real result from the idempotency store, without running.
        sink.fail_durable = False
        retry = await p.invoke(
            Invocation(
                key="test.shout", input={"text": token}, transport="rest", idempotency_key=key
            )
        )
        assert retry.ok and retry.replayed
        assert retry.output == {"text": token}
        assert RUNS.count(token) == 1
    else:
        assert "no Idempotency-Key" in outcome.problem.detail


class RefusingSink(Sink):
    """The store works but refuses a command's record (a database constraint, say)."""

    async def write(
        self,
        record: AuditRecord,
        *,
        durable: bool,
        wait: bool = False,
        closes: str | None = None,
    ) -> None:
        await super().write(record, durable=False)
        if durable:
            raise ValueError("the database refused the record")


async def test_a_command_whose_record_was_refused_says_so() -> None:
    token = uuid.uuid4().hex
    outcome = await make_pipeline(RefusingSink()).invoke(
        Invocation(key="test.shout", input={"text": token}, transport="rest")
    )
    assert RUNS.count(token) == 1
    assert outcome.problem is not None and outcome.problem.code == "UPSTREAM_UNAVAILABLE"
    assert "refused its record" in outcome.problem.detail
    assert "not stored yet" not in outcome.problem.detail


async def test_a_replay_is_served_while_the_store_is_down() -> None:
    sink = Sink()
    p = make_pipeline(sink)
    first = await p.invoke(
        Invocation(key="test.shout", input={"text": "r"}, transport="rest", idempotency_key="k-3")
    )
    sink.up = False
    again = await p.invoke(
        Invocation(key="test.shout", input={"text": "r"}, transport="rest", idempotency_key="k-3")
    )
    assert first.ok and again.ok and again.replayed
    assert again.output == first.output


# -- against running servers ----------------------------------------------------------------


def leaks(value: str, *texts: str) -> list[str]:
    return [t[:200] for t in texts if value in t]


@pytest.mark.e2e
async def test_capture_payment_is_traced_and_its_payment_method_redacted(stack: Stack) -> None:
    _, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice)
    trace_id, parent = traceparent()
    request_id = rid("redact")
    async with stack.client(alice) as http:
        r = await http.post(
            CAPTURE,
            json=capture_body(invoice),
            headers={"X-Request-Id": request_id, "traceparent": parent},
        )
    assert r.status_code == 200, r.text
    answered = parse_traceparent(r.headers.get("traceparent"))
    assert answered is not None
    assert answered.trace_id == trace_id
    assert answered.span_id != parent.split("-")[2]
    [row] = await stack.audit(request_id)
    assert row["trace_id"] == trace_id
    assert json.loads(row["input"]) == {
        "currency": "usd",
        "amount": "12.50",
        "invoiceId": invoice["id"],
        "paymentMethodId": REDACTED,
    }
    assert not [name for name, value in row.items() if "pm_card_visa" in str(value)]

    # A payment method of its own, so the log check is not confused by other tests:
    # refused by Stripe (valid input), and sent with an invalid amount (invalid input),
    # over REST, GraphQL and MCP.
    method = f"pm_card_secret_{uuid.uuid4().hex}"
    other = await create_invoice(stack, alice)
    sent: list[tuple[str, str]] = []  # (trace id, response text)
    async with stack.client(alice) as http:
        for body in (capture_body(other, method), capture_body(other, method, amount="abc")):
            tid, tp = traceparent()
            r = await http.post(CAPTURE, json=body, headers={"traceparent": tp})
            assert r.status_code == 422, r.text
            assert r.headers["traceparent"].split("-")[1] == tid
            sent.append((tid, r.text))
    tid, tp = traceparent()
    mutation = (
        "mutation($input: CapturePaymentInput!) "
        "{ billing_capturePayment(input: $input) { transactionId } }"
    )
    async with stack.client(alice) as http:
        r = await http.post(
            "/graphql",
            json={"query": mutation, "variables": {"input": capture_body(other, method)}},
            headers={"traceparent": tp},
        )
    assert r.json()["errors"][0]["extensions"]["code"] == "PAYMENT_METHOD_INVALID", r.text
    assert r.headers["traceparent"].split("-")[1] == tid
    sent.append((tid, r.text))
    tid, tp = traceparent()
    async with http_client(stack.url + "/mcp", alice) as client:
        result = await client.call_tool(
            "billing_capturePayment", capture_body(other, method), meta=meta(traceparent=tp)
        )
    assert result.is_error
    sent.append((tid, str(result.model_dump())))

    for tid, answer in sent:
        rows = await rows_of_trace(stack, tid)
        assert len(rows) == 1, (tid, rows)
        assert json.loads(rows[0]["input"])["paymentMethodId"] == REDACTED
        assert not leaks(method, answer, *(str(v) for v in rows[0].values()))
    assert not leaks(method, stack.server.log())


async def rows_of_trace(stack: Stack, trace_id: str, wait: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait
    while True:
        async with stack.db.connect() as conn:
            found = await conn.execute(
                text("SELECT * FROM audit_events WHERE trace_id = :t"), {"t": trace_id}
            )
            rows = [dict(r) for r in found.mappings().all()]
        if rows or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


#: The test-only operations (``testing.slowCommand`` counts its runs, ``testing.runs``
#: reads the count) and a short wait for a durable audit record.
FAIL_CLOSED_ENV: dict[str, str | None] = {
    "SPECOPS_EXTRA_OPERATIONS": "tests.support.extra_ops:install",
    "SPECOPS_AUDIT_DURABLE_TIMEOUT_SECONDS": "1",
    "SPECOPS_IDENTITY_CACHE_SECONDS": "0",
}
SLOW_COMMAND = "/api/ops/testing.slowCommand"
RUNS_QUERY = "/api/ops/testing.runs"
CREATE = "/api/ops/billing.createInvoice"
LIST = "/api/ops/billing.listInvoices"


#: A database of ``backend`` (skipped where PostgreSQL is absent), as a context manager.
database_url = asynccontextmanager(_database_url)


@pytest.fixture(scope="module", params=BACKENDS)
async def servers(
    request: pytest.FixtureRequest, localstripe: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, Stack]]:
    """Two servers on one database: queries refused while the audit store is down (the
    default), and ``log-only``."""
    tmp = tmp_path_factory.mktemp(f"fail-closed-{request.param}")
    async with (
        database_url(request.param, tmp) as url,
        Stack.start(tmp, url, localstripe, env=FAIL_CLOSED_ENV) as refusing,
        Stack.start(
            tmp,
            url,
            localstripe,
            env={**FAIL_CLOSED_ENV, "SPECOPS_AUDIT_QUERIES_WHEN_UNAVAILABLE": "log-only"},
        ) as lenient,
    ):
        yield refusing, lenient


async def move_audit_table(stack: Stack, source: str, target: str) -> None:
    async with stack.db.begin() as conn:
        if not stack.db.is_sqlite:
            await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        await conn.execute(text(f"ALTER TABLE {source} RENAME TO {target}"))


async def until(check: Any, wait: float = 10.0) -> Any:
    """Call ``check`` until it returns something truthy (or ``wait`` seconds pass)."""
    deadline = time.monotonic() + wait
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


def problem(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.e2e
async def test_fail_closed_while_the_audit_table_is_gone(servers: tuple[Stack, Stack]) -> None:
    refusing, lenient = servers
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    admin = await refusing.key(tenant, "admin", ("admin",))
    user = await refusing.key(tenant, "alice")
    ran, refused = f"ran-{uuid.uuid4().hex}", f"refused-{uuid.uuid4().hex}"
    key = f"k-{uuid.uuid4().hex}"
    ids = {name: rid(name) for name in ("ran", "refused", "create", "query", "lenient")}

    await move_audit_table(refusing, "audit_events", "audit_events_away")
    try:
        async with refusing.client(admin) as http:
            # The first command finds the store healthy as far as the server knows: it
            # runs, its durable record fails, and it must not answer success.
            r = await http.post(
                SLOW_COMMAND,
                json={"token": ran, "seconds": 0},
                headers={"X-Request-Id": ids["ran"], "Idempotency-Key": key},
            )
            assert r.status_code == 503, r.text
            body = problem(r)
            assert body["code"] == "UPSTREAM_UNAVAILABLE"
            assert "ran" in body["detail"] and "Idempotency-Key" in body["detail"]
            assert "output" not in body and "runId" not in r.text

            # Now the server knows: a command is refused without running.
            r = await http.post(
                SLOW_COMMAND,
                json={"token": refused, "seconds": 0},
                headers={"X-Request-Id": ids["refused"]},
            )
            assert r.status_code == 503, r.text
            assert problem(r)["code"] == "UPSTREAM_UNAVAILABLE"
            assert "not run" in problem(r)["detail"]
            assert r.headers.get("retry-after") == "1"
        async with refusing.client(user) as http:
            r = await http.post(
                CREATE,
                json={"amount": "9.99", "currency": "usd", "description": refused},
                headers={"X-Request-Id": ids["create"]},
            )
            assert r.status_code == 503, r.text
            # ... and so is a query (mode refuse).
            r = await http.get(LIST, headers={"X-Request-Id": ids["query"]})
            assert r.status_code == 503, r.text
            assert "query was not run" in problem(r)["detail"]

        # The log-only server serves queries once it knows the store is down, and says so.
        async with lenient.client(user) as http:

            async def warned() -> bool:
                r = await http.get(LIST, headers={"X-Request-Id": ids["lenient"]})
                assert r.status_code == 200, r.text
                return "invocation_while_audit_unavailable" in lenient.server.log()

            assert await until(warned), lenient.server.log()[-3000:]
        # The pipeline's line names the mode (the writer logs the outage itself too).
        lines = [
            event
            for event in map(json.loads, re.findall(r"^\{.*\}$", lenient.server.log(), re.M))
            if event.get("event") == "invocation_while_audit_unavailable"
        ]
        assert lines, lenient.server.log()[-3000:]
        assert {(e["level"], e["mode"], e["kind"]) for e in lines} == {
            ("warning", "log-only", "query")
        }
        assert "invocation_while_audit_unavailable" in refusing.server.log()
    finally:
        await move_audit_table(refusing, "audit_events_away", "audit_events")

    # Back: the refusals' records, queued meanwhile, arrive; the command that ran carries
    # its real outcome; the refused command never ran and changed nothing.
    for name, outcome in (
        ("ran", "OK"),
        ("refused", "UPSTREAM_UNAVAILABLE"),
        ("create", "UPSTREAM_UNAVAILABLE"),
        ("query", "UPSTREAM_UNAVAILABLE"),
    ):
        rows = await refusing.audit(ids[name], wait=15)
        assert [row["outcome"] for row in rows] == [outcome], (name, rows)
    [queued] = await refusing.audit(ids["refused"])
    assert queued["decision"] == "allow"
    assert json.loads(queued["input"])["token"] == REDACTED

    async with refusing.client(admin) as http:

        async def runs(token: str) -> int:
            r = await http.get(RUNS_QUERY, params={"token": token})
            assert r.status_code == 200, r.text
            count: int = r.json()["runs"]
            return count

        assert await until(lambda: _ok(http)), "the server did not see the store come back"
        assert await runs(ran) == 1
        assert await runs(refused) == 0
        # Retrying with the same key reads the real result, without running again.
        r = await http.post(
            SLOW_COMMAND, json={"token": ran, "seconds": 0}, headers={"Idempotency-Key": key}
        )
        assert r.status_code == 200, r.text
        assert r.headers.get("idempotent-replayed") == "true"
        assert r.json()["runs"] == 1
    async with refusing.client(user) as http:
        r = await http.get(LIST)
        assert r.status_code == 200, r.text
        assert not [i for i in r.json()["items"] if i.get("description") == refused]


async def _ok(http: httpx.AsyncClient) -> bool:
    r = await http.get(RUNS_QUERY, params={"token": "probe"})
    return r.status_code == 200
