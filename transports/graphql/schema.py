"""The GraphQL schema, generated from the registry: one root field per installed contract.

Names follow DESIGN.md section 4: ``billing.capturePayment`` is ``billing_capturePayment``
(the latest version, on Query for queries and Mutation for commands) and every version
is also pinned as ``billing_capturePayment_v1_0_0``. Each field takes one ``input:``
argument typed from the contract's input model and returns its output model, nullable so
that one failed field leaves the others of a request intact.

Types are built once, here, from the pydantic models: field names are the camelCase
wire names, nested models become nested types, lists, enums, optional fields, decimals
and dates map to their GraphQL counterparts (an int not bounded to 32 bits, such as an
amount in minor units, is a ``BigInt``), and what GraphQL cannot say (unions, mappings,
``Any``) becomes the ``JSON`` scalar. Constraints (lengths, patterns, bounds)
stay the pipeline's to check, so every transport refuses the same inputs with the same
issues.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types.field import StrawberryField

from registry.contract import Contract
from registry.docs import ContractDoc, codes
from registry.registry import Operation, Registry
from transports.graphql.scalars import SCALARS
from transports.graphql.typemap import SchemaBuildError, ToWire, TypeMapper, doc_of

ExtensionFactory = Callable[[], SchemaExtension] | type[SchemaExtension]

# -- names ---------------------------------------------------------------------------------


def field_name(key: str) -> str:
    """``billing.capturePayment`` -> ``billing_capturePayment`` (GraphQL names have no dots)."""
    return key.replace(".", "_")


def pinned_field_name(key: str, version: str) -> str:
    """``billing.capturePayment``, ``1.0.0`` -> ``billing_capturePayment_v1_0_0``."""
    return f"{field_name(key)}_v{re.sub(r'[^0-9A-Za-z]', '_', version)}"


def wire_value(source: Any, name: str) -> Any:
    """Strawberry's default resolver: outputs are the pipeline's JSON dicts, keyed by the
    wire names that are also the GraphQL (and Python) names of the output types."""
    if type(source) is dict:
        return source.get(name)
    return getattr(source, name, None)


# -- root fields ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootField:
    """One root field: the operation it invokes, and how its input returns to the wire."""

    name: str
    operation: Operation
    version: str | None
    to_wire: ToWire | None

    @property
    def contract(self) -> Contract:
        return self.operation.contract


#: Builds the resolver of a root field (the transport's: it invokes the pipeline).
ResolverFactory = Callable[[RootField], Callable[..., Any]]


def field_description(contract: Contract, *, pinned: bool) -> str:
    doc = ContractDoc(contract)
    errors = ", ".join(e.code for e in doc.declared_errors) or "none"
    which = (
        f"version {contract.version}" if pinned else f"the latest version (now {contract.version})"
    )
    lines = [
        *doc.summary,
        f"Operation `{contract.key}`, {which}, {contract.kind}, {contract.stability}. {doc.rules}",
        f"Declared errors: {errors}. Any call may also answer "
        f"{', '.join(codes(doc.common_errors))}.",
    ]
    return "\n".join(lines)


def deprecation_reason(contract: Contract) -> str | None:
    return ContractDoc(contract).deprecation_notice


def _root_field(
    mapper: TypeMapper, root: RootField, resolver: Callable[..., Any], *, pinned: bool
) -> StrawberryField:
    contract = root.contract
    mapper.owner = root.name
    output = mapper.output_annotation(contract.output)
    annotations: dict[str, Any] = {"info": strawberry.Info, "return": Optional[output]}  # noqa: UP045
    if contract.input.model_fields:
        input_type, _ = mapper.input_type(contract.input)
        required = any(f.is_required() for f in contract.input.model_fields.values())
        argument = strawberry.argument(
            description=f"The input of {contract.key} {contract.version}"
            + (f": {doc_of(contract.input)}" if doc_of(contract.input) else "")
        )
        annotations["input"] = (
            Annotated[input_type, argument]
            if required
            else Annotated[Optional[input_type], argument]  # noqa: UP045
        )
    resolver.__name__ = root.name
    resolver.__qualname__ = root.name
    resolver.__annotations__ = annotations
    field: StrawberryField = strawberry.field(
        resolver=resolver,
        name=root.name,
        description=field_description(contract, pinned=pinned),
        deprecation_reason=deprecation_reason(contract),
    )
    return field


def root_fields(registry: Registry, mapper: TypeMapper) -> list[tuple[RootField, bool]]:
    """Every root field, with whether it is pinned: each key's latest version (resolved at
    call time, as REST's unversioned path), then every version pinned."""
    fields: list[tuple[RootField, bool]] = []
    seen: dict[str, str] = {}
    entries = [(op, False) for op in registry.latest()]
    entries += [(op, True) for op in registry.operations()]
    for op, pinned in entries:
        c = op.contract
        name = pinned_field_name(c.key, c.version_text) if pinned else field_name(c.key)
        ref = f"{c.ref}{'' if pinned else ' (latest)'}"
        if name in seen:
            raise SchemaBuildError(f"GraphQL field {name} would serve both {seen[name]} and {ref}")
        seen[name] = ref
        mapper.owner = name
        to_wire = mapper.input_type(c.input)[1] if c.input.model_fields else None
        fields.append((RootField(name, op, c.version_text if pinned else None, to_wire), pinned))
    return fields


def _root_type(name: str, fields: list[StrawberryField], description: str) -> type | None:
    if not fields:
        return None
    cls = types.new_class(name, (), {})
    for field in fields:
        assert field.graphql_name is not None
        setattr(cls, field.graphql_name, field)
    cls.__annotations__ = {}
    return strawberry.type(cls, name=name, description=description)


@strawberry.type(name="Query", description="No query operation is installed")
class _EmptyQuery:
    empty: bool | None = strawberry.field(name="_empty", default=None, description="Always null")


def build_schema(
    registry: Registry,
    resolver: ResolverFactory,
    *,
    extensions: Iterable[ExtensionFactory] = (),
    schema_class: type[strawberry.Schema] = strawberry.Schema,
) -> strawberry.Schema:
    """The schema for every operation of ``registry``, with ``resolver(root_field)`` as the
    resolver of each root field. Built once; nothing here runs per request."""
    mapper = TypeMapper()
    queries: list[StrawberryField] = []
    mutations: list[StrawberryField] = []
    for root, pinned in root_fields(registry, mapper):
        field = _root_field(mapper, root, resolver(root), pinned=pinned)
        (queries if root.contract.kind == "query" else mutations).append(field)
    query = _root_type("Query", queries, "Query operations: they read and change nothing")
    mutation = _root_type("Mutation", mutations, "Command operations: they change state")
    return schema_class(
        query=query or _EmptyQuery,
        mutation=mutation,
        extensions=tuple(extensions),
        config=StrawberryConfig(
            auto_camel_case=False,
            default_resolver=wire_value,
            scalar_map=SCALARS,
            sort_schema=True,
        ),
    )


__all__ = [
    "SCALARS",
    "ResolverFactory",
    "RootField",
    "SchemaBuildError",
    "TypeMapper",
    "build_schema",
    "field_name",
    "pinned_field_name",
]
