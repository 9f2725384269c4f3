"""Test-only app factory: the specops app (which serves /mcp) plus two flag variants.

    python -m uvicorn --factory tests.support.mcp_app:create_app --host 127.0.0.1 --port N

Mounts three MCP endpoints over one pipeline, so one server process covers the flags:

    /mcp            bearer required, stateful sessions, loopback Host/Origin only (the default)
    /mcp-stateless  stateless, JSON responses (horizontal scaling)
    /mcp-open       the deployment opted out of the bearer requirement
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from specops.app import Server
from specops.logging import configure_logging
from specops.settings import Settings
from transports.mcp import McpHttp


def create_app() -> Starlette:
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    server = Server.build(settings)
    app = server.asgi()  # serves /mcp itself, with the default flags
    variants = [
        McpHttp(server.pipeline, stateless=True, json_response=True, path="/mcp-stateless"),
        McpHttp(server.pipeline, require_auth=False, path="/mcp-open"),
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            for endpoint in variants:
                await stack.enter_async_context(endpoint.run())
            yield

    routes: list[BaseRoute] = [route for endpoint in variants for route in endpoint.routes()]
    routes.append(Mount("/", app=app))
    return Starlette(routes=routes, lifespan=lifespan)
