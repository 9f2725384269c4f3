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

from registry.errors import ErrorSpec, Problem
from registry.ids import request_id_from
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
    problem = Problem.of(ErrorSpec(code, exc.status_code, exc.detail)())
    request_id = request_id_from(request.headers.get("x-request-id"))
    return problem_response(problem, request_id, dict(exc.headers or {}))


def route_path(scope: Scope) -> str:
    """The path the app routes: the request's, less the ``root_path`` it is mounted at."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class SpecopsApp(Starlette):
    """Starlette, except that HTTP requests for the transports' endpoints go straight to
    them: REST calls (every path ``path_params`` matches) and the exact paths of
    ``direct`` (GraphQL, MCP). Each answers every request itself, errors and 405s
    included. Everything else is Starlette's (see docs/performance.md)."""

    def __init__(self, rest: RestTransport, direct: dict[str, ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rest = rest
        self.direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = route_path(scope)
            endpoint = self.direct.get(path)
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
            params = path_params(path)
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
