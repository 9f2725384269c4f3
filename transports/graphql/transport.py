"""GraphQL at ``/graphql``: the schema generated from the registry, each root field
resolved through the one pipeline (transport ``graphql``).

Per request the endpoint only reads HTTP: the credentials (``Authorization``, as on
REST), the ``Idempotency-Key`` (mutations: ``<key>:<response key>`` per field), the
request id (``X-Request-Id``, shared by every field of the request and returned), the
trace (``traceparent``, shared likewise, and answered with a new span id). The
schema, its resolvers and its validation rules are built once, in the constructor.

Two paths serve the endpoint (``endpoint.GraphQLEndpoint``): the common POST of a valid,
already prepared document is executed directly (documents are parsed and validated once
per text, ``documents.DocumentCache``); everything else goes to strawberry's ASGI view
(``view.GraphQLView``), with its parser and validation caches.
"""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
from graphql import GraphQLSchema
from starlette.routing import Route
from strawberry.extensions import MaxTokensLimiter, ParserCache

from registry.pipeline import Pipeline
from registry.registry import Registry
from transports.graphql.documents import DocumentCache
from transports.graphql.endpoint import GraphQLEndpoint
from transports.graphql.errors import ProblemSchema
from transports.graphql.limits import GraphQLLimits
from transports.graphql.resolvers import install_direct_resolvers, resolver_for
from transports.graphql.schema import ExtensionFactory, TypeMapper, build_schema, root_fields
from transports.graphql.validation import DocumentValidator
from transports.graphql.view import GraphQLView, Validation
from transports.graphql.visibility import IntrospectionFilter, Visibility

DEFAULT_CACHE_SIZE = 256


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema strawberry built and executes. strawberry has no public
    accessor for it: this is the one place that reads it (the version is pinned)."""
    core: GraphQLSchema = schema._schema
    return core


class GraphQLTransport:
    """The GraphQL endpoint for every operation of the pipeline's registry.

    ``introspection`` should be off in production (clients then work from the SDL that
    ``specops graphql-schema`` prints), and so should ``suggestions`` (validation errors
    that suggest names, "Did you mean ...?", shown only to callers who may see every
    operation); ``graphiql`` serves the GraphiQL page on a browser's GET (it needs
    introspection, and loads its assets from a CDN).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        path: str = "/graphql",
        introspection: bool = True,
        suggestions: bool = False,
        graphiql: bool = False,
        limits: GraphQLLimits | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.pipeline = pipeline
        self.path = path
        self.limits = limits or GraphQLLimits()
        self.suggestions = suggestions
        self._parser_cache_size = cache_size
        self.schema = build_schema(
            pipeline.registry,
            resolver_for,
            extensions=self._extensions(),
            schema_class=ProblemSchema,
        )
        roots = [root for root, _ in root_fields(pipeline.registry, TypeMapper())]
        core = core_schema(self.schema)
        install_direct_resolvers(core, roots)
        self.visibility = Visibility(core, {r.name: r.operation for r in roots})
        self.validator = DocumentValidator(
            core, self.limits, introspection=introspection, cache_size=cache_size
        )
        self.view = GraphQLView(
            self.schema,
            pipeline,
            graphiql=graphiql and introspection,
            max_body_bytes=self.limits.max_body_bytes,
        )
        self.documents = DocumentCache(
            self.validator,
            max_tokens=self.limits.max_tokens,
            maxsize=cache_size,
        )
        self.endpoint = GraphQLEndpoint(
            self.view,
            self.documents,
            pipeline,
            max_body_bytes=self.limits.max_body_bytes,
        )

    def _extensions(self) -> Iterable[ExtensionFactory]:
        """The view's extensions, made per request (they read this transport's validator
        and visibility, built after the schema)."""
        return (
            lambda: IntrospectionFilter(self.visibility, self.pipeline),
            lambda: MaxTokensLimiter(max_token_count=self.limits.max_tokens),
            lambda: ParserCache(maxsize=self._parser_cache_size),
            lambda: Validation(
                self.validator, self.visibility, self.pipeline, suggestions=self.suggestions
            ),
        )

    def routes(self) -> list[Route]:
        return [Route(self.path, self.endpoint)]


def graphql_sdl(registry: Registry) -> str:
    """The schema ``GraphQLTransport`` serves for ``registry``, as SDL (types sorted by
    name), for ``specops graphql-schema`` and the reviewed snapshot."""
    schema = build_schema(registry, resolver_for, schema_class=ProblemSchema)
    return schema.as_str().rstrip("\n") + "\n"
