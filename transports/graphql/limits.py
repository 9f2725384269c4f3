"""What a public GraphQL endpoint refuses before running anything.

One validation rule measures each operation in a single walk of the document: its field
depth, its root fields (each one is a pipeline invocation, so this caps the batch a
request can carry), its aliases and an estimated cost. Fragments count as they
expand (a fragment spread twice counts twice) but are walked once each, so the walk takes
time linear in the document and refuses a fragment bomb before anything expands it. The
parser's token limit bounds the document before that; graphql-core's introspection depth
rule bounds introspection, which can also be switched off. Errors carry
``extensions.code`` like every other error (``MALFORMED_REQUEST``, title "Query exceeds
the server's limits").

The rules are assembled once per transport (``validation.DocumentValidator`` runs the
limits rule first, then the others).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    ValueNode,
    get_named_type,
    specified_rules,
)
from graphql.language.visitor import SKIP, VisitorAction
from graphql.utilities.validate_input_value import validate_input_literal
from graphql.validation import (
    MaxIntrospectionDepthRule,
    NoSchemaIntrospectionCustomRule,
    ProvidedRequiredArgumentsRule,
    ValuesOfCorrectTypeRule,
)

from registry.errors import CATALOGUE
from transports.graphql.errors import (
    INTROSPECTION_DISABLED,
    QUERY_TOO_COMPLEX,
    input_issue,
    tag,
)

#: Nesting of selection sets and fragments at which the walk gives up (whatever the
#: depth limit), so that no document can exhaust the interpreter's stack.
MAX_NESTING = 64


@dataclass(frozen=True, slots=True)
class GraphQLLimits:
    """Limits for one GraphQL endpoint. The defaults fit the generated schema (its deepest
    output is a few levels) with room to spare, and refuse abuse early."""

    #: Deepest nesting of fields in an operation (``{ a { b } }`` is 2).
    max_depth: int = 10
    #: Root fields in one operation: each is one operation call through the pipeline.
    max_root_fields: int = 10
    #: Aliased fields in one document.
    max_aliases: int = 15
    #: Estimated cost of an operation (see ``root_field_cost`` and ``list_factor``).
    max_cost: int = 1000
    #: Tokens the parser reads before giving up.
    max_tokens: int = 2000
    #: Bytes of a request body.
    max_body_bytes: int = 1024 * 1024
    #: Cost of a root field (an invocation); every other field costs 1.
    root_field_cost: int = 10
    #: What the selections under a list field are multiplied by, per list level.
    list_factor: int = 10

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 1:
                raise ValueError(f"GraphQLLimits.{name} must be at least 1")


class Measure(NamedTuple):
    depth: int = 0
    cost: int = 0
    aliases: int = 0
    root_fields: int = 0

    def plus(self, other: Measure) -> Measure:
        return Measure(
            max(self.depth, other.depth),
            self.cost + other.cost,
            self.aliases + other.aliases,
            self.root_fields + other.root_fields,
        )


class _TooDeep(Exception):
    pass


def _list_levels(tp: GraphQLOutputType) -> int:
    levels = 0
    while True:
        if isinstance(tp, GraphQLNonNull):
            tp = tp.of_type
        elif isinstance(tp, GraphQLList):
            levels += 1
            tp = tp.of_type
        else:
            return levels


class Measurer:
    """Measures operations of one document; fragments are measured once each."""

    def __init__(self, context: ValidationContext, limits: GraphQLLimits) -> None:
        self.context = context
        self.limits = limits
        #: Selections visited so far: each selection of the document at most twice (a
        #: fragment's are measured at the root and below it).
        self.steps = 0
        self.fragments = {
            d.name.value: d
            for d in context.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[tuple[str, bool], Measure] = {}
        self.entered: set[tuple[str, bool]] = set()

    def operation(self, node: OperationDefinitionNode) -> Measure:
        schema = self.context.schema
        root = {
            OperationType.QUERY: schema.query_type,
            OperationType.MUTATION: schema.mutation_type,
            OperationType.SUBSCRIPTION: schema.subscription_type,
        }[node.operation]
        return self.selections(node.selection_set, root, at_root=True, depth=0, nesting=0)

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType | None,
        *,
        at_root: bool,
        depth: int,
        nesting: int,
    ) -> Measure:
        if nesting > MAX_NESTING:
            raise _TooDeep
        total = Measure()
        for selection in selection_set.selections:
            self.steps += 1
            if isinstance(selection, FieldNode):
                total = total.plus(
                    self.field(selection, parent, at_root=at_root, depth=depth, nest=nesting)
                )
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.context.schema.get_type(condition.name.value) if condition else parent
                total = total.plus(
                    self.selections(
                        selection.selection_set,
                        target,
                        at_root=at_root,
                        depth=depth,
                        nesting=nesting + 1,
                    )
                )
            elif isinstance(selection, FragmentSpreadNode):
                total = total.plus(
                    self.spread(selection.name.value, at_root=at_root, depth=depth, nest=nesting)
                )
        return total

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType | None,
        *,
        at_root: bool,
        depth: int,
        nest: int,
    ) -> Measure:
        if node.name.value.startswith("__"):
            # __typename, and introspection (bounded by its own rule, not measured inside):
            # a field without depth
            return Measure(cost=1, aliases=1 if node.alias else 0)
        if depth + 1 > self.limits.max_depth:
            raise _TooDeep
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(node.name.value)
        own = Measure(
            depth=depth + 1,
            cost=self.limits.root_field_cost if at_root else 1,
            aliases=1 if node.alias else 0,
            root_fields=1 if at_root else 0,
        )
        if node.selection_set is None:
            return own
        child_type = get_named_type(definition.type) if definition else None
        inner = self.selections(
            node.selection_set, child_type, at_root=False, depth=depth + 1, nesting=nest + 1
        )
        factor = self.limits.list_factor ** _list_levels(definition.type) if definition else 1
        return Measure(
            depth=max(own.depth, inner.depth),
            cost=own.cost + factor * inner.cost,
            aliases=own.aliases + inner.aliases,
            root_fields=own.root_fields,
        )

    def spread(self, name: str, *, at_root: bool, depth: int, nest: int) -> Measure:
        fragment = self.fragments.get(name)
        key = (name, at_root)
        if fragment is None or key in self.entered:
            return Measure()  # unknown or cyclic: other rules report it
        measured = self.memo.get(key)
        if measured is None:
            self.entered.add(key)
            try:
                target = self.context.schema.get_type(fragment.type_condition.name.value)
                # measured from depth 0 and shifted, so one measure serves every spread
                measured = self.selections(
                    fragment.selection_set, target, at_root=at_root, depth=0, nesting=nest + 1
                )
            finally:
                self.entered.discard(key)
            self.memo[key] = measured
        shifted = Measure(measured.depth + depth if measured.depth else 0, *measured[1:])
        if shifted.depth > self.limits.max_depth:
            raise _TooDeep
        return shifted


def limits_rule(
    limits: GraphQLLimits, walks: list[Measurer] | None = None
) -> type[ASTValidationRule]:
    """A validation rule that refuses documents beyond ``limits`` (each walk's measurer is
    appended to ``walks``, when given, for tests to count its steps)."""

    class QueryLimitsRule(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> VisitorAction:
            measurer = Measurer(self.context, limits)
            if walks is not None:
                walks.append(measurer)
            aliases = 0
            for definition in node.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                try:
                    measured = measurer.operation(definition)
                except _TooDeep:
                    self.refuse(
                        definition,
                        f"The query nests deeper than the limit of {limits.max_depth} levels",
                        "depth",
                        limits.max_depth,
                    )
                    continue
                aliases += measured.aliases
                if measured.root_fields > limits.max_root_fields:
                    self.refuse(
                        definition,
                        f"The operation selects {measured.root_fields} root fields; "
                        f"the limit is {limits.max_root_fields} (each is one operation call)",
                        "rootFields",
                        limits.max_root_fields,
                    )
                if measured.cost > limits.max_cost:
                    self.refuse(
                        definition,
                        f"The query's estimated cost is {measured.cost}; "
                        f"the limit is {limits.max_cost}",
                        "cost",
                        limits.max_cost,
                    )
            if aliases > limits.max_aliases:
                self.refuse(
                    node,
                    f"The query uses {aliases} aliases; the limit is {limits.max_aliases}",
                    "aliases",
                    limits.max_aliases,
                )
            return SKIP

        def refuse(self, node: Any, detail: str, name: str, limit: int) -> None:
            error = GraphQLError(detail, node if not isinstance(node, DocumentNode) else None)
            self.report_error(tag(error, QUERY_TOO_COMPLEX, limit={"name": name, "max": limit}))

    return QueryLimitsRule


class InputValuesRule(ValuesOfCorrectTypeRule):
    """graphql-core's literal type check, reporting ``INVALID_INPUT`` with the field's path
    inside the argument, as the pipeline would."""

    def is_valid_value_node(self, node: ValueNode, input_type: Any) -> VisitorAction:
        if input_type:

            def on_error(error: GraphQLError, path: list[str | int]) -> None:
                issue = input_issue(error.message, path)
                self.report_error(tag(error, CATALOGUE.INVALID_INPUT, issues=(issue,)))

            validate_input_literal(
                node, input_type, on_error, None, None, self.context.hide_suggestions
            )
        return SKIP


class RequiredInputRule(ProvidedRequiredArgumentsRule):
    """A missing required ``input`` argument is ``INVALID_INPUT`` (a missing directive
    argument stays a malformed document)."""

    def report_error(self, error: GraphQLError) -> None:
        if error.nodes and isinstance(error.nodes[0], FieldNode):
            issue = input_issue(error.message)
            error = tag(error, CATALOGUE.INVALID_INPUT, issues=(issue,))
        super().report_error(error)


class IntrospectionDisabledRule(NoSchemaIntrospectionCustomRule):
    def report_error(self, error: GraphQLError) -> None:
        error.message = "Introspection is disabled on this server"
        super().report_error(tag(error, INTROSPECTION_DISABLED))


_REPLACED: dict[type[ASTValidationRule], type[ASTValidationRule]] = {
    ValuesOfCorrectTypeRule: InputValuesRule,
    ProvidedRequiredArgumentsRule: RequiredInputRule,
}


def validation_rules(*, introspection: bool) -> tuple[type[ASTValidationRule], ...]:
    """Every rule a document within the limits must pass, built once per endpoint."""
    rules = [_REPLACED.get(rule, rule) for rule in specified_rules]
    rules.append(MaxIntrospectionDepthRule)
    if not introspection:
        rules.append(IntrospectionDisabledRule)
    return tuple(rules)
