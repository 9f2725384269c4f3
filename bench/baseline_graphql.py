"""The GraphQL baseline: a bare strawberry app answering ``system_ping`` by hand.

One hand-written resolver validates the very ``PingInput`` our contract uses and answers
the same shape (``message``, ``actorId``, ``tenantId``), served by strawberry's own ASGI
view with its parser and validation caches on. No identity, policy or audit: what a
strawberry application does for this query without our pipeline.
"""

from __future__ import annotations

import strawberry
from pydantic import ValidationError
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache

from bench import BENCH_ACTOR
from specs.system.ping import PingInput, PingOutput

PATH = "/graphql"


@strawberry.input(name="PingInput")
class PingInputType:
    message: str = "ping"


@strawberry.type(name="PingOutput")
class PingOutputType:
    message: str
    actor_id: str
    tenant_id: str | None


async def resolve_ping(input: PingInputType | None = None) -> PingOutputType | None:
    """Validate a PingInput and answer a PingOutput, as ``system.ping`` does."""
    raw = {} if input is None else {"message": input.message}
    try:
        data = PingInput.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(exc.json(include_url=False, include_input=False)) from None
    output = PingOutput(message=data.message, actor_id=BENCH_ACTOR, tenant_id=BENCH_ACTOR)
    return PingOutputType(
        message=output.message, actor_id=output.actor_id, tenant_id=output.tenant_id
    )


@strawberry.type
class Query:
    system_ping: PingOutputType | None = strawberry.field(resolver=resolve_ping, name="system_ping")


def create_schema() -> strawberry.Schema:
    """The schema, with strawberry's parser and validation caches (default sizes)."""
    return strawberry.Schema(query=Query, extensions=[ParserCache, ValidationCache])


def routes() -> list[Route]:
    """``POST /graphql``, served by strawberry's ASGI view (no GraphiQL)."""
    return [Route(PATH, GraphQL(create_schema(), graphql_ide=None))]
