"""MCP over streamable HTTP, at ``/mcp``.

In front of the SDK's session manager sit two checks, in this order:

1. DNS-rebinding protection: the ``Host`` (and any ``Origin``) header must be an allowed
   one (421 / 403 otherwise). The SDK transport checks again behind us.
2. ``Authorization: Bearer <api key>``, unless the deployment opts out
   (``require_auth=False``): a missing or refused key answers 401 with a problem document
   and ``WWW-Authenticate: Bearer``. An accepted key also binds a stateful session to
   that key, so a session id is useless with another key.

A POST whose body is not JSON (or nests too deeply) is answered by the SDK with a JSON-RPC
parse error (400); it never names a tool, so it is audited here against the endpoint
(``MALFORMED_REQUEST``), like a refused credential.

Each ``tools/call`` then reads its credentials, ``Idempotency-Key``, ``X-Request-Id`` and
``traceparent`` from the HTTP request that carried it (``ctx.request``), never from shared
state.

The parent app must run ``McpHttp.run()`` in its lifespan: a mounted app's own lifespan
does not run. ``stateless=True`` keeps no session state between requests, so any replica
can serve any request (horizontal scaling, no sticky sessions). Stateless with JSON
responses, POSTs are answered in the request's own task (``stateless.py``) instead of
through a per-request transport of the session manager; what the client sees is the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from mcp.server import Server
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import lifespan as default_lifespan
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from registry.actor import Actor
from registry.errors import CATALOGUE, OperationError, Problem
from registry.pipeline import Pipeline
from transports.http import (
    BEARER_CHALLENGE,
    ClientGone,
    HttpCaller,
    problem_response,
    read_body,
    read_caller,
    replay,
)
from transports.mcp.server import Caller, McpContext, build_server
from transports.mcp.stateless import StatelessJsonPosts

log = structlog.get_logger("specops.mcp.http")

#: Loopback only, as served by default; a deployment behind a name lists its own.
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*")
DEFAULT_ALLOWED_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def http_caller(ctx: McpContext) -> Caller:
    """The caller of one message: from the HTTP request that carried it."""
    request = ctx.request
    if not isinstance(request, Request):
        return Caller(credentials=None)
    caller = read_caller(request.scope)
    return Caller(
        credentials=caller.credentials,
        client=caller.client,
        idempotency_key=caller.idempotency_key,
        request_id=caller.request_id,
        trace_id=caller.trace_id,
    )


def _session_owner(actor: Actor) -> AuthenticatedUser:
    """What the SDK compares to bind a stateful session to the key that opened it."""
    return AuthenticatedUser(
        AccessToken(
            token=actor.credential_id or actor.id,
            client_id=actor.credential_id or actor.id,
            scopes=[],
            subject=f"{actor.tenant_id}/{actor.id}",
        )
    )


def _json_error(body: bytes) -> OperationError | None:
    """Why ``body`` is not JSON, as REST says it; None when it is."""
    try:
        from_json(body)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            return CATALOGUE.MALFORMED_REQUEST("The body nests too deeply")
        return CATALOGUE.MALFORMED_REQUEST("The body is not valid JSON")
    return None


class McpHttp:
    """The ``/mcp`` endpoint: an ASGI app, its route, and the session manager to run.

    ``allowed_hosts``/``allowed_origins`` use the SDK's patterns (``host:*`` for any
    port); None means loopback only. ``dns_rebinding_protection=False`` turns the
    Host/Origin checks off (only for a deployment whose proxy already does them).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        require_auth: bool = True,
        stateless: bool = False,
        json_response: bool = False,
        allowed_hosts: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        dns_rebinding_protection: bool = True,
        path: str = "/mcp",
    ) -> None:
        self.pipeline = pipeline
        self.require_auth = require_auth
        self.path = path
        self.security = TransportSecuritySettings(
            enable_dns_rebinding_protection=dns_rebinding_protection,
            allowed_hosts=list(DEFAULT_ALLOWED_HOSTS if allowed_hosts is None else allowed_hosts),
            allowed_origins=list(
                DEFAULT_ALLOWED_ORIGINS if allowed_origins is None else allowed_origins
            ),
        )
        self._host_check = TransportSecurityMiddleware(self.security)
        self.server = build_server(pipeline, http_caller, lifespan=self._server_lifespan)
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=stateless,
            json_response=json_response,
            security_settings=self.security,
        )
        #: Set while the session manager runs, if stateless with JSON responses.
        self._json_posts: StatelessJsonPosts | None = None

    @asynccontextmanager
    async def _server_lifespan(self, server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        """The server's lifespan (the SDK's default), entered once by the session manager's
        ``run()``: while it lasts, stateless JSON POSTs are served with its state."""
        async with default_lifespan(server) as state:
            if self.manager.stateless and self.manager.json_response:
                self._json_posts = StatelessJsonPosts(
                    server,
                    self._host_check,
                    state,
                    max_body_size=self.manager.max_request_body_size,
                )
            try:
                yield state
            finally:
                self._json_posts = None

    def run(self) -> AbstractAsyncContextManager[None]:
        """The session manager's lifetime; enter it in the parent app's lifespan."""
        return self.manager.run()

    def routes(self) -> list[Route]:
        """The endpoint as a route (a ``Mount`` would redirect ``/mcp`` to ``/mcp/``)."""
        return [Route(self.path, endpoint=self)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        caller = read_caller(scope)
        refused = await self._host_check.validate_request(Request(scope, receive), is_post=False)
        if refused is not None:
            await refused(scope, receive, send)
            return
        if self.require_auth:
            credentials = caller.credentials
            try:
                actor = await self.pipeline.actor_for(credentials) if credentials else None
            except Exception:
                log.exception("mcp_identify_failed")
                await self._refusal(caller, CATALOGUE.INTERNAL(), {})(scope, receive, send)
                return
            if actor is None or not actor.authenticated:
                detail = "Send Authorization: Bearer <api key>"
                challenge = BEARER_CHALLENGE
                if credentials is not None:
                    detail = "Invalid credentials"
                    challenge += ', error="invalid_token"'
                error = CATALOGUE.UNAUTHENTICATED(detail)
                response = self._refusal(caller, error, {"WWW-Authenticate": challenge})
                await self._audit_refusal(caller, error, policy_rule="credentials")
                await response(scope, receive, send)
                return
            if not self.manager.stateless:  # only a stateful session has an owner
                scope["user"] = _session_owner(actor)
        if scope["method"] == "POST":
            await self._post(caller, scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)

    async def _post(self, caller: HttpCaller, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a POST, and audit it when it is refused for a body that is not JSON."""
        try:
            body = await read_body(receive, caller, self.manager.max_request_body_size)
        except ClientGone:
            return
        if body is None:  # as the SDK answers it
            await Response("Request body too large", status_code=413)(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        json_posts = self._json_posts
        if json_posts is not None and json_posts.serves(scope):
            await json_posts(scope, replay(body, receive), sending)
        else:
            await self.manager.handle_request(scope, replay(body, receive), sending)
        if status == 400:
            error = _json_error(body)
            if error is not None:
                await self._audit_refusal(caller, error, credentials=caller.credentials)

    async def _audit_refusal(
        self,
        caller: HttpCaller,
        error: OperationError,
        *,
        credentials: str | None = None,
        policy_rule: str | None = None,
    ) -> None:
        """A request refused before it reached a tool call (a refused credential, a body
        that is not JSON-RPC) is audited here, against the endpoint itself (operation key
        ``mcp``), like every other refusal; ``policy_rule`` marks a credentials denial."""
        await self.pipeline.record_refusal(
            transport="mcp",
            endpoint="mcp",
            error=error,
            request_id=caller.request_id,
            client=caller.client,
            trace_id=caller.trace_id,
            credentials=credentials,
            decision="deny" if policy_rule else "none",
            policy_rule=policy_rule,
        )

    @staticmethod
    def _refusal(caller: HttpCaller, error: OperationError, headers: dict[str, str]) -> Response:
        log.info(
            "mcp_http_refused",
            code=error.code,
            client=caller.client,
            request_id=caller.request_id,
        )
        return problem_response(Problem.of(error), caller.request_id, headers)
