"""What every HTTP transport reads from a request and writes to a response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from registry.errors import Problem
from registry.ids import request_id_from
from registry.invocation import Outcome
from registry.tracing import trace_id_from

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="specops"'

#: The request headers the transports read, by their ASGI (lowercase) names.
_WANTED = {
    b"authorization": "authorization",
    b"content-type": "content_type",
    b"content-length": "content_length",
    b"idempotency-key": "idempotency_key",
    b"x-request-id": "request_id",
    b"traceparent": "traceparent",
}


class ClientGone(Exception):
    """The client disconnected before its body arrived: there is no one to answer."""


@dataclass(frozen=True, slots=True)
class HttpCaller:
    """Who calls and how, as one HTTP request says it.

    ``credentials``: the bearer token (``""``, always refused, for another scheme or an
    empty token; None without the header). ``request_id``: the caller's ``X-Request-Id``
    when it is sane, else a new one. ``trace_id``: that of a valid ``traceparent``, else
    None (whoever needs one mints it).
    """

    credentials: str | None
    client: str | None
    request_id: str
    traceparent: str | None
    trace_id: str | None
    idempotency_key: str | None
    content_type: str | None
    content_length: str | None

    def declares_more_than(self, limit: int) -> bool:
        """Whether Content-Length announces a body over ``limit`` bytes."""
        declared = self.content_length
        return declared is not None and declared.isdigit() and int(declared) > limit


def read_caller(scope: Scope) -> HttpCaller:
    """The caller of an HTTP request, from its ASGI scope in one pass over the headers
    (the first of repeated headers wins, as with Starlette's ``headers.get``)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        field = _WANTED.get(name)
        if field is not None and field not in found:
            found[field] = value.decode("latin-1")
    client = scope.get("client")
    traceparent = found.get("traceparent")
    return HttpCaller(
        credentials=credentials_from(found.get("authorization")),
        client=client[0] if client else None,
        request_id=request_id_from(found.get("request_id")),
        traceparent=traceparent,
        trace_id=trace_id_from(traceparent),
        idempotency_key=found.get("idempotency_key"),
        content_type=found.get("content_type"),
        content_length=found.get("content_length"),
    )


def credentials_from(authorization: str | None) -> str | None:
    """The bearer token of an Authorization value; ``""`` (always refused) for any other
    scheme or an empty token, None without the header."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


async def read_body(receive: Receive, caller: HttpCaller, limit: int) -> bytes | None:
    """The request body, or None once it exceeds ``limit`` bytes (declared or sent).
    Raises ``ClientGone`` when the client disconnects first."""
    if caller.declares_more_than(limit):
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for an app downstream of ``read_body``: the body read, in one message,
    then whatever the server sends next (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


def json_bytes(data: Any) -> bytes:
    return to_json(data)


def problem_response(problem: Problem, request_id: str, headers: dict[str, str]) -> Response:
    """``problem`` as a problem document of its status, with ``headers`` and its
    ``X-Request-Id``; for a refusal that belongs to no operation."""
    body = json_bytes(problem.as_dict(requestId=request_id))
    headers = {**problem.headers, **headers, "X-Request-Id": request_id}
    return Response(body, problem.status, headers=headers, media_type=PROBLEM_JSON)


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
