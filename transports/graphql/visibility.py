"""Introspection shows a caller only the operations it may invoke.

Execution always uses the one schema built at start-up (so a forbidden call is answered
by the pipeline with FORBIDDEN and audited); only introspection results are filtered:
root fields the caller's policy does not grant are removed, and so is every type that no
remaining root field reaches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension

from registry.pipeline import Pipeline
from registry.registry import Operation

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
#: Scalars introspection itself uses: always shown.
BUILT_IN_SCALARS = frozenset({"String", "Boolean", "Int", "Float", "ID"})
ROOT_TYPES = ("Query", "Mutation")


def root_selections(document: DocumentNode) -> Iterator[FieldNode]:
    """The fields selected at the root of the document's operations, through inline
    fragments and fragment spreads; each fragment is entered once, however often it is
    spread (a field selected through several spreads is yielded once)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    pending = [
        d.selection_set for d in document.definitions if isinstance(d, OperationDefinitionNode)
    ]
    entered: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in entered:
                    entered.add(name)
                    pending.append(fragment.selection_set)


def introspection_keys(document: DocumentNode) -> dict[str, str]:
    """Response key -> ``__schema``/``__type`` for the document's introspection fields."""
    keys: dict[str, str] = {}
    for field in root_selections(document):
        if field.name.value in INTROSPECTION_FIELDS:
            keys[field.alias.value if field.alias else field.name.value] = field.name.value
    return keys


def reachable_types(schema: GraphQLSchema, hidden: frozenset[str]) -> frozenset[str]:
    """Names of the types reachable from the root fields not in ``hidden``."""
    seen: set[str] = set()
    pending: list[Any] = []
    for root_name in ROOT_TYPES:
        root = schema.get_type(root_name)
        if isinstance(root, GraphQLObjectType):
            for name, field in root.fields.items():
                if name not in hidden:
                    pending.append(field.type)
                    pending.extend(arg.type for arg in field.args.values())
    while pending:
        named = get_named_type(pending.pop())
        if named is None or named.name in seen:
            continue
        seen.add(named.name)
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field in named.fields.values():
                pending.append(field.type)
                pending.extend(arg.type for arg in field.args.values())
            pending.extend(getattr(named, "interfaces", ()))
        elif isinstance(named, GraphQLInputObjectType):
            pending.extend(f.type for f in named.fields.values())
        elif isinstance(named, GraphQLUnionType):
            pending.extend(named.types)
    return frozenset(seen)


class Visibility:
    """What introspection may show, per set of hidden root fields (cached)."""

    def __init__(self, schema: GraphQLSchema, roots: dict[str, Operation]) -> None:
        self.schema = schema
        self.roots = roots
        self._reachable = lru_cache(maxsize=64)(self._reachable_uncached)

    def _reachable_uncached(self, hidden: frozenset[str]) -> frozenset[str]:
        return reachable_types(self.schema, hidden)

    async def hidden_for(self, pipeline: Pipeline, credentials: str | None) -> frozenset[str]:
        actor = await pipeline.actor_for(credentials)
        if actor is None:
            return frozenset(self.roots)
        return frozenset(
            [name for name, op in self.roots.items() if not await pipeline.may_attempt(actor, op)]
        )

    def _keep_type(self, name: Any, hidden: frozenset[str]) -> bool:
        if not isinstance(name, str) or name.startswith("__") or name in ROOT_TYPES:
            return True
        if name in BUILT_IN_SCALARS:
            return True
        if name not in self.schema.type_map:
            return True
        return name in self._reachable(hidden)

    def _filter_type(self, value: Any, hidden: frozenset[str], name: str | None = None) -> Any:
        """A ``__Type`` result without hidden root fields, or None for a hidden type.
        ``name`` is the type's name where the position tells it (``queryType``)."""
        if not isinstance(value, dict):
            return value
        name = name or value.get("name")
        if name in ROOT_TYPES and isinstance(value.get("fields"), list):
            value["fields"] = [f for f in value["fields"] if f.get("name") not in hidden]
        return value if self._keep_type(name, hidden) else None

    def filter(self, data: dict[str, Any], keys: dict[str, str], hidden: frozenset[str]) -> None:
        """Remove, in place, what the caller may not see from introspection results."""
        for key, field in keys.items():
            value = data.get(key)
            if not isinstance(value, dict):
                continue
            if field == "__type":
                data[key] = self._filter_type(value, hidden)
                continue
            for position, root in (("queryType", "Query"), ("mutationType", "Mutation")):
                if position in value:
                    value[position] = self._filter_type(value[position], hidden, root)
            types = value.get("types")
            if isinstance(types, list):
                value["types"] = [
                    t for t in (self._filter_type(t, hidden) for t in types) if t is not None
                ]


class IntrospectionFilter(SchemaExtension):
    """Filters introspection results by the caller's policy after execution."""

    def __init__(self, visibility: Visibility, pipeline: Pipeline) -> None:
        self.visibility = visibility
        self.pipeline = pipeline

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context
        result = context.result
        document = context.graphql_document
        if result is None or document is None or not isinstance(result.data, dict):
            return
        keys = introspection_keys(document)
        if not keys:
            return
        credentials = getattr(context.context, "credentials", None)
        hidden = await self.visibility.hidden_for(self.pipeline, credentials)
        if hidden:
            self.visibility.filter(result.data, keys, hidden)
