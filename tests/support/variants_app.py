"""Test-only app factory: the real specops app plus variants of its GraphQL and MCP endpoints.

    python -m uvicorn --factory tests.support.variants_app:create_app --host 127.0.0.1 --port N

``Server.asgi()`` serves REST, ``/graphql`` and ``/mcp`` with the settings' defaults; this
adds only endpoints with other flags, over the same pipeline, so one server process covers
every variant the GraphQL and MCP end-to-end tests need:

    /graphql-locked  production-like: introspection off, tight limits (LOCKED_LIMITS)
    /mcp-stateless   stateless, JSON responses (horizontal scaling)
    /mcp-open        the deployment opted out of the bearer requirement
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from specops.app import Server
from specops.logging import configure_logging
from specops.settings import Settings
from transports.graphql import GraphQLLimits, GraphQLTransport
from transports.mcp import McpHttp

LOCKED_LIMITS = GraphQLLimits(max_depth=2, max_aliases=2, max_root_fields=2)


def create_app() -> Starlette:
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    server = Server.build(settings)
    app = server.asgi()
    locked = GraphQLTransport(
        server.pipeline, path="/graphql-locked", introspection=False, limits=LOCKED_LIMITS
    )
    mcp_variants = [
        McpHttp(server.pipeline, stateless=True, json_response=True, path="/mcp-stateless"),
        McpHttp(server.pipeline, require_auth=False, path="/mcp-open"),
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # A mounted app's lifespan does not run: run the real app's (its /mcp session
        # manager, closing the server) and the variants' session managers here.
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            for endpoint in mcp_variants:
                await stack.enter_async_context(endpoint.run())
            yield

    routes: list[BaseRoute] = [*locked.routes()]
    routes += [route for endpoint in mcp_variants for route in endpoint.routes()]
    routes.append(Mount("/", app=app))
    return Starlette(routes=routes, lifespan=lifespan)
