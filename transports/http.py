"""What every HTTP transport reads from a request and writes to a response."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response

from registry.invocation import Outcome

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="specops"'


def bearer_credentials(request: Request) -> str | None:
    """The bearer token; ``""`` (always refused) for any other Authorization value."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def json_bytes(data: Any) -> bytes:
    return to_json(data)


def problem_response(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    return Response(json_bytes(body), status, headers=headers, media_type=PROBLEM_JSON)


def outcome_response(outcome: Outcome) -> Response:
    """200 with the output, or the problem document with its status and headers."""
    headers = {"X-Request-Id": outcome.request_id}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    if outcome.problem is None:
        return Response(json_bytes(outcome.output), 200, headers, "application/json")
    headers.update(outcome.problem.headers)
    if outcome.problem.status == 401:
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    return problem_response(outcome.problem_body(), outcome.problem.status, headers)
