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

import enum
import inspect
import keyword
import re
import types
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, NewType, Optional, Union, get_args, get_origin

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode
from pydantic import BaseModel
from pydantic.fields import ComputedFieldInfo, FieldInfo
from pydantic_core import PydanticUndefined
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UNSET

from registry.contract import Contract
from registry.registry import Operation, Registry

GRAPHQL_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
RESERVED_NAMES = frozenset(
    {
        "BigInt",
        "Query",
        "Mutation",
        "Subscription",
        "String",
        "Int",
        "Float",
        "Boolean",
        "ID",
        "JSON",
        "Decimal",
        "DateTime",
        "Date",
        "Time",
        "UUID",
    }
)

#: Turns a value strawberry hands a resolver into what the contract's model validates.
ToWire = Callable[[Any], Any]
ExtensionFactory = Callable[[], SchemaExtension] | type[SchemaExtension]


class SchemaBuildError(ValueError):
    """A contract cannot be expressed in GraphQL; raised when the schema is built."""


# -- names ---------------------------------------------------------------------------------


def field_name(key: str) -> str:
    """``billing.capturePayment`` -> ``billing_capturePayment`` (GraphQL names have no dots)."""
    return key.replace(".", "_")


def pinned_field_name(key: str, version: str) -> str:
    """``billing.capturePayment``, ``1.0.0`` -> ``billing_capturePayment_v1_0_0``."""
    return f"{field_name(key)}_v{re.sub(r'[^0-9A-Za-z]', '_', version)}"


def _type_name(cls: type) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "", cls.__name__) or "Anonymous"


def _doc(cls: type) -> str | None:
    """A class's own docstring (not an inherited or generated one)."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return None
    if doc.startswith(("A base class for creating Pydantic models", "An enumeration.")):
        return None
    return inspect.cleandoc(doc)


# -- scalars -------------------------------------------------------------------------------
# Outputs arrive from the pipeline as JSON (decimals and dates as strings), inputs as
# GraphQL literals or variables: these scalars accept both, and parse decimal literals
# from their source text so that no amount ever passes through a float.


def _iso(value: Any) -> str:
    return value if isinstance(value, str) else str(value.isoformat())


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"Decimal cannot represent {value!r}; send a number or a string")
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"Decimal cannot represent {value!r}") from None
    if not parsed.is_finite():
        raise ValueError(f"Decimal cannot represent {value!r}")
    return parsed


def _parse_decimal_literal(node: ValueNode, _variables: Any = None) -> Decimal:
    if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
        return _parse_decimal(node.value)
    raise ValueError("Decimal literals are numbers or strings")


def _iso_parser(parse: Callable[[str], Any], what: str) -> Callable[[Any], Any]:
    def parse_value(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{what} must be an ISO 8601 string")
        try:
            return parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 {what}") from None

    return parse_value


def _parse_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))


_PLAIN = (str, float, bool, Decimal, datetime, date, time, uuid.UUID)

INT32 = (-(2**31), 2**31 - 1)
#: GraphQL's ``Int`` is 32-bit; an int the contract does not bound within that range (an
#: amount in minor units, say) is a ``BigInt``, so that no valid output fails to serialize.
BigInt = NewType("BigInt", int)


def _parse_bigint(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("BigInt cannot represent a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,30}", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"BigInt cannot represent {value!r}")


def _fits_int32(metadata: Sequence[Any]) -> bool:
    """Whether the constraints in ``metadata`` (``ge``/``gt``/``le``/``lt``) keep an int
    within GraphQL's 32-bit ``Int``."""
    low = high = None
    for item in metadata:
        for name, shift in (("ge", 0), ("gt", 1)):
            bound = getattr(item, name, None)
            if isinstance(bound, int) and not isinstance(bound, bool):
                low = bound + shift if low is None else max(low, bound + shift)
        for name, shift in (("le", 0), ("lt", -1)):
            bound = getattr(item, name, None)
            if isinstance(bound, int) and not isinstance(bound, bool):
                high = bound + shift if high is None else min(high, bound + shift)
    return low is not None and high is not None and INT32[0] <= low and high <= INT32[1]


SCALARS: Mapping[object, Any] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="An integer beyond the 32 bits of Int (a JSON number; a string of digits "
        "is accepted as input)",
        serialize=int,
        parse_value=_parse_bigint,
    ),
    Decimal: strawberry.scalar(
        name="Decimal",
        description="A decimal number, exact: sent and returned as a string such as "
        '"12.50" (number literals are read from their digits, never through a float)',
        serialize=str,
        parse_value=_parse_decimal,
        parse_literal=_parse_decimal_literal,
    ),
    datetime: strawberry.scalar(
        name="DateTime",
        description="A date and time, ISO 8601 (2024-05-01T12:00:00Z)",
        serialize=_iso,
        parse_value=_iso_parser(_parse_datetime, "date-time"),
    ),
    date: strawberry.scalar(
        name="Date",
        description="A calendar date, ISO 8601 (2024-05-01)",
        serialize=_iso,
        parse_value=_iso_parser(date.fromisoformat, "date"),
    ),
    time: strawberry.scalar(
        name="Time",
        description="A time of day, ISO 8601 (12:00:00)",
        serialize=_iso,
        parse_value=_iso_parser(time.fromisoformat, "time"),
    ),
}


def wire_value(source: Any, name: str) -> Any:
    """Strawberry's default resolver: outputs are the pipeline's JSON dicts, keyed by the
    wire names that are also the GraphQL (and Python) names of the output types."""
    if type(source) is dict:
        return source.get(name)
    return getattr(source, name, None)


# -- the model -> type mapping -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputField:
    """How one input field goes back to the wire: its name and its value's conversion."""

    name: str
    convert: ToWire | None


def _convert_list(convert: ToWire) -> ToWire:
    def to_wire(value: Any) -> Any:
        return None if value is None else [convert(item) for item in value]

    return to_wire


def _convert_enum(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _convert_object(fields: Sequence[InputField]) -> ToWire:
    """Converts an input object: strawberry's instance (fields left out are UNSET) or
    graphql-core's coerced dict (fields left out are absent)."""

    def to_wire(value: Any) -> Any:
        if value is None:
            return None
        wire: dict[str, Any] = {}
        is_dict = type(value) is dict
        for field in fields:
            item = value.get(field.name, UNSET) if is_dict else getattr(value, field.name)
            if item is UNSET:
                continue
            wire[field.name] = item if field.convert is None else field.convert(item)
        return wire

    return to_wire


def _strip_none(args: Iterable[Any]) -> tuple[list[Any], bool]:
    kept = [a for a in args if a is not type(None) and a is not None]
    return kept, len(kept) != len(tuple(args))


def _is_union(origin: Any) -> bool:
    return origin is Union or origin is types.UnionType


class TypeMapper:
    """Converts pydantic models (and what their fields hold) to strawberry types, once
    per class: a model used by several contracts is one GraphQL type."""

    def __init__(self) -> None:
        self._outputs: dict[type, type] = {}
        self._inputs: dict[type, tuple[type, ToWire]] = {}
        self._enums: dict[type, type[enum.Enum]] = {}
        self._names: dict[str, object] = dict.fromkeys(RESERVED_NAMES, "reserved")
        #: Suffix for a name another class already holds: the field being converted.
        self.owner = ""

    def _claim(self, name: str, source: object) -> str:
        """``name`` for ``source``, or, when another class holds it, ``name`` suffixed with
        the root field being converted (deterministic: fields are converted in order)."""
        candidate = name
        if self._names.setdefault(candidate, source) != source:
            candidate = f"{name}_{self.owner}" if self.owner else f"{name}_"
            while self._names.setdefault(candidate, source) != source:
                candidate += "_"
        return candidate

    # annotations ------------------------------------------------------------------------

    def output_annotation(self, annotation: Any, metadata: Sequence[Any] = ()) -> Any:
        """The strawberry annotation for an output value of ``annotation`` (``metadata``:
        the field's constraints, which decide whether an int fits GraphQL's ``Int``)."""
        return self._annotation(annotation, is_input=False, metadata=metadata)[0]

    def input_annotation(
        self, annotation: Any, metadata: Sequence[Any] = ()
    ) -> tuple[Any, ToWire | None]:
        """The strawberry annotation for an input value, and how to put it back on the wire
        (None: as it is)."""
        return self._annotation(annotation, is_input=True, metadata=metadata)

    def _annotation(
        self, tp: Any, *, is_input: bool, metadata: Sequence[Any] = ()
    ) -> tuple[Any, ToWire | None]:
        origin = get_origin(tp)
        if origin is Annotated:
            inner_tp, *extra = get_args(tp)
            return self._annotation(inner_tp, is_input=is_input, metadata=[*metadata, *extra])
        if _is_union(origin):
            args, nullable = _strip_none(get_args(tp))
            if len(args) == 1:
                inner, convert = self._annotation(args[0], is_input=is_input, metadata=metadata)
            else:
                inner, convert = JSON, None
            return (Optional[inner] if nullable else inner), convert  # noqa: UP045
        if origin in (list, set, frozenset, Sequence) or (
            origin is tuple and len(get_args(tp)) == 2 and get_args(tp)[1] is Ellipsis
        ):
            item, convert = self._annotation(get_args(tp)[0], is_input=is_input)
            return list[item], (None if convert is None else _convert_list(convert))  # type: ignore[valid-type]
        if tp is int:
            return (int if _fits_int32(metadata) else BigInt), None
        if origin is Literal:
            return self._literal(get_args(tp)), None
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self.enum(tp), _convert_enum
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if is_input:
                return self.input_type(tp)
            return self.output_type(tp), None
        if tp in _PLAIN:
            return tp, None
        return JSON, None

    @staticmethod
    def _literal(values: tuple[Any, ...]) -> Any:
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and (kind := kinds.pop()) in (str, int, float, bool):
            return kind
        return JSON

    # named types ------------------------------------------------------------------------

    def enum(self, cls: type[enum.Enum]) -> type[enum.Enum]:
        """A strawberry enum with the members of ``cls`` (a copy: the contract's enum is
        left untouched). GraphQL shows member names; the wire carries their values."""
        existing = self._enums.get(cls)
        if existing is not None:
            return existing
        name = self._claim(_type_name(cls), cls)
        copy = enum.Enum(name, [(m.name, m.value) for m in cls])  # type: ignore[misc]
        wrapped = strawberry.enum(copy, name=name, description=_doc(cls))
        self._enums[cls] = wrapped
        return wrapped

    def output_type(self, model: type[BaseModel]) -> type:
        existing = self._outputs.get(model)
        if existing is not None:
            return existing
        name = self._claim(_type_name(model), model)
        cls = types.new_class(name, (), {})
        self._outputs[model] = cls  # before the fields: a model may refer to itself
        fields: dict[str, StrawberryField] = {}
        annotations: dict[str, Any] = {}
        for python_name, info in model.model_fields.items():
            if info.exclude:
                continue
            wire = _wire_name(model, python_name, info.serialization_alias or info.alias)
            annotations[wire] = self.output_annotation(info.annotation, info.metadata)
            fields[wire] = strawberry.field(
                name=wire,
                description=info.description,
                deprecation_reason=_field_deprecation(info),
            )
        for python_name, computed in model.model_computed_fields.items():
            wire = _wire_name(model, python_name, computed.alias)
            annotations[wire] = self.output_annotation(computed.return_type)
            fields[wire] = strawberry.field(
                name=wire,
                description=computed.description,
                deprecation_reason=_field_deprecation(computed),
            )
        if not fields:
            raise SchemaBuildError(
                f"{model.__name__} has no fields; GraphQL object types need at least one"
            )
        return _decorate(cls, fields, annotations, name=name, doc=_doc(model), is_input=False)

    def input_type(self, model: type[BaseModel]) -> tuple[type, ToWire]:
        existing = self._inputs.get(model)
        if existing is not None:
            return existing
        base = _type_name(model)
        name = self._claim(base if base.endswith("Input") else f"{base}Input", ("input", model))
        cls = types.new_class(name, (), {})
        wire_fields: list[InputField] = []
        converter = _convert_object(wire_fields)  # filled below; recursion sees it
        self._inputs[model] = (cls, converter)
        fields: dict[str, StrawberryField] = {}
        annotations: dict[str, Any] = {}
        for python_name, info in model.model_fields.items():
            wire = _wire_name(model, python_name, _validation_name(info))
            annotation, convert = self.input_annotation(info.annotation, info.metadata)
            default: Any = UNSET
            if not info.is_required():
                literal = self._default_literal(info, annotation)
                if literal is _NO_LITERAL:
                    annotation = Optional[annotation]  # noqa: UP045
                else:
                    default = literal
                    if literal is None:
                        annotation = Optional[annotation]  # noqa: UP045
            annotations[wire] = annotation
            fields[wire] = strawberry.field(
                name=wire,
                description=info.description,
                default=default,
                deprecation_reason=_field_deprecation(info),
            )
            wire_fields.append(InputField(wire, convert))
        if not fields:
            raise SchemaBuildError(f"{model.__name__} has no fields")
        _decorate(cls, fields, annotations, name=name, doc=_doc(model), is_input=True)
        return cls, converter

    def _default_literal(self, info: FieldInfo, annotation: Any) -> Any:
        """The field's default as a GraphQL default value, when GraphQL can show it
        exactly; otherwise the field is optional and, left out, is left to the model."""
        if info.default_factory is not None or info.default is PydanticUndefined:
            return _NO_LITERAL
        value = info.default
        if value is None:
            return None
        inner = annotation
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            # the member's value: the sorted schema's enums coerce by value
            return value if value in {m.value for m in inner} else _NO_LITERAL
        if type(value) in (str, int, bool) and inner is type(value):
            return value
        if type(value) is float and inner is float:
            return value
        if type(value) is int and inner is BigInt:
            return value
        return _NO_LITERAL


_NO_LITERAL = object()


def _wire_name(model: type, python_name: str, alias: str | None) -> str:
    name = alias or python_name
    if not GRAPHQL_NAME.match(name) or keyword.iskeyword(name) or name.startswith("__"):
        raise SchemaBuildError(
            f"{model.__name__}.{python_name}: wire name {name!r} is not a usable GraphQL name"
        )
    return name


def _validation_name(info: FieldInfo) -> str | None:
    alias = info.validation_alias
    return alias if isinstance(alias, str) else info.alias


def _field_deprecation(info: FieldInfo | ComputedFieldInfo) -> str | None:
    deprecated = info.deprecated
    if deprecated is None or deprecated is False:
        return None
    if deprecated is True:
        return "Deprecated"
    return str(getattr(deprecated, "message", deprecated))


def _decorate(
    cls: type,
    fields: dict[str, StrawberryField],
    annotations: dict[str, Any],
    *,
    name: str,
    doc: str | None,
    is_input: bool,
) -> type:
    for attribute, value in fields.items():
        setattr(cls, attribute, value)
    cls.__annotations__ = annotations
    decorate = strawberry.input if is_input else strawberry.type
    return decorate(cls, name=name, description=doc)


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
    errors = ", ".join(e.code for e in contract.errors) or "none"
    which = (
        f"version {contract.version}" if pinned else f"the latest version (now {contract.version})"
    )
    return (
        f"{contract.description}\n"
        f"Operation `{contract.key}`, {which}, {contract.kind}, {contract.stability}. "
        f"Goal: {contract.goal}. Declared errors: {errors}."
    )


def deprecation_reason(contract: Contract) -> str | None:
    if not contract.deprecated:
        return None
    retired = contract.deprecation
    if retired is None:
        return f"{contract.key} {contract.version} is deprecated"
    parts = [retired.reason.rstrip(".") + "."]
    if retired.sunset:
        parts.append(f"Sunset {retired.sunset.isoformat()}.")
    successor = retired.successor_ref(contract.key)
    if successor:
        parts.append(f"Use {successor}.")
    return " ".join(parts)


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
            + (f": {_doc(contract.input)}" if _doc(contract.input) else "")
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
