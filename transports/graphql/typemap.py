"""Pydantic models to strawberry types: outputs, inputs (with the way back to the wire)
and enums, converted once per class."""

from __future__ import annotations

import enum
import inspect
import keyword
import re
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import strawberry
from pydantic import BaseModel
from pydantic.fields import ComputedFieldInfo, FieldInfo
from pydantic_core import PydanticUndefined
from strawberry.scalars import JSON
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UNSET

from transports.graphql.scalars import PLAIN, BigInt, fits_int32

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


class SchemaBuildError(ValueError):
    """A contract cannot be expressed in GraphQL; raised when the schema is built."""


def _type_name(cls: type) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "", cls.__name__) or "Anonymous"


def doc_of(cls: type) -> str | None:
    """A class's own docstring (not an inherited or generated one)."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return None
    if doc.startswith(("A base class for creating Pydantic models", "An enumeration.")):
        return None
    return inspect.cleandoc(doc)


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
            return (int if fits_int32(metadata) else BigInt), None
        if origin is Literal:
            return self._literal(get_args(tp)), None
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self.enum(tp), _convert_enum
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if is_input:
                return self.input_type(tp)
            return self.output_type(tp), None
        if tp in PLAIN:
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
        wrapped = strawberry.enum(copy, name=name, description=doc_of(cls))
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
        return _decorate(cls, fields, annotations, name=name, doc=doc_of(model), is_input=False)

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
        _decorate(cls, fields, annotations, name=name, doc=doc_of(model), is_input=True)
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
