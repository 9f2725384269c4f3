"""Validation of documents, the same on both paths of ``/graphql``.

The limits rule runs alone first: a document beyond the limits is refused with its
errors, and graphql-core's rules (some of which, such as the overlapping-fields check,
take more than linear time) run only on documents within them. Every walk over a
document visits each fragment once, so a fragment spread many times costs its size once.

Suggestions ("Did you mean 'keys_listKeys'?") would name fields a caller may not see, so
documents are validated without them; where an endpoint offers them (development), a
caller who may see every operation gets them (``with_suggestions``).

A document's validation is cached (per document and whether suggestions are shown) and
runs on a worker thread (``errors``), so that no request holds the event loop while a
new document is checked.
"""

from __future__ import annotations

from functools import lru_cache, partial

import anyio.to_thread
from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, validate
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from transports.graphql.limits import GraphQLLimits, limits_rule, validation_rules

#: The rules strawberry adds to every validation (``strawberry.schema.schema``).
STRAWBERRY_RULES: tuple[type[ASTValidationRule], ...] = (
    MaybeNullValidationRule,
    OneOfInputValidationRule,
)


class DocumentValidator:
    """The validation of one endpoint: its limits, its rules, and a cache of results."""

    def __init__(
        self,
        schema: GraphQLSchema,
        limits: GraphQLLimits,
        *,
        introspection: bool,
        cache_size: int,
    ) -> None:
        self.schema = schema
        self.limits_rules: tuple[type[ASTValidationRule], ...] = (limits_rule(limits),)
        self.rules = validation_rules(introspection=introspection) + STRAWBERRY_RULES
        self._cached = lru_cache(maxsize=cache_size)(self.validate)

    def validate(self, document: DocumentNode, suggestions: bool = False) -> list[GraphQLError]:
        """The document's errors (none when it is valid), computed here and now."""
        refused = validate(self.schema, document, self.limits_rules, hide_suggestions=True)
        if refused:
            return refused
        return validate(self.schema, document, self.rules, hide_suggestions=not suggestions)

    def cached(self, document: DocumentNode, suggestions: bool = False) -> list[GraphQLError]:
        """``validate``, once per document (the errors are shared: never change them)."""
        return self._cached(document, suggestions)

    async def errors(self, document: DocumentNode, suggestions: bool = False) -> list[GraphQLError]:
        """``cached``, on a worker thread."""
        return await anyio.to_thread.run_sync(partial(self.cached, document, suggestions))
