"""``specops serve`` as a real process: it migrates an empty database on start, serves the
probes and the OpenAPI document, answers problems for unknown paths, starts without Stripe
configured, and falls back to the embedded SQLite default when DATABASE_URL is unset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from policy.api_keys import ApiKeyStore
from storage import migrate
from storage.database import Database
from storage.tables import metadata
from tests.support.databases import sqlite_url
from tests.support.processes import ROOT, Running, free_port, start_specops, wait_for

pytestmark = pytest.mark.e2e

OPERATION_KEYS = (
    "billing.capturePayment",
    "billing.createInvoice",
    "billing.getInvoice",
    "billing.listInvoices",
    "system.ping",
)
#: Settings a developer's shell might carry; every server here decides them explicitly.
CLEARED = (
    "DATABASE_URL",
    "SPECOPS_DATABASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "SPECOPS_EXTRA_OPERATIONS",
    "SPECOPS_API_KEY",
)
STRIPE_TEST_KEY = "sk_test_specops_serve_0123456789"


def launch(
    tmp: Path,
    env: dict[str, str],
    *,
    cwd: Path = ROOT,
    args: Sequence[str] = (),
    ready_path: str = "/healthz",
) -> Running:
    """``python -m specops.cli serve`` on a free port, with CLEARED unset unless given."""
    port = free_port()
    log_path = tmp / f"specops-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    full_env.update(
        {"SPECOPS_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "specops.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        cwd=cwd,
        env=full_env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    running = Running(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_for(f"{running.url}{ready_path}", proc, timeout=60)
    except BaseException:
        running.stop()
        raise RuntimeError(f"specops serve did not start:\n{running.log()}") from None
    return running


def stop_cleanly(server: Running) -> None:
    """SIGTERM, then the process shuts down gracefully, with no traceback in its log.
    (uvicorn re-raises the signal after its graceful shutdown, hence -SIGTERM.)"""
    server.stop()
    assert server.proc.returncode in (0, -signal.SIGTERM), server.log()
    assert "Traceback" not in server.log(), server.log()


async def revision_of(url: str) -> str | None:
    db = Database(url)
    try:
        return await migrate.current_revision(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def empty_sqlite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("serve")
    assert not (tmp / "specops.db").exists()
    return tmp, sqlite_url(tmp)


@pytest.fixture(scope="module")
def server(empty_sqlite: tuple[Path, str]) -> Iterator[Running]:
    """``serve`` on an EMPTY SQLite database (through the shared helper), Stripe key set."""
    tmp, url = empty_sqlite
    with pytest.MonkeyPatch.context() as mp:
        for name in CLEARED:
            mp.delenv(name, raising=False)
        running = start_specops(tmp, {"DATABASE_URL": url, "STRIPE_SECRET_KEY": STRIPE_TEST_KEY})
    try:
        yield running
    finally:
        stop_cleanly(running)


# -- the first server, on an empty database -------------------------------------------------


async def test_serve_migrates_an_empty_database_and_is_ready(
    server: Running, empty_sqlite: tuple[Path, str]
) -> None:
    tmp, url = empty_sqlite
    assert (tmp / "specops.db").exists()
    assert await revision_of(url) == migrate.head_revision()
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_healthz(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_openapi_document_lists_every_operation(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/api/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    for key in OPERATION_KEYS:
        assert f"/api/ops/{key}" in doc["paths"], key
        assert f"/api/ops/{key}/v1.0.0" in doc["paths"], key
    assert "post" in doc["paths"]["/api/ops/billing.capturePayment"]
    assert "get" in doc["paths"]["/api/ops/system.ping"]
    retired = doc["paths"]["/api/ops/keys.listKeys/v1.0.0"]["post"]
    assert retired["deprecated"] is True
    assert {"Deprecation", "Link"} <= set(retired["responses"]["200"]["headers"])
    assert "Sunset" not in retired["responses"]["200"]["headers"]  # 1.0.0 names no sunset
    current = doc["paths"]["/api/ops/keys.listKeys/v1.1.0"]["post"]
    assert "deprecated" not in current
    assert not {"Deprecation", "Link"} & set(current["responses"]["200"]["headers"])


async def test_unknown_path_is_a_404_problem(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/nope", headers={"X-Request-Id": "test-serve-nope"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert (body["status"], body["code"]) == (404, "OP_NOT_FOUND")
    assert body["type"] == "https://specops.dev/problems/op-not-found"
    assert body["requestId"] == r.headers["x-request-id"] == "test-serve-nope"


async def test_unknown_operation_is_a_404_problem(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/api/ops/billing.nope")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "OP_NOT_FOUND"


async def test_wrong_method_on_a_probe_is_a_405_problem(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/healthz")
    assert r.status_code == 405
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "MALFORMED_REQUEST"


async def test_anonymous_call_is_refused(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/api/ops/system.ping")
    assert r.status_code == 401
    assert r.json()["code"] == "UNAUTHENTICATED"


# -- a second server, without Stripe configured ---------------------------------------------


async def test_second_server_without_stripe_starts_and_names_the_setting(
    server: Running, empty_sqlite: tuple[Path, str]
) -> None:
    """Started on the already-migrated database (its migration is a no-op) and with no
    STRIPE_SECRET_KEY at all: it serves, and payments say which setting is missing."""
    tmp, url = empty_sqlite
    second = launch(tmp, {"DATABASE_URL": url})
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "ready"

            db = Database(url)
            try:
                _, token = await ApiKeyStore(db).create(
                    tenant_id="acme-serve", actor_id="alice", roles=("user",), kind="user"
                )
            finally:
                await db.dispose()
            auth = {"Authorization": f"Bearer {token}"}

            ping = await http.get("/api/ops/system.ping", headers=auth)
            assert ping.status_code == 200, ping.text
            assert ping.json()["actorId"] == "alice"

            invoice = await http.post(
                "/api/ops/billing.createInvoice",
                json={"amount": "12.50", "currency": "usd"},
                headers=auth,
            )
            assert invoice.status_code == 200, invoice.text
            r = await http.post(
                "/api/ops/billing.capturePayment",
                json={
                    "invoiceId": invoice.json()["id"],
                    "amount": "12.50",
                    "currency": "usd",
                    "paymentMethodId": "pm_card_visa",
                },
                headers=auth,
            )
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["code"] == "UPSTREAM_UNAVAILABLE"
        assert "STRIPE_SECRET_KEY" in body["detail"]
        # the first server, on the same database, is unaffected
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/readyz")).status_code == 200
    finally:
        stop_cleanly(second)
    assert STRIPE_TEST_KEY not in second.log()


# -- startup options and defaults -----------------------------------------------------------


async def test_serve_no_migrate_on_an_empty_database_is_not_ready(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    server = launch(tmp_path, {"DATABASE_URL": url}, args=["--no-migrate"])
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = await http.get("/readyz")
            health = await http.get("/healthz")
        assert health.status_code == 200
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "checks": {"database": "schema not at head"},
        }
    finally:
        stop_cleanly(server)
    assert await revision_of(url) is None


async def test_serve_defaults_to_embedded_sqlite_under_var(tmp_path: Path) -> None:
    """README: with DATABASE_URL unset, ``serve`` uses ``var/specops.db`` (relative to the
    working directory), creating and migrating it."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    server = launch(tmp_path, {}, cwd=workdir)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
    finally:
        stop_cleanly(server)
    database = workdir / "var" / "specops.db"
    assert database.is_file()
    url = sqlite_url(database.parent)
    assert await revision_of(url) == migrate.head_revision()
    db = Database(url)
    try:
        async with db.connect() as conn:
            tables = await conn.run_sync(lambda c: set(c.dialect.get_table_names(c)))
    finally:
        await db.dispose()
    assert set(metadata.tables) <= tables
