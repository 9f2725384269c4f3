"""The baseline app: the same work as our operations, without our pipeline.

No identity, policy, idempotency or audit. REST: plain Starlette endpoints doing only JSON
decoding, validation of the very models our contracts use, and a JSON response
(``/ping``, ``/capture``). GraphQL: a bare strawberry app (``bench.baseline_graphql``,
``/graphql``). MCP: a ``ping`` tool on the SDK's own servers (``bench.baseline_mcp``,
``/mcp``, ``/mcp-sse``, ``/mcp-mcpserver``), whose session managers run in this app's
lifespan. Served by uvicorn exactly as ``specops serve`` serves our app (factory, one
worker, log level warning, no access log).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bench import BENCH_ACTOR, baseline_graphql, baseline_mcp
from bench.serve import serve_factory
from specs.billing.capture_payment import CapturePaymentInput
from specs.system.ping import PingInput, PingOutput

__all__ = ["BENCH_ACTOR", "create_app"]

M = TypeVar("M", bound=BaseModel)


async def _parse(request: Request, model: type[M]) -> M | Response:
    """The body validated as ``model``, or the error response to send instead."""
    body = await request.body()
    try:
        raw = json.loads(body) if body.strip() else {}
    except ValueError:
        return JSONResponse({"error": "The body is not valid JSON"}, 400)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.json(include_url=False, include_input=False)
        return Response(f'{{"errors":{errors}}}', 422, media_type="application/json")


async def ping(request: Request) -> Response:
    """Validate a PingInput and answer a PingOutput, as ``system.ping`` does."""
    data = await _parse(request, PingInput)
    if isinstance(data, Response):
        return data
    output = PingOutput(message=data.message, actor_id=BENCH_ACTOR, tenant_id=BENCH_ACTOR)
    return JSONResponse(output.model_dump(mode="json"))


async def capture(request: Request) -> Response:
    """Validate a CapturePaymentInput; 422 with pydantic's errors when it is invalid."""
    data = await _parse(request, CapturePaymentInput)
    if isinstance(data, Response):
        return data
    return JSONResponse({"invoiceId": data.invoice_id, "status": "accepted"})


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    """The ASGI app for ``uvicorn --factory bench.baseline_app:create_app``."""
    mcp = baseline_mcp.endpoints()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for manager in mcp.managers:
                await stack.enter_async_context(manager.run())
            yield

    routes: list[BaseRoute] = [
        Route("/ping", ping, methods=["POST"]),
        Route("/capture", capture, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        *baseline_graphql.routes(),
        *mcp.routes,
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve it with the uvicorn settings ``specops serve`` uses."""
    serve_factory("bench.baseline_app:create_app", __doc__, argv)


if __name__ == "__main__":
    main()
