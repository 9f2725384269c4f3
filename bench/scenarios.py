"""The measured scenarios: the same request shape for ours and for the baseline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from bench.baseline_app import BENCH_ACTOR
from bench.servers import BenchError
from bench.wrk import WrkRequest

JSON_HEADERS = (("Content-Type", "application/json"),)


@dataclass(frozen=True)
class Target:
    """One side of a scenario: the request, and what its answer must contain."""

    request: WrkRequest
    expected_json: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """A request measured against our server and against the baseline."""

    name: str
    description: str
    ours: Target
    baseline: Target


def _target(
    path: str,
    body: dict[str, Any],
    status: int,
    expected_json: dict[str, Any],
    token: str | None = None,
) -> Target:
    headers = JSON_HEADERS + ((("Authorization", f"Bearer {token}"),) if token else ())
    request = WrkRequest("POST", path, json.dumps(body, separators=(",", ":")), headers, status)
    return Target(request, expected_json)


def scenarios(token: str) -> list[Scenario]:
    """Every scenario, with ``token`` as our bearer credentials."""
    ping_body = {"message": "hi"}
    ping_answer = {"message": "hi", "actorId": BENCH_ACTOR, "tenantId": BENCH_ACTOR}
    invalid_capture = {
        "invoiceId": "inv_x",
        "amount": -1,
        "currency": "usd",
        "paymentMethodId": "pm_x",
    }
    return [
        Scenario(
            "ping",
            "trivial query: system.ping",
            ours=_target("/api/ops/system.ping", ping_body, 200, ping_answer, token),
            baseline=_target("/ping", ping_body, 200, ping_answer),
        ),
        Scenario(
            "capture-invalid",
            "billing.capturePayment, input validation fails (422)",
            ours=_target(
                "/api/ops/billing.capturePayment",
                invalid_capture,
                422,
                {"code": "INVALID_INPUT"},
                token,
            ),
            baseline=_target("/capture", invalid_capture, 422, {}),
        ),
    ]


def preflight(base_url: str, target: Target) -> None:
    """Send one request and check the status and body, before measuring anything."""
    request = target.request
    url = base_url + request.path
    try:
        answer = httpx.request(
            request.method, url, content=request.body, headers=dict(request.headers), timeout=10
        )
    except httpx.HTTPError as exc:
        raise BenchError(f"{url}: {exc}") from exc
    if answer.status_code != request.expected_status:
        raise BenchError(
            f"{url} answered {answer.status_code}, expected {request.expected_status}: "
            f"{answer.text[:500]}"
        )
    try:
        body = answer.json()
    except ValueError as exc:
        raise BenchError(f"{url} answered no JSON: {answer.text[:500]}") from exc
    wrong = {k: body.get(k) for k, v in target.expected_json.items() if body.get(k) != v}
    if wrong:
        raise BenchError(f"{url} answered {wrong}, expected {target.expected_json}")
