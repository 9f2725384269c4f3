"""REST: ``POST /api/ops/<key>`` (queries also ``GET``), pinned at ``/api/ops/<key>/v<semver>``.

This module only parses HTTP into an ``Invocation`` and renders the ``Outcome``; the
pipeline does everything else. A ``traceparent`` header (W3C trace context) names the
invocation's trace; the response's ``traceparent`` continues it (same trace id, a new span
id), or starts the one the pipeline made up.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from registry.errors import CATALOGUE, Issue, OperationError, Problem
from registry.invocation import Invocation, OperationRef, Outcome, request_id_from
from registry.pipeline import Pipeline
from registry.tracing import response_traceparent, trace_id_from
from transports.http import bearer_credentials, client_address, outcome_response

MAX_BODY_BYTES = 1024 * 1024
#: The methods that reach the pipeline (GET for queries, POST for all); others are 405.
ROUTED_METHODS = frozenset({"GET", "HEAD", "POST"})


def _not_an_object() -> OperationError:
    """A JSON ``null`` input: a value that is not an object, not a missing input."""
    return CATALOGUE.INVALID_INPUT(
        "Input must be a JSON object",
        issues=(Issue("", "object_type", "Input should be an object"),),
    )


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def query_input(request: Request) -> tuple[Any, OperationError | None]:
    """A GET's input: ``?input=<json>``, or the query parameters as fields."""
    params = request.query_params
    if "input" in params:
        try:
            decoded = json.loads(params["input"])
        except ValueError:
            return None, CATALOGUE.MALFORMED_REQUEST("The input parameter is not valid JSON")
        except RecursionError:
            return None, CATALOGUE.MALFORMED_REQUEST("The input parameter nests too deeply")
        return (None, _not_an_object()) if decoded is None else (decoded, None)
    data: dict[str, Any] = {}
    for name in params:
        values = params.getlist(name)
        data[name] = values if len(values) > 1 else values[0]
    return data, None


async def body_input(request: Request) -> tuple[Any, OperationError | None]:
    """A POST's input: the JSON body (an empty body counts as ``{}``)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None, CATALOGUE.PAYLOAD_TOO_LARGE(f"Bodies are limited to {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return None, CATALOGUE.PAYLOAD_TOO_LARGE(f"Bodies are limited to {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return {}, None
    if not _is_json(request.headers.get("content-type")):
        return None, CATALOGUE.UNSUPPORTED_MEDIA_TYPE("Send the input as application/json")
    try:
        data = json.loads(body)
    except ValueError:
        return None, CATALOGUE.MALFORMED_REQUEST("The body is not valid JSON")
    except RecursionError:
        return None, CATALOGUE.MALFORMED_REQUEST("The body nests too deeply")
    return (None, _not_an_object()) if data is None else (data, None)


class AnyMethod:
    """An endpoint as a plain ASGI app: Starlette routes every method to one of these,
    where a function endpoint only gets the methods listed."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class RestTransport:
    """Routes for every operation of the pipeline's registry."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def routes(self) -> list[Route]:
        # Every method reaches the endpoint, so that a 405 names what the operation allows.
        endpoint = AnyMethod(self.endpoint)
        return [
            Route("/api/ops/{key}", endpoint),
            Route("/api/ops/{key}/v{version}", endpoint),
        ]

    async def method_not_allowed(self, request: Request) -> Response:
        """405 naming the methods of this operation: POST for a command, GET and POST for
        a query or an unknown key. Answered here, before any stage, and audited against
        the path's key."""
        key = request.path_params["key"]
        operation = self.pipeline.registry.resolve(key, request.path_params.get("version"))
        ref = None
        allow = "GET, POST"
        if operation is not None:
            c = operation.contract
            ref = OperationRef(c.key, c.version_text, c.kind)
            if c.kind == "command":
                allow = "POST"
        error = CATALOGUE.METHOD_NOT_ALLOWED(
            f"{request.method} is not supported here; use {allow.replace(', ', ' or ')}",
            headers={"Allow": allow},
        )
        request_id = request_id_from(request.headers.get("x-request-id"))
        await self.pipeline.record_refusal(
            transport="rest",
            endpoint=key[:200],
            error=error,
            request_id=request_id,
            client=client_address(request),
            trace_id=trace_id_from(request.headers.get("traceparent")),
            credentials=bearer_credentials(request),
        )
        return outcome_response(Outcome(request_id, ref, problem=Problem.of(error)))

    async def endpoint(self, request: Request) -> Response:
        if request.method not in ROUTED_METHODS:
            return await self.method_not_allowed(request)
        read_only = request.method in ("GET", "HEAD")
        if read_only:
            payload, error = query_input(request)
        else:
            payload, error = await body_input(request)
        traceparent = request.headers.get("traceparent")
        invocation = Invocation(
            key=request.path_params["key"],
            version=request.path_params.get("version"),
            input=payload,
            transport="rest",
            credentials=bearer_credentials(request),
            idempotency_key=request.headers.get("idempotency-key"),
            request_id=request_id_from(request.headers.get("x-request-id")),
            client=client_address(request),
            read_only=read_only,
            wire_error=error,
            trace_id=trace_id_from(traceparent),
        )
        response = outcome_response(await self.pipeline.invoke(invocation))
        if invocation.trace_id is not None:  # the pipeline sets one
            response.headers["traceparent"] = response_traceparent(invocation.trace_id, traceparent)
        return response
