"""The ASGI app: every transport's routes, the OpenAPI document, health and readiness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.invocation import request_id_from
from registry.pipeline import Pipeline
from transports.graphql import GraphQLTransport
from transports.http import problem_response
from transports.mcp import McpHttp
from transports.openapi import openapi_document
from transports.rest import RestTransport, path_params

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer problem documents too."""
    assert isinstance(exc, HTTPException)
    code = "OP_NOT_FOUND" if exc.status_code == 404 else "MALFORMED_REQUEST"
    request_id = request_id_from(request.headers.get("x-request-id"))
    body = {
        "type": f"https://specops.dev/problems/{code.lower().replace('_', '-')}",
        "title": exc.detail,
        "status": exc.status_code,
        "code": code,
        "detail": exc.detail,
        "requestId": request_id,
    }
    headers = dict(exc.headers or {})
    headers["X-Request-Id"] = request_id
    return problem_response(body, exc.status_code, headers)


class SpecopsApp(Starlette):
    """Starlette, except that HTTP requests for the transports' endpoints go straight to
    them: REST calls (``/api/ops/...``) and the exact paths of ``direct`` (GraphQL, MCP).
    Each answers every request itself (errors included), so Starlette's routing and
    middleware would only add their cost. Everything else is Starlette's; the same
    endpoints are also among its routes."""

    def __init__(self, rest: RestTransport, direct: dict[str, ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rest = rest
        self.direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            endpoint = self.direct.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
            params = path_params(scope["path"])
            if params is not None:
                scope["app"] = self
                await self.rest.handle(scope, receive, send, params)
                return
        await super().__call__(scope, receive, send)


def create_asgi_app(
    pipeline: Pipeline,
    *,
    readiness: ReadinessCheck,
    lifespan: Lifespan | None = None,
    mcp: McpHttp | None = None,
    graphql_introspection: bool = True,
    graphql_suggestions: bool = False,
    title: str = "specops",
) -> Starlette:
    document = openapi_document(pipeline.registry, title=title)

    async def openapi(_: Request) -> Response:
        return JSONResponse(document)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        checks = await readiness()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    rest = RestTransport(pipeline)
    graphql = GraphQLTransport(
        pipeline, introspection=graphql_introspection, suggestions=graphql_suggestions
    )
    direct: dict[str, ASGIApp] = {graphql.path: graphql.endpoint}
    if mcp is not None:
        direct[mcp.path] = mcp
    routes: list[Any] = [
        *rest.routes(),
        *graphql.routes(),
        *(mcp.routes() if mcp is not None else []),
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return SpecopsApp(
        rest,
        direct,
        routes=routes,
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )


__all__ = ["AsyncIterator", "create_asgi_app"]
