"""``/graphql`` as a raw ASGI endpoint: a fast path for the common request, the strawberry
view for every other.

The common request is a POST of a JSON object (``query``, optional ``variables`` and
``operationName``, no ``extensions``) whose document is valid, runs a query or mutation
and does not introspect. For it the endpoint reads the caller and the body
(``transports.http``), takes the document prepared once per text (``DocumentCache``:
parsed, validated with the endpoint's rules and limits), executes it with graphql-core's
``execute`` against the strawberry schema, and answers with raw ASGI messages. Errors are shaped,
logged and audited as the view does, and the response carries the same headers
(``X-Request-Id``, ``traceparent``, ``Idempotent-Replayed``, ``Retry-After``).

Any other request (another method, another content type, a body that is not such an
object, a document that is not cached as prepared) goes to the view, with the body already
read replayed to it; a body over the limit is refused as the view refuses it.

Why this path exists: docs/performance.md, "Library paths".
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSchema, execute
from pydantic_core import from_json
from starlette.types import Receive, Scope, Send
from strawberry.http import GraphQLHTTPResponse

from registry.ids import new_trace_id
from registry.pipeline import Pipeline
from registry.tracing import response_traceparent
from transports.graphql.documents import DocumentCache, PreparedDocument
from transports.graphql.errors import log_unexpected, shape
from transports.graphql.resolvers import GraphQLContext, ResponseHeaders
from transports.graphql.view import GraphQLView
from transports.http import (
    ClientGone,
    HttpCaller,
    json_bytes,
    read_body,
    read_caller,
    replay,
    send_response,
)

JSON_MEDIA_TYPE = "application/json"


def _is_json(caller: HttpCaller) -> bool:
    media_type = (caller.content_type or "").partition(";")[0]
    return media_type.strip().lower() == JSON_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class FastRequest:
    """A request body the fast path can serve."""

    prepared: PreparedDocument
    variables: dict[str, Any] | None


async def execute_prepared(
    schema: GraphQLSchema,
    prepared: PreparedDocument,
    variables: dict[str, Any] | None,
    context: GraphQLContext,
) -> ExecutionResult:
    """Execute a prepared document with graphql-core's public ``execute``, suggesting no
    names (as the view's execution context; no extension of ours resolves fields)."""
    try:
        result = execute(
            schema,
            prepared.document,
            context_value=context,
            variable_values=variables,
            operation_name=prepared.operation_name,
            hide_suggestions=True,
        )
        if isawaitable(result):
            result = await result
    except Exception as exc:  # as strawberry: an error result, masked
        return ExecutionResult(None, [GraphQLError(str(exc), original_error=exc)])
    assert isinstance(result, ExecutionResult)
    return result


class GraphQLEndpoint:
    """The ASGI app at ``/graphql``: the fast path, else ``view``."""

    def __init__(
        self,
        view: GraphQLView,
        documents: DocumentCache,
        pipeline: Pipeline,
        *,
        max_body_bytes: int,
    ) -> None:
        self.view = view
        self.documents = documents
        self.schema = documents.schema
        self.pipeline = pipeline
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.view(scope, receive, send)
            return
        caller = read_caller(scope)
        if not _is_json(caller):
            await self.view(scope, receive, send)
            return
        try:
            body = await read_body(receive, caller, self.max_body_bytes)
        except ClientGone:
            return
        if body is None:
            await self.view.too_large(scope, receive, send)
            return
        fast = await self._fast_request(body)
        if fast is None:
            await self.view(scope, replay(body, receive), send)
            return
        await self._serve(send, caller, fast)

    async def _fast_request(self, body: bytes) -> FastRequest | None:
        """What the fast path runs for ``body``, or None when the view must answer."""
        try:
            data = from_json(body)
        except ValueError:  # not JSON, or nested too deeply: the view answers
            return None
        if type(data) is not dict:
            return None
        query = data.get("query")
        variables = data.get("variables")
        operation_name = data.get("operationName")
        if (
            type(query) is not str
            or (variables is not None and type(variables) is not dict)
            or (operation_name is not None and type(operation_name) is not str)
            or data.get("extensions") is not None
        ):
            return None
        prepared = await self.documents.get(query, operation_name)
        if prepared is None:
            return None
        return FastRequest(prepared, variables)

    async def _serve(self, send: Send, caller: HttpCaller, fast: FastRequest) -> None:
        request_id = caller.request_id
        trace_id = caller.trace_id or new_trace_id()
        response = ResponseHeaders(
            {
                "x-request-id": request_id,
                "traceparent": response_traceparent(trace_id, caller.traceparent),
            }
        )
        context = GraphQLContext(
            request=None,
            response=response,
            pipeline=self.pipeline,
            request_id=request_id,
            credentials=caller.credentials,
            idempotency_key=caller.idempotency_key,
            client=caller.client,
            trace_id=trace_id,
        )
        result = await execute_prepared(self.schema, fast.prepared, fast.variables, context)
        errors = None
        if result.errors:
            log_unexpected(result.errors, request_id)
            errors = [shape(error, request_id) for error in result.errors]
        data: GraphQLHTTPResponse = {"data": result.data}
        if errors:
            data["errors"] = [error.formatted for error in errors]
        await self.view.complete(context, errors, data)
        await send_response(send, 200, response.headers, json_bytes(data), JSON_MEDIA_TYPE)
