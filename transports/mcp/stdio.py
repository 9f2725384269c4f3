"""MCP over stdio, for ``specops mcp``: an agent host starts the process and talks to it.

stdout carries the protocol and nothing else: logs go to stderr (``specops.logging``), and
while serving, the SDK points file descriptor 1 at stderr so that stray output from any
library cannot corrupt the stream. One process serves one caller, whose identity is the
API key the host put in its environment (``SPECOPS_API_KEY``).
"""

from __future__ import annotations

import structlog
from mcp.server.stdio import stdio_server

from registry.pipeline import Pipeline
from transports.mcp.server import Caller, CallerOf, McpContext, build_server

log = structlog.get_logger("specops.mcp.stdio")


def stdio_caller(api_key: str | None) -> CallerOf:
    """Every message of the process comes from the one caller the key names."""
    caller = Caller(credentials=api_key or None, client="stdio")

    def caller_of(_: McpContext) -> Caller:
        return caller

    return caller_of


async def serve_stdio(pipeline: Pipeline, *, api_key: str | None) -> None:
    """Serve MCP on stdin/stdout until the host closes stdin."""
    if not api_key:
        log.warning("mcp_stdio_anonymous", hint="set SPECOPS_API_KEY to call as an identity")
    server = build_server(pipeline, stdio_caller(api_key))
    async with stdio_server() as (read_stream, write_stream):
        log.info("mcp_stdio_serving")
        await server.run(read_stream, write_stream, server.create_initialization_options())
