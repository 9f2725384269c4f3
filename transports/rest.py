"""REST: ``POST /api/ops/<key>`` (queries also ``GET``), pinned at ``/api/ops/<key>/v<semver>``.

This module only parses HTTP into an ``Invocation`` and renders the ``Outcome``; the
pipeline does everything else.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.errors import CATALOGUE, OperationError
from registry.invocation import Invocation, request_id_from
from registry.pipeline import Pipeline
from transports.http import bearer_credentials, client_address, outcome_response

MAX_BODY_BYTES = 1024 * 1024


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
            return json.loads(params["input"]), None
        except ValueError:
            return None, CATALOGUE.MALFORMED_REQUEST("The input parameter is not valid JSON")
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
        return json.loads(body), None
    except ValueError:
        return None, CATALOGUE.MALFORMED_REQUEST("The body is not valid JSON")


class RestTransport:
    """Routes for every operation of the pipeline's registry."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def routes(self) -> list[Route]:
        methods = ["GET", "POST"]
        return [
            Route("/api/ops/{key}", self.endpoint, methods=methods),
            Route("/api/ops/{key}/v{version}", self.endpoint, methods=methods),
        ]

    async def endpoint(self, request: Request) -> Response:
        read_only = request.method == "GET"
        if read_only:
            payload, error = query_input(request)
        else:
            payload, error = await body_input(request)
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
        )
        return outcome_response(await self.pipeline.invoke(invocation))
