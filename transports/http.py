"""What every HTTP transport reads from a request and writes to a response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope, Send

from registry.invocation import Outcome

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="specops"'

#: The request headers the pipeline's transports read, by their ASGI (lowercase) names.
_WANTED = {
    b"authorization": "authorization",
    b"content-type": "content_type",
    b"content-length": "content_length",
    b"idempotency-key": "idempotency_key",
    b"x-request-id": "request_id",
    b"traceparent": "traceparent",
}


@dataclass(slots=True)
class RequestHeaders:
    """The headers a call needs, read from an ASGI scope in one pass (the first of
    repeated headers wins, as with Starlette's ``headers.get``)."""

    authorization: str | None = None
    content_type: str | None = None
    content_length: str | None = None
    idempotency_key: str | None = None
    request_id: str | None = None
    traceparent: str | None = None

    @classmethod
    def of(cls, scope: Scope) -> RequestHeaders:
        found = cls()
        for name, value in scope["headers"]:
            field = _WANTED.get(name)
            if field is not None and getattr(found, field) is None:
                setattr(found, field, value.decode("latin-1"))
        return found

    def declares_more_than(self, limit: int) -> bool:
        """Whether Content-Length announces a body over ``limit`` bytes."""
        declared = self.content_length
        return declared is not None and declared.isdigit() and int(declared) > limit


def credentials_from(authorization: str | None) -> str | None:
    """The bearer token of an Authorization value; ``""`` (always refused) for any other
    scheme or an empty token, None without the header."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


def bearer_credentials(request: Request) -> str | None:
    """The bearer token of a Starlette request (see ``credentials_from``)."""
    return credentials_from(request.headers.get("authorization"))


def client_of(scope: Scope) -> str | None:
    """The client's address, from an ASGI scope."""
    client = scope.get("client")
    return client[0] if client else None


def client_address(request: Request) -> str | None:
    """The client's address, from a Starlette request."""
    return client_of(request.scope)


def json_bytes(data: Any) -> bytes:
    return to_json(data)


def problem_response(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    return Response(json_bytes(body), status, headers=headers, media_type=PROBLEM_JSON)


def outcome_parts(outcome: Outcome) -> tuple[int, dict[str, str], bytes, str]:
    """Status, headers, body and media type answering ``outcome``: 200 with the output,
    or the problem document with its status and headers."""
    headers = {"X-Request-Id": outcome.request_id}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    if outcome.problem is None:
        return 200, headers, json_bytes(outcome.output), "application/json"
    headers.update(outcome.problem.headers)
    if outcome.problem.status == 401:
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    return outcome.problem.status, headers, json_bytes(outcome.problem_body()), PROBLEM_JSON


async def send_response(
    send: Send, status: int, headers: dict[str, str], body: bytes, media_type: str
) -> None:
    """Answer with raw ASGI messages: ``headers``, then the body's length and type."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append((b"content-type", media_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_outcome(send: Send, outcome: Outcome, extra: dict[str, str] | None = None) -> None:
    """Answer ``outcome`` (see ``outcome_parts``) with raw ASGI messages, plus ``extra``
    headers."""
    status, headers, body, media_type = outcome_parts(outcome)
    if extra:
        headers.update(extra)
    await send_response(send, status, headers, body, media_type)
