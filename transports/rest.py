"""REST: ``POST /api/ops/<key>`` (queries also ``GET``), pinned at ``/api/ops/<key>/v<semver>``.

This module only parses HTTP into an ``Invocation`` and renders the ``Outcome``; the
pipeline does everything else. A ``traceparent`` header (W3C trace context) names the
invocation's trace; the response's ``traceparent`` continues it (same trace id, a new span
id), or starts the one the pipeline made up.

The app (``transports.app``) hands it every request whose path ``path_params`` matches; it
answers every method, a 405 included (``allowed_methods``).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any

import structlog
from pydantic_core import from_json
from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send

from registry.errors import CATALOGUE, Issue, OperationError, Problem
from registry.ids import new_request_id, new_trace_id
from registry.invocation import Invocation, OperationRef, Outcome
from registry.pipeline import Pipeline
from registry.registry import Operation
from registry.tracing import response_traceparent
from transports.http import ClientGone, HttpCaller, read_body, read_caller, send_outcome

log = structlog.get_logger("specops.rest")

MAX_BODY_BYTES = 1024 * 1024
PREFIX = "/api/ops/"


def _not_an_object() -> OperationError:
    """A JSON ``null`` input: a value that is not an object, not a missing input."""
    return CATALOGUE.INVALID_INPUT(
        "Input must be a JSON object",
        issues=(Issue("", "object_type", "Input should be an object"),),
    )


def _too_large() -> OperationError:
    return CATALOGUE.PAYLOAD_TOO_LARGE(f"Bodies are limited to {MAX_BODY_BYTES} bytes")


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _decode(text: str | bytes, what: str) -> tuple[Any, OperationError | None]:
    """JSON (UTF-8, as RFC 8259 requires between systems), parsed by pydantic's parser
    (see docs/performance.md)."""
    try:
        data = from_json(text)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            return None, CATALOGUE.MALFORMED_REQUEST(f"{what} nests too deeply")
        return None, CATALOGUE.MALFORMED_REQUEST(f"{what} is not valid JSON")
    return (None, _not_an_object()) if data is None else (data, None)


def query_input(query_string: bytes) -> tuple[Any, OperationError | None]:
    """A GET's input: ``?input=<json>``, or the query parameters as fields."""
    params = QueryParams(query_string)
    if "input" in params:
        return _decode(params["input"], "The input parameter")
    data: dict[str, Any] = {}
    for name in params:
        values = params.getlist(name)
        data[name] = values if len(values) > 1 else values[0]
    return data, None


def body_input(body: bytes | None, content_type: str | None) -> tuple[Any, OperationError | None]:
    """A POST's input: the JSON body (an empty body counts as ``{}``; white space alone is
    not JSON, and is refused as the OpenAPI document says)."""
    if body is None:
        return None, _too_large()
    if not body:
        return {}, None
    if not _is_json(content_type):
        return None, CATALOGUE.UNSUPPORTED_MEDIA_TYPE("Send the input as application/json")
    return _decode(body, "The body")


def retirement_headers(ref: OperationRef) -> dict[str, str]:
    """What a call of a retired version is told besides its answer: ``Deprecation``
    (RFC 9745) since when it is retired, ``Sunset`` (RFC 8594) when it stops working, and
    ``Link`` to the operation that replaces it (``rel="successor-version"``, RFC 5829):
    its pinned path, or its unversioned one when the successor names no version."""
    headers: dict[str, str] = {}
    if ref.since is not None:
        headers["Deprecation"] = f"@{int(_midnight(ref.since).timestamp())}"
    if ref.sunset is not None:
        headers["Sunset"] = format_datetime(_midnight(ref.sunset), usegmt=True)
    if ref.successor is not None:
        key, version = ref.successor
        path = f"{PREFIX}{key}" if version is None else f"{PREFIX}{key}/v{version}"
        headers["Link"] = f'<{path}>; rel="successor-version"'
    return headers


def _midnight(day: date) -> datetime:
    """The start of ``day`` in UTC."""
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def path_params(path: str) -> dict[str, str] | None:
    """``key`` (and ``version``) of ``/api/ops/<key>[/v<version>]``, as Starlette's routes
    would match them; None for any other path."""
    if not path.startswith(PREFIX):
        return None
    parts = path[len(PREFIX) :].split("/")
    if len(parts) == 1 and parts[0]:
        return {"key": parts[0]}
    if len(parts) == 2 and parts[0] and len(parts[1]) > 1 and parts[1][0] == "v":
        return {"key": parts[0], "version": parts[1][1:]}
    return None


def allowed_methods(operation: Operation | None) -> str:
    """The ``Allow`` of an operation's paths: POST for a command, GET and POST for a query
    or an unknown key (which the pipeline answers OP_NOT_FOUND)."""
    return "POST" if operation is not None and operation.contract.kind == "command" else "GET, POST"


class RestTransport:
    """The REST endpoint for every operation of the pipeline's registry, as an ASGI app."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, params: dict[str, str]
    ) -> None:
        """Answer one request for the operation the path parameters name."""
        try:
            await self.serve(scope, receive, send, params)
        except ClientGone:
            return
        except Exception:  # a bug of ours: answer as Starlette's error middleware would
            log.exception("rest_endpoint_failure", path=scope["path"])
            error = Outcome(new_request_id(), None, problem=Problem.of(CATALOGUE.INTERNAL()))
            with contextlib.suppress(Exception):  # unless the response had started
                await send_outcome(send, error)

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, params: dict[str, str]
    ) -> None:
        caller = read_caller(scope)
        method = scope["method"]
        operation = self.pipeline.registry.resolve(params["key"], params.get("version"))
        allow = allowed_methods(operation)
        methods = allow.split(", ")
        # HEAD is a GET without the body (Starlette's rule); Allow does not list it.
        if method not in methods and not (method == "HEAD" and "GET" in methods):
            await self.method_not_allowed(scope, send, params, caller, operation, allow)
            return
        read_only = method in ("GET", "HEAD")
        if read_only:
            payload, error = query_input(scope.get("query_string", b""))
        else:
            body = await read_body(receive, caller, MAX_BODY_BYTES)
            payload, error = body_input(body, caller.content_type)
        trace_id = caller.trace_id or new_trace_id()
        invocation = Invocation(
            key=params["key"],
            version=params.get("version"),
            input=payload,
            transport="rest",
            credentials=caller.credentials,
            idempotency_key=caller.idempotency_key,
            request_id=caller.request_id,
            client=caller.client,
            read_only=read_only,
            wire_error=error,
            trace_id=trace_id,
        )
        outcome = await self.pipeline.invoke(invocation)
        trace_id = invocation.trace_id or trace_id  # the pipeline keeps it
        extra = {"traceparent": response_traceparent(trace_id, caller.traceparent)}
        ref = outcome.operation
        if ref is not None and ref.deprecated:
            extra.update(retirement_headers(ref))
        await send_outcome(send, outcome, extra)

    async def method_not_allowed(
        self,
        scope: Scope,
        send: Send,
        params: dict[str, str],
        caller: HttpCaller,
        operation: Operation | None,
        allow: str,
    ) -> None:
        """405 naming the methods of this operation, answered before any stage (no one is
        identified) and audited against the path's key."""
        error = CATALOGUE.METHOD_NOT_ALLOWED(
            f"{scope['method']} is not supported here; use {allow.replace(', ', ' or ')}",
            headers={"Allow": allow},
        )
        await self.pipeline.record_refusal(
            transport="rest",
            endpoint=params["key"][:200],
            error=error,
            request_id=caller.request_id,
            client=caller.client,
            trace_id=caller.trace_id,
        )
        ref = operation.ref if operation is not None else None
        await send_outcome(send, Outcome(caller.request_id, ref, problem=Problem.of(error)))
