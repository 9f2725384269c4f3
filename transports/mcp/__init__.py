"""MCP: every installed contract as a tool, over streamable HTTP (``/mcp``) and stdio.

tools.py      the tool list, generated from the registry (names, schemas, annotations)
resources.py  each contract's documentation as a markdown resource
server.py     the MCP server: handlers that build an ``Invocation`` and render the ``Outcome``
http.py       streamable HTTP: bearer check, Host/Origin checks, the session manager
stateless.py  stateless JSON POSTs answered in one exchange, as the SDK's transport would
stdio.py      stdio: the caller's API key from the environment, logs on stderr
"""

from transports.mcp.http import McpHttp
from transports.mcp.server import Caller, build_server
from transports.mcp.stdio import serve_stdio

__all__ = ["Caller", "McpHttp", "build_server", "serve_stdio"]
