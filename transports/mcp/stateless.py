"""Stateless JSON POSTs to ``/mcp``, answered in the request's own task.

With ``stateless`` and ``json_response`` on, ``StatelessJsonPosts`` makes the exchange the
SDK's session manager would make, without a per-request transport and connection (why:
docs/performance.md, "Library paths"; held to the SDK by a differential test):

- the HTTP checks are the SDK transport's, in its order and with its answers
  (``StreamableHTTPServerTransport._handle_post_request``): body size (413), Content-Type,
  Host and Origin (400 / 421 / 403), Accept (406), Content-Type again (415), then the
  body as a JSON-RPC message parsed by the SDK's own models (400 on a parse or validation
  error);
- a notification or a response is acknowledged with 202, the notification then handed to
  the kernel's ``on_notify``;
- a request goes through the SDK's kernel (``serve_one``: per-version method validation,
  the initialize handshake, the server's middleware such as OpenTelemetry, the handlers,
  result serialisation), its exceptions mapped to JSON-RPC errors as the SDK's dispatcher
  maps them.

It serves only POSTs at a handshake-era protocol version (or none); everything else (GET,
DELETE, the 2026 per-request envelope, which the session manager already answers in a
single exchange) stays with the session manager.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import anyio
import pydantic_core
from mcp.server import Server
from mcp.server.connection import Connection
from mcp.server.runner import ServerRunner, aclose_shielded, serve_one
from mcp.server.streamable_http import CONTENT_TYPE_JSON, check_accept_headers
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecurityMiddleware
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

#: The SDK's own logger names, so that its log lines read the same on either path.
log = logging.getLogger("mcp.server.streamable_http")
dispatch_log = logging.getLogger("mcp.shared.jsonrpc_dispatcher")

_VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.encode("ascii")
#: What the SDK's stateless path gives each message: no back-channel for server requests.
_TRANSPORT = TransportContext(kind="streamable-http", can_send_request=False)


def protocol_version_of(scope: Scope) -> str | None:
    """The ``mcp-protocol-version`` header, read as the session manager reads it."""
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == _VERSION_HEADER), None)


def error_response(message: str, status: HTTPStatus, code: int = INVALID_REQUEST) -> Response:
    """A JSON-RPC error without a request id, as the SDK transport answers HTTP-level faults."""
    body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=message))
    return message_response(body, status)


def message_response(
    message: JSONRPCMessage | None, status: HTTPStatus = HTTPStatus.OK
) -> Response:
    """A JSON-RPC message (or no body), serialised as the SDK transport serialises it."""
    body = message.model_dump_json(by_alias=True, exclude_unset=True) if message else None
    return Response(body, status_code=status, headers={"Content-Type": CONTENT_TYPE_JSON})


@dataclass
class JsonPostContext:
    """The dispatch context of one message: a JSON body carries only the response, so
    server-initiated requests are refused and notifications (progress included) dropped,
    as the SDK's JSON-response mode does with them."""

    request_id: RequestId | None
    message_metadata: ServerMessageMetadata
    transport: TransportContext = _TRANSPORT
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)

    @property
    def can_send_request(self) -> bool:
        return False

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> None:
        dispatch_log.debug("dropped %s: a JSON response carries no notifications", method)

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        return None


class StatelessJsonPosts:
    """The POSTs of a stateless, JSON-response endpoint, served by ``server``'s kernel.

    ``security`` holds the endpoint's Host/Origin settings; ``lifespan_state`` is the
    server's, entered by the session manager; ``max_body_size`` is the manager's limit.
    """

    def __init__(
        self,
        server: Server[Any],
        security: TransportSecurityMiddleware,
        lifespan_state: Any,
        *,
        max_body_size: int,
    ) -> None:
        self.server = server
        self.security = security
        self.lifespan_state = lifespan_state
        self._app = RequestBodyLimitMiddleware(self._post, max_body_size)

    @staticmethod
    def serves(scope: Scope) -> bool:
        """A POST at a handshake-era protocol version, or without the header."""
        if scope["method"] != "POST":
            return False
        version = protocol_version_of(scope)
        return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refused = await self.security.validate_request(request, is_post=True)
        if refused is not None:
            await refused(scope, receive, send)
            return
        try:
            await self._exchange(request, send)
        except Exception:
            log.exception("Error handling POST request")
            response = error_response(
                "Error handling POST request", HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR
            )
            await response(scope, receive, send)

    async def _exchange(self, request: Request, send: Send) -> None:
        scope, receive = request.scope, request.receive
        message = await self._message(request)
        if isinstance(message, Response):
            await message(scope, receive, send)
            return
        metadata = ServerMessageMetadata(request_context=request, can_send_request=False)
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER, DEFAULT_NEGOTIATED_VERSION)
        if not isinstance(message, JSONRPCRequest):
            await message_response(None, HTTPStatus.ACCEPTED)(scope, receive, send)
            if isinstance(message, JSONRPCNotification):  # a posted response has no waiter
                await self._notify(message, JsonPostContext(None, metadata), version)
            return
        reply = await self._reply(message, JsonPostContext(message.id, metadata), version)
        await message_response(reply)(scope, receive, send)

    @staticmethod
    async def _message(request: Request) -> JSONRPCMessage | Response:
        """The body as one JSON-RPC message, or the SDK's refusal of the request."""
        has_json, _ = check_accept_headers(request)
        if not has_json:
            return error_response(
                "Not Acceptable: Client must accept application/json", HTTPStatus.NOT_ACCEPTABLE
            )
        content_type = request.headers.get("content-type", "")
        if CONTENT_TYPE_JSON not in (p.strip() for p in content_type.split(";")[0].split(",")):
            return error_response(
                "Unsupported Media Type: Content-Type must be application/json",
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            )
        body = await request.body()
        try:
            raw = pydantic_core.from_json(body)
        except ValueError as e:
            return error_response(f"Parse error: {e}", HTTPStatus.BAD_REQUEST, PARSE_ERROR)
        try:
            return jsonrpc_message_adapter.validate_python(raw, by_name=False)
        except ValidationError as e:
            return error_response(f"Validation error: {e}", HTTPStatus.BAD_REQUEST, INVALID_PARAMS)

    async def _reply(
        self, message: JSONRPCRequest, ctx: JsonPostContext, version: str
    ) -> JSONRPCResponse | JSONRPCError:
        """The kernel's answer to one request; exceptions become errors as the SDK's
        dispatcher makes them (an unmapped one: code 0 and its text, and a log line)."""
        connection = Connection.from_envelope(version, None, None)
        try:
            result = await serve_one(
                self.server,
                ctx,
                message.method,
                message.params,
                connection=connection,
                lifespan_state=self.lifespan_state,
            )
        except Exception as exc:
            error = handler_exception_to_error_data(exc)
            if error is None:
                dispatch_log.exception("handler for %r raised", message.method)
                error = ErrorData(code=0, message=str(exc))
            return JSONRPCError(jsonrpc="2.0", id=message.id, error=error)
        return JSONRPCResponse(jsonrpc="2.0", id=message.id, result=result)

    async def _notify(
        self, message: JSONRPCNotification, ctx: JsonPostContext, version: str
    ) -> None:
        """Hand a notification to the kernel, which drops what it has no handler for."""
        connection = Connection.from_envelope(version, None, None)
        runner = ServerRunner(self.server, connection, self.lifespan_state)
        try:
            await runner.on_notify(ctx, message.method, message.params)
        except Exception:
            dispatch_log.exception("notification handler for %r raised", message.method)
        finally:
            await aclose_shielded(connection)
