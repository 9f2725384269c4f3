"""The MCP baselines: a ``ping`` tool on the SDK's own servers, over streamable HTTP.

The tool validates the very ``PingInput`` our contract uses and answers a ``PingOutput``
as ``structuredContent`` plus its JSON text, as our ``system_ping`` tool does; no
identity, policy or audit. Every endpoint is stateless (no ``initialize`` needed) and
checks Host/Origin with the same loopback settings as ours:

- ``/mcp``: the low-level ``mcp.server.Server`` (the layer our MCP server is built on),
  JSON responses;
- ``/mcp-sse``: the same server answering with a one-event SSE stream (the SDK's default,
  and ours unless our server is configured for JSON responses);
- ``/mcp-mcpserver``: the high-level ``MCPServer`` with an ``@tool`` function, JSON
  responses.

Each endpoint's session manager runs in the baseline app's lifespan (``managers()``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from starlette.routing import BaseRoute

from bench import BENCH_ACTOR
from specs.system.ping import PingInput, PingOutput

TOOL = "ping"
LOWLEVEL_PATH = "/mcp"
LOWLEVEL_SSE_PATH = "/mcp-sse"
MCPSERVER_PATH = "/mcp-mcpserver"

SECURITY = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"],
    allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
)

PING_TOOL = types.Tool(
    name=TOOL,
    description="Echo a message with the caller's identity",
    input_schema=PingInput.model_json_schema(),
    output_schema=PingOutput.model_json_schema(),
)


def _ping_output(data: PingInput) -> dict[str, Any]:
    output = PingOutput(message=data.message, actor_id=BENCH_ACTOR, tenant_id=BENCH_ACTOR)
    return output.model_dump(mode="json")


async def _list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[PING_TOOL])


async def _call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    """Validate a PingInput and answer a PingOutput; invalid input is an isError result."""
    if params.name != TOOL:
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name[:200]}")
    try:
        data = PingInput.model_validate(params.arguments or {})
    except ValidationError as exc:
        errors = exc.json(include_url=False, include_input=False)
        return types.CallToolResult(content=[types.TextContent(text=errors)], is_error=True)
    output = _ping_output(data)
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(output))], structured_content=output
    )


def lowlevel_server() -> Server[Any]:
    """The low-level server with one hand-written ``ping`` tool."""
    return Server("bench-baseline", on_list_tools=_list_tools, on_call_tool=_call_tool)


def high_level_server() -> MCPServer[Any]:
    """``MCPServer`` with ``ping`` as an ``@tool`` function (the SDK validates its
    arguments, the function validates a PingInput from them)."""
    server: MCPServer[Any] = MCPServer("bench-baseline", log_level="WARNING")

    @server.tool(name=TOOL, description="Echo a message with the caller's identity")
    async def ping(message: str = "ping") -> dict[str, Any]:
        return _ping_output(PingInput.model_validate({"message": message}))

    return server


@dataclass(frozen=True)
class McpEndpoints:
    """The endpoints' routes and the session managers their lifespan must run."""

    routes: list[BaseRoute]
    managers: list[StreamableHTTPSessionManager]


def endpoints() -> McpEndpoints:
    """Every MCP baseline endpoint (stateless; JSON or SSE responses as listed above), wired
    by the SDK's own ``streamable_http_app``; its routes are taken into the baseline app,
    whose lifespan runs the session managers (a mounted app's lifespan would not run)."""
    routes: list[BaseRoute] = []
    managers: list[StreamableHTTPSessionManager] = []
    high_level = high_level_server()
    apps: list[tuple[Server[Any] | MCPServer[Any], str, bool]] = [
        (lowlevel_server(), LOWLEVEL_PATH, True),
        (lowlevel_server(), LOWLEVEL_SSE_PATH, False),
        (high_level, MCPSERVER_PATH, True),
    ]
    for server, path, json_response in apps:
        app = server.streamable_http_app(
            streamable_http_path=path,
            json_response=json_response,
            stateless_http=True,
            transport_security=SECURITY,
        )
        routes.extend(app.routes)
        managers.append(server.session_manager)
    return McpEndpoints(routes, managers)
