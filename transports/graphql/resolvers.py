"""Root-field resolvers: each builds an ``Invocation`` and renders its ``Outcome``.

A resolver is generated once per root field when the schema is built; per request it
only converts its ``input`` argument back to the wire dict (camelCase keys), invokes the
pipeline and returns the output dict, or raises the problem as a GraphQL error. The
pipeline does everything else (validation, policy, idempotency, the handler, audit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from strawberry.types.unset import UNSET

from registry.invocation import Invocation
from registry.pipeline import Pipeline
from transports.graphql.errors import outcome_error
from transports.graphql.schema import RootField, ToWire

#: Problem headers worth passing on to the HTTP response.
FORWARDED_HEADERS = ("Retry-After",)


@dataclass(slots=True)
class GraphQLContext:
    """``info.context``: the HTTP request, what every field of it shares, and the
    pipeline. ``response`` is strawberry's sub-response, whose headers are sent."""

    request: Request
    response: Response
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


def resolver_for(root: RootField) -> Callable[..., Awaitable[Any]]:
    """The resolver of ``root``: one pipeline invocation per execution of the field."""
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
            context.response.headers["Idempotent-Replayed"] = "true"
        if outcome.problem is None:
            return outcome.output
        for name in FORWARDED_HEADERS:
            if name in outcome.problem.headers:
                context.response.headers[name] = outcome.problem.headers[name]
        raise outcome_error(outcome)

    to_wire: ToWire | None = root.to_wire
    if to_wire is None:

        async def resolve_without_input(info: Any) -> Any:
            return await invoke(info, {})

        return resolve_without_input

    async def resolve(info: Any, input: Any = UNSET) -> Any:
        payload = {} if input is UNSET or input is None else to_wire(input)
        return await invoke(info, payload)

    return resolve
