"""strawberry's ASGI view, serving every ``/graphql`` request the fast path does not:
GET queries, GraphiQL, introspection, documents that fail to parse or validate, batches,
bodies that are not JSON or too large, and the websocket handshake (refused).

Requests that cannot be executed at all (not JSON, JSON nested too deeply, no query, a
batch, too large, a mutation over GET) answer their HTTP status with a GraphQL-shaped
body whose error has ``extensions.code``; they, and documents no field of which ran,
are audited once each against the endpoint (operation key ``graphql``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import strawberry
from cross_web import HTTPException
from graphql import GraphQLError
from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from registry.errors import CATALOGUE, ErrorSpec
from registry.ids import new_trace_id
from registry.pipeline import Pipeline
from registry.tracing import response_traceparent
from transports.graphql.errors import problem_extensions
from transports.graphql.resolvers import GraphQLContext
from transports.graphql.validation import DocumentValidator
from transports.graphql.visibility import Visibility
from transports.http import ClientGone, json_bytes, read_body, read_caller, replay

#: What answers a body (or ``variables`` parameter) nested deeper than the JSON parser's
#: limit, as REST answers one.
TOO_DEEP = "The request's JSON nests too deeply"


class Validation(SchemaExtension):
    """Validates the document with the endpoint's ``DocumentValidator`` (cached, on a
    worker thread). With ``suggestions`` on, a caller who may see every operation gets
    errors that suggest names; every other caller gets none."""

    def __init__(
        self,
        validator: DocumentValidator,
        visibility: Visibility,
        pipeline: Pipeline,
        *,
        suggestions: bool,
    ) -> None:
        self.validator = validator
        self.visibility = visibility
        self.pipeline = pipeline
        self.suggestions = suggestions

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        assert document is not None  # strawberry validates parsed documents only
        errors = await self.validator.errors(document)
        if errors and self.suggestions and await self._sees_everything(context.context):
            errors = await self.validator.errors(document, suggestions=True)
        context.pre_execution_errors = errors
        yield

    async def _sees_everything(self, graphql_context: Any) -> bool:
        credentials = getattr(graphql_context, "credentials", None)
        return not await self.visibility.hidden_for(self.pipeline, credentials)


def _status_spec(status: int, reason: str) -> ErrorSpec:
    if status == 413:
        return CATALOGUE.PAYLOAD_TOO_LARGE
    if status == 415 or reason == "Unsupported content type":
        return CATALOGUE.UNSUPPORTED_MEDIA_TYPE
    if status == 405:
        return CATALOGUE.METHOD_NOT_ALLOWED
    return ErrorSpec("MALFORMED_REQUEST", status, "Malformed request")


class GraphQLView(GraphQL[GraphQLContext, None]):
    """strawberry's ASGI view, with our context, problem-shaped request errors and a body
    size limit."""

    def __init__(
        self,
        schema: strawberry.Schema,
        pipeline: Pipeline,
        *,
        graphiql: bool,
        max_body_bytes: int,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=True,
            subscription_protocols=(),
        )
        self.pipeline = pipeline
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no subscriptions: refuse the handshake
            await WebSocket(scope, receive, send).close(code=1008)
            return
        try:
            body = await read_body(receive, read_caller(scope), self.max_body_bytes)
        except ClientGone:
            return
        if body is None:
            await self.too_large(scope, receive, send)
            return
        request = Request(scope, replay(body, receive))
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = await self._request_error(scope, exc.status_code, exc.reason)
        await response(scope, receive, send)

    async def too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request whose body is over the limit."""
        detail = f"Bodies are limited to {self.max_body_bytes} bytes"
        response = await self._request_error(scope, 413, detail)
        await response(scope, receive, send)

    async def _request_error(self, scope: Scope, status: int, reason: str) -> Response:
        """The answer to a request that cannot be executed at all, audited against
        ``graphql``."""
        caller = read_caller(scope)
        spec = _status_spec(status, reason)
        await self.pipeline.record_refusal(
            transport="graphql",
            endpoint="graphql",
            error=spec(reason),
            request_id=caller.request_id,
            client=caller.client,
            trace_id=caller.trace_id,
            credentials=caller.credentials,
        )
        extensions = problem_extensions(spec, reason, request_id=caller.request_id)
        body = {"data": None, "errors": [{"message": reason, "extensions": extensions}]}
        return Response(
            json_bytes(body),
            spec.status,
            headers={"X-Request-Id": caller.request_id},
            media_type="application/json",
        )

    async def get_context(self, request: Any, response: Any) -> GraphQLContext:
        caller = read_caller(request.scope)
        response.headers["X-Request-Id"] = caller.request_id
        trace_id = caller.trace_id or new_trace_id()
        response.headers["traceparent"] = response_traceparent(trace_id, caller.traceparent)
        context = GraphQLContext(
            request=request,
            response=response,
            pipeline=self.pipeline,
            request_id=caller.request_id,
            credentials=caller.credentials,
            idempotency_key=caller.idempotency_key,
            client=caller.client,
            trace_id=trace_id,
        )
        request.state.graphql_context = context
        return context

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        data = await super().process_result(request, result)
        context = getattr(request.state, "graphql_context", None)
        if context is not None:
            await self.complete(context, result.errors, data)
        return data

    async def complete(
        self,
        context: GraphQLContext,
        errors: Sequence[GraphQLError] | None,
        data: GraphQLHTTPResponse,
    ) -> None:
        """What follows an execution, on either path: the audit of a document no field
        of which ran, and the ``replayed`` extension."""
        if context.invoked == 0 and errors:
            await self._audit_document_refusal(context, errors[0].extensions or {})
        if context.replayed:
            data["extensions"] = {**(data.get("extensions") or {}), "replayed": context.replayed}

    async def _audit_document_refusal(
        self, context: GraphQLContext, problem: dict[str, Any]
    ) -> None:
        """A request no field of which ran (a document that does not parse or validate,
        variables of the wrong type, too complex) is audited once, against ``graphql``."""
        spec = ErrorSpec(
            str(problem.get("code", "INVALID_DOCUMENT")),
            int(problem.get("status", 400)),
            str(problem.get("title", "Invalid GraphQL document")),
        )
        detail = str(problem.get("detail", spec.title))
        if spec.code == "INVALID_INPUT":  # graphql-core's messages quote the values sent
            paths = ", ".join(str(i.get("path")) for i in problem.get("issues") or ())
            detail = f"{spec.title} ({paths})" if paths else spec.title
        await self.pipeline.record_refusal(
            transport="graphql",
            endpoint="graphql",
            error=spec(detail),
            request_id=context.request_id,
            client=context.client,
            trace_id=context.trace_id,
            credentials=context.credentials,
        )

    def decode_json(self, data: str | bytes) -> object:
        """JSON parsed as REST parses it (pydantic's parser, whose nesting limit refuses a
        deeply nested body as malformed rather than exhausting the stack)."""
        try:
            return from_json(data)
        except ValueError as exc:
            if "recursion limit" in str(exc):
                raise HTTPException(400, TOO_DEEP) from None
            raise HTTPException(400, "Unable to parse request body as JSON") from None

    def encode_json(self, data: object) -> bytes:
        return json_bytes(data)
