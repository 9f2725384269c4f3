"""The MCP server: tools/list, tools/call, resources/list and resources/read.

Like every transport, this module only turns a protocol message into an ``Invocation`` and
an ``Outcome`` into a protocol result; the pipeline does the rest. A refused or failed call
is a ``CallToolResult`` with ``isError: true`` carrying the problem document, never a
JSON-RPC error. Where the caller comes from (the HTTP request of the call, or the
environment of a stdio process) is the ``CallerOf`` function the server is built with.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import mcp_types as types
import structlog
from mcp.server import Server, ServerRequestContext
from mcp.server.lowlevel.server import lifespan as default_lifespan
from mcp.shared.exceptions import MCPError

from registry.actor import Actor
from registry.errors import CATALOGUE, OperationError, Problem
from registry.invocation import Invocation, Outcome, request_id_from
from registry.pipeline import Pipeline
from registry.registry import Operation
from registry.tracing import trace_id_from
from transports.mcp.resources import MARKDOWN, DocCatalog
from transports.mcp.tools import ToolCatalog

log = structlog.get_logger("specops.mcp")

McpContext = ServerRequestContext[Any, Any]
"""What a handler receives; ``.request`` is the HTTP request of the message (None on stdio)."""

#: ``_meta`` keys a ``tools/call`` may carry.
IDEMPOTENCY_META = "idempotencyKey"
REQUEST_ID_META = "requestId"
#: W3C trace context of the call; over the ``traceparent`` HTTP header where both are sent.
TRACEPARENT_META = "traceparent"

INSTRUCTIONS = (
    "Each tool is one specops operation contract. Read its documentation resource "
    "(specops://ops/<key>) before calling it if the description is not enough. A refused or "
    "failed call returns isError: true with a problem document (code, detail, retryable, "
    "issues); on INVALID_INPUT, correct the fields named in issues and call again. For "
    "commands, pass _meta.idempotencyKey to make a retry safe."
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling and from where, as the transport under MCP knows it."""

    credentials: str | None
    client: str | None = None
    idempotency_key: str | None = None
    request_id: str | None = None
    #: The trace id of the carrying request's ``traceparent`` header, if valid.
    trace_id: str | None = None


CallerOf = Callable[[McpContext], Caller]
Lifespan = Callable[[Server[Any]], AbstractAsyncContextManager[dict[str, Any]]]


def _server_version() -> str:
    try:
        return version("specops")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def _json_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


def render(outcome: Outcome) -> types.CallToolResult:
    """The output as structuredContent plus text, or the problem document with isError."""
    meta: dict[str, Any] = {"requestId": outcome.request_id}
    if outcome.operation is not None:
        meta["operation"] = outcome.operation.as_dict()
    if outcome.replayed:
        meta["replayed"] = True
    if outcome.problem is None:
        output = outcome.output if outcome.output is not None else {}
        return types.CallToolResult(
            content=[types.TextContent(text=_json_text(output))],
            structured_content=output,
            meta=meta,
        )
    body = outcome.problem_body()
    retry_after = outcome.problem.headers.get("Retry-After", "")
    if retry_after.isdigit():
        body["retryAfterSeconds"] = int(retry_after)
    return types.CallToolResult(
        content=[types.TextContent(text=_json_text(body))],
        structured_content=body,
        is_error=True,
        meta=meta,
    )


def internal_error(request_id: str) -> types.CallToolResult:
    """For a failure outside the pipeline (which never raises): details only in the log."""
    problem = Problem.of(CATALOGUE.INTERNAL())
    return render(Outcome(request_id, None, problem=problem))


def _idempotency_key(
    meta: dict[str, Any], header: str | None
) -> tuple[str | None, OperationError | None]:
    """``_meta.idempotencyKey``, else the HTTP ``Idempotency-Key`` header of the call."""
    value = meta.get(IDEMPOTENCY_META)
    if value is None:
        return header, None
    if not isinstance(value, str):
        return None, CATALOGUE.MALFORMED_REQUEST(f"_meta.{IDEMPOTENCY_META} must be a string")
    if header is not None and header != value:
        return None, CATALOGUE.MALFORMED_REQUEST(
            f"_meta.{IDEMPOTENCY_META} and the Idempotency-Key header differ"
        )
    return value, None


def unknown_tool_key(name: str) -> str:
    """The key an unknown tool name is invoked (and audited) as. ``tool:`` cannot start a
    contract key, so a name that happens to be a key (``billing.capturePayment``) is not
    an alias for it: the pipeline answers OP_NOT_FOUND."""
    return f"tool:{name[:190]}"


class McpHandlers:
    """The request handlers of one MCP server, over one pipeline."""

    def __init__(self, pipeline: Pipeline, caller_of: CallerOf) -> None:
        self.pipeline = pipeline
        self.caller_of = caller_of
        self.tools = ToolCatalog(pipeline.registry)
        self.docs = DocCatalog(pipeline.registry)

    async def _visible(self, ctx: McpContext) -> Callable[[Operation], Awaitable[bool]]:
        """Whether the caller may attempt an operation (Pipeline.may_attempt, once per
        operation); refused credentials may attempt nothing."""
        actor: Actor | None = await self.pipeline.actor_for(self.caller_of(ctx).credentials)
        seen: dict[int, bool] = {}

        async def may(operation: Operation) -> bool:
            if actor is None:
                return False
            if id(operation) not in seen:
                seen[id(operation)] = await self.pipeline.may_attempt(actor, operation)
            return seen[id(operation)]

        return may

    async def list_tools(
        self, ctx: McpContext, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            may = await self._visible(ctx)
            tools = [entry.tool for entry in self.tools if await may(entry.operation)]
        except Exception:
            log.exception("mcp_list_tools_failed")
            raise MCPError(types.INTERNAL_ERROR, "Internal error") from None
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        self, ctx: McpContext, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        request_id = request_id_from(None)
        try:
            caller = self.caller_of(ctx)
            meta: dict[str, Any] = dict(params.meta or {})
            candidate = meta.get(REQUEST_ID_META)
            request_id = request_id_from(
                candidate if isinstance(candidate, str) else caller.request_id
            )
            idempotency_key, wire_error = _idempotency_key(meta, caller.idempotency_key)
            traceparent = meta.get(TRACEPARENT_META)
            trace_id = trace_id_from(traceparent) if isinstance(traceparent, str) else None
            entry = self.tools.get(params.name)
            invocation = Invocation(
                key=entry.key if entry else unknown_tool_key(params.name),
                version=entry.version if entry else None,
                input=params.arguments,
                transport="mcp",
                credentials=caller.credentials,
                idempotency_key=idempotency_key,
                request_id=request_id,
                client=caller.client,
                wire_error=wire_error,
                trace_id=trace_id or caller.trace_id,
            )
            return render(await self.pipeline.invoke(invocation))
        except Exception:
            log.exception("mcp_call_failed", tool=params.name[:200], request_id=request_id)
            return internal_error(request_id)

    async def list_resources(
        self, ctx: McpContext, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        try:
            may = await self._visible(ctx)
            resources = [doc.resource for doc in self.docs if await may(doc.operation)]
        except Exception:
            log.exception("mcp_list_resources_failed")
            raise MCPError(types.INTERNAL_ERROR, "Internal error") from None
        return types.ListResourcesResult(resources=resources)

    async def read_resource(
        self, ctx: McpContext, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        doc = self.docs.get(params.uri)
        visible = False
        if doc is not None:
            try:
                may = await self._visible(ctx)
                visible = await may(doc.operation)
            except Exception:
                log.exception("mcp_read_resource_failed")
                raise MCPError(types.INTERNAL_ERROR, "Internal error") from None
        if doc is None or not visible:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {params.uri[:300]}")
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=doc.uri, mime_type=MARKDOWN, text=doc.text)]
        )


def build_server(
    pipeline: Pipeline,
    caller_of: CallerOf,
    *,
    name: str = "specops",
    lifespan: Lifespan = default_lifespan,
) -> Server[Any]:
    """A low-level MCP server whose tools are the pipeline's registry."""
    handlers = McpHandlers(pipeline, caller_of)
    return Server(
        name,
        lifespan=lifespan,
        version=_server_version(),
        title="specops operations",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=handlers.tools.input_schema,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_resources=handlers.list_resources,
        on_read_resource=handlers.read_resource,
    )
