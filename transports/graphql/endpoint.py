"""``/graphql`` as a raw ASGI endpoint: a fast path for the common request, the strawberry
view for every other.

The common request is a POST of a JSON object (``query``, optional ``variables`` and
``operationName``, no ``extensions``) whose document is valid, runs a query or mutation
and does not introspect. For it the endpoint reads the headers once from the scope, the
body from ``receive``, takes the document prepared once per text (``DocumentCache``:
parsed, validated with the endpoint's rules and limits), executes it with graphql-core's
``execute`` against the strawberry schema, and answers with raw ASGI messages. Errors are
shaped, logged and audited as the view does, and the response carries the same headers
(``X-Request-Id``, ``traceparent``, ``Idempotent-Replayed``, ``Retry-After``).

Any other request (another method, another content type, a body that is not such an
object or is too large, a document that is not cached as prepared) goes to the view, with
the body already read replayed to it.

Why this path exists: docs/performance.md, "Library paths".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSchema, execute
from pydantic_core import from_json
from starlette.types import Message, Receive, Scope, Send
from strawberry.http import GraphQLHTTPResponse

from registry.invocation import request_id_from
from registry.pipeline import Pipeline
from registry.tracing import new_trace_id, response_traceparent, trace_id_from
from transports.graphql.documents import DocumentCache, PreparedDocument
from transports.graphql.errors import log_unexpected, shape
from transports.graphql.resolvers import GraphQLContext, ResponseHeaders
from transports.graphql.view import GraphQLView
from transports.http import (
    RequestHeaders,
    client_of,
    credentials_from,
    json_bytes,
    send_response,
)

JSON_MEDIA_TYPE = "application/json"


def _is_json(headers: RequestHeaders) -> bool:
    media_type = (headers.content_type or "").partition(";")[0]
    return media_type.strip().lower() == JSON_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class FastRequest:
    """A request body the fast path can serve."""

    prepared: PreparedDocument
    variables: dict[str, Any] | None


def _replay(messages: Iterable[Message], receive: Receive) -> Receive:
    """``receive``, giving back ``messages`` (already received) first."""
    pending = deque(messages)

    async def replayed() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replayed


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
        headers = RequestHeaders.of(scope)
        if not _is_json(headers) or headers.declares_more_than(self.max_body_bytes):
            await self.view(scope, receive, send)
            return
        messages, body = await self._read_body(receive)
        fast = None if body is None else await self._fast_request(body)
        if fast is None:
            await self.view(scope, _replay(messages, receive), send)
            return
        await self._serve(scope, send, headers, fast)

    async def _read_body(self, receive: Receive) -> tuple[list[Message], bytes | None]:
        """The messages received and the whole body; None for the body when it is too
        large or the client left (the view then answers from the replayed messages)."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages, None
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return messages, None
            if not message.get("more_body", False):
                break
        if len(messages) == 1:
            return messages, messages[0].get("body", b"")
        return messages, b"".join(m.get("body", b"") for m in messages)

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

    async def _serve(
        self, scope: Scope, send: Send, headers: RequestHeaders, fast: FastRequest
    ) -> None:
        request_id = request_id_from(headers.request_id)
        trace_id = trace_id_from(headers.traceparent) or new_trace_id()
        response = ResponseHeaders(
            {
                "x-request-id": request_id,
                "traceparent": response_traceparent(trace_id, headers.traceparent),
            }
        )
        context = GraphQLContext(
            request=None,
            response=response,
            pipeline=self.pipeline,
            request_id=request_id,
            credentials=credentials_from(headers.authorization),
            idempotency_key=headers.idempotency_key,
            client=client_of(scope),
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
