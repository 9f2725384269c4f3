"""Root-field resolvers: each builds an ``Invocation`` and renders its ``Outcome``.

A resolver is generated once per root field when the schema is built; per request it
only converts its ``input`` argument back to the wire dict (camelCase keys), invokes the
pipeline and returns the output dict, or raises the problem as a GraphQL error. The
pipeline does everything else (validation, policy, idempotency, the handler, audit).

strawberry declares each root field with ``resolver_for`` (whose signature types the
``input`` argument); the transport then installs ``direct_resolver`` in the built
graphql-core schema, which takes graphql-core's coerced input as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import GraphQLFieldResolver, GraphQLResolveInfo, GraphQLSchema
from starlette.requests import Request
from strawberry.types.unset import UNSET

from registry.invocation import Invocation
from registry.pipeline import Pipeline
from transports.graphql.errors import outcome_error
from transports.graphql.schema import RootField
from transports.graphql.typemap import ToWire

#: Problem headers worth passing on to the HTTP response.
FORWARDED_HEADERS = ("Retry-After",)


class HeaderSink(Protocol):
    """Response headers, as resolvers set them."""

    def __setitem__(self, key: str, value: str, /) -> None: ...


class SubResponse(Protocol):
    """Where resolvers put response headers (strawberry's sub-response, or the fast
    path's ``ResponseHeaders``)."""

    @property
    def headers(self) -> HeaderSink: ...


@dataclass(slots=True)
class ResponseHeaders:
    """The fast path's sub-response: headers only (lower-case names)."""

    headers: dict[str, str]


@dataclass(slots=True)
class GraphQLContext:
    """``info.context``: the HTTP request (None on the fast path, which has no request
    object), what every field of it shares, and the pipeline. ``response`` takes the
    headers resolvers add to the HTTP response."""

    request: Request | None
    response: SubResponse
    pipeline: Pipeline
    request_id: str
    credentials: str | None
    idempotency_key: str | None
    client: str | None
    #: The trace id of the request's ``traceparent`` (one trace for all its fields), or
    #: one made up for the request.
    trace_id: str | None = None
    #: Response keys of the mutation fields whose outcome was an idempotent replay.
    replayed: list[str] = field(default_factory=list)
    #: How many root fields invoked the pipeline (0 with errors: the request as a whole
    #: was refused, and is audited as such).
    invoked: int = 0


def field_idempotency_key(header: str | None, response_key: str) -> str | None:
    """The key of one mutation field: ``<Idempotency-Key>:<response key>``, so that each
    aliased mutation of a request has its own key and a retry of the same document
    replays each of them."""
    return None if header is None else f"{header}:{response_key}"


def _invoker(root: RootField) -> Callable[[Any, dict[str, Any]], Awaitable[Any]]:
    """One pipeline invocation of ``root`` with a wire ``payload``: its output, or the
    problem raised as a GraphQL error."""
    contract = root.contract
    key, version = contract.key, root.version
    is_command = contract.kind == "command"

    async def invoke(info: Any, payload: dict[str, Any]) -> Any:
        context: GraphQLContext = info.context
        context.invoked += 1
        response_key = info.path.key
        outcome = await context.pipeline.invoke(
            Invocation(
                key=key,
                version=version,
                input=payload,
                transport="graphql",
                credentials=context.credentials,
                idempotency_key=(
                    field_idempotency_key(context.idempotency_key, response_key)
                    if is_command
                    else None
                ),
                request_id=context.request_id,
                client=context.client,
                read_only=not is_command,
                trace_id=context.trace_id,
            )
        )
        if outcome.replayed:
            context.replayed.append(response_key)
            context.response.headers["idempotent-replayed"] = "true"
        if outcome.problem is None:
            return outcome.output
        for name in FORWARDED_HEADERS:
            if name in outcome.problem.headers:
                context.response.headers[name.lower()] = outcome.problem.headers[name]
        raise outcome_error(outcome)

    return invoke


def resolver_for(root: RootField) -> Callable[..., Awaitable[Any]]:
    """The resolver strawberry declares ``root`` with (its ``input`` argument typed by
    the schema builder): one pipeline invocation per execution of the field. Served
    schemas run ``direct_resolver`` instead (``install_direct_resolvers``)."""
    invoke = _invoker(root)
    to_wire: ToWire | None = root.to_wire
    if to_wire is None:

        async def resolve_without_input(info: Any) -> Any:
            return await invoke(info, {})

        return resolve_without_input

    async def resolve(info: Any, input: Any = UNSET) -> Any:
        payload = {} if input is UNSET or input is None else to_wire(input)
        return await invoke(info, payload)

    return resolve


def direct_resolver(root: RootField) -> GraphQLFieldResolver:
    """The graphql-core resolver of ``root``: the same invocation as ``resolver_for``,
    from graphql-core's coerced ``input`` dict, without strawberry's per-field wrapper
    (its ``Info``, and the conversion of the input to strawberry's classes and back)."""
    invoke = _invoker(root)
    to_wire: ToWire | None = root.to_wire

    async def resolve(_source: Any, info: GraphQLResolveInfo[Any], **arguments: Any) -> Any:
        value = arguments.get("input")
        payload = {} if value is None or to_wire is None else to_wire(value)
        return await invoke(info, payload)

    return resolve


def install_direct_resolvers(schema: GraphQLSchema, roots: Iterable[RootField]) -> None:
    """Make every root field of ``schema`` (built by ``build_schema`` with
    ``resolver_for``) resolve through ``direct_resolver``. Output fields keep strawberry's
    resolvers, which already read the pipeline's dicts directly."""
    for root in roots:
        root_type = schema.query_type if root.contract.kind == "query" else schema.mutation_type
        assert root_type is not None, f"{root.name} is not in the schema"
        root_type.fields[root.name].resolve = direct_resolver(root)
