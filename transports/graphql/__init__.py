"""GraphQL: every installed contract as a root field, every call through the pipeline.

``GraphQLTransport(pipeline).routes()`` mounts ``/graphql``; ``graphql_sdl(registry)`` is
the schema as SDL (``specops graphql-schema``).
"""

from transports.graphql.limits import GraphQLLimits
from transports.graphql.schema import build_schema
from transports.graphql.transport import GraphQLTransport, graphql_sdl

__all__ = ["GraphQLLimits", "GraphQLTransport", "build_schema", "graphql_sdl"]
