"""Redaction: an invocation's input as the audit trail may keep it.

A contract marks the fields that hold a secret or personal data::

    class CapturePaymentInput(WireModel):
        payment_method_id: Annotated[str, Sensitive()]

The mark works wherever the type appears: on a field, inside ``list[...]``,
``dict[str, ...]``, ``Optional``/unions, and in nested models. Without a mark, a field or
dict key whose name looks secret (``password``, ``apiKey``, ``card_number``, ``ssn`` ...,
see ``sensitive_name``) is redacted too. A redacted value becomes ``"[REDACTED]"``; its
key stays, so a reviewer sees that the field was sent.

``redacted_input`` turns a validated model, or the raw payload of an input that failed
validation, into compact JSON text (keys as on the wire), capped at ``MAX_INPUT_BYTES``.
The work of reading a model's annotations is done once per model class (``plan_for``); a
call only walks its data.
"""

from __future__ import annotations

import re
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, to_json

REDACTED = "[REDACTED]"
#: Redacted input longer than this (UTF-8 bytes) is replaced by a note of its size.
MAX_INPUT_BYTES = 16 * 1024
#: Containers nested deeper than this are not walked: they are replaced whole.
MAX_DEPTH = 32
TOO_DEEP = "[TOO DEEP]"
#: ``RedactedInput.scrub`` hides redacted values of at least this many characters.
MIN_SCRUBBED = 6


class Sensitive:
    """Marks a type as holding a secret or personal data: ``Annotated[str, Sensitive()]``.

    Its value never reaches an audit record. In JSON schemas (OpenAPI, MCP tool input
    schemas) the field shows ``writeOnly: true`` and ``x-sensitive: true``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Sensitive()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive)

    def __hash__(self) -> int:
        return hash(Sensitive)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: Callable[[CoreSchema], JsonSchemaValue]
    ) -> JsonSchemaValue:
        json_schema = dict(handler(schema))
        json_schema["writeOnly"] = True
        json_schema["x-sensitive"] = True
        return json_schema


# -- the name rule ----------------------------------------------------------------------

#: Redacted when the name, its words joined and lowercased, contains one of these.
SECRET_FRAGMENTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "privatekey",
    "cvc",
    "cvv",
    "creditcard",
    "debitcard",
    "cardnumber",
    "cardholder",
)
#: Redacted when one of the name's words is one of these (or its plural): as fragments
#: they would catch ``company`` (pan) or ``business`` (ssn).
SECRET_WORDS = frozenset({"card", "pan", "iban", "ssn"})

_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|[^A-Za-z0-9]+")


@lru_cache(maxsize=4096)
def sensitive_name(name: str) -> bool:
    """Whether a field or key named ``name`` (snake_case, camelCase, kebab-case, any case)
    looks like it holds a secret: ``password``, ``apiKey``, ``card_number``, ``userSSN``."""
    words = [w.lower() for w in _WORD_BOUNDARY.split(name) if w]
    compact = "".join(words)
    if any(fragment in compact for fragment in SECRET_FRAGMENTS):
        return True
    return any(w in SECRET_WORDS or (w.endswith("s") and w[:-1] in SECRET_WORDS) for w in words)


# -- plans ------------------------------------------------------------------------------


class _RedactWhole:
    """The plan node of a sensitive value: replaced whole, whatever its shape."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REDACT"


_REDACT = _RedactWhole()


@dataclass(slots=True, eq=False)
class ModelPlan:
    """What to do with each key of one model's data (by alias and by field name): redact
    it, or walk its value with a nested plan. Keys it does not list get the name rule."""

    model: type[BaseModel]
    fields: dict[str, Node] = field(default_factory=dict)
    #: Nothing to redact in a valid instance: no marks, no secret-looking names, only
    #: scalar fields and no extra keys (so a valid input is serialized as it is).
    passthrough: bool = False

    @property
    def sensitive(self) -> frozenset[str]:
        """The keys (field names and aliases) whose values are redacted."""
        return frozenset(k for k, node in self.fields.items() if node is _REDACT)


@dataclass(frozen=True, slots=True)
class _Items:
    """Each element of a list, tuple or set."""

    item: Node


@dataclass(frozen=True, slots=True)
class _Values:
    """Each value of a dict (its keys get the name rule)."""

    value: Node


@dataclass(frozen=True, slots=True)
class _Either:
    """A union's members: each applies in turn (so the redactions of all add up)."""

    options: tuple[Node, ...]


Node = _RedactWhole | ModelPlan | _Items | _Values | _Either | None
"""None: nothing declared; containers get the name rule, scalars pass."""

_PLANS: dict[type[BaseModel], ModelPlan] = {}

_SEQUENCES: tuple[Any, ...] = (list, tuple, set, frozenset, Sequence, AbstractSet)
_MAPPINGS: tuple[Any, ...] = (dict, Mapping)


def plan_for(model: type[BaseModel]) -> ModelPlan:
    """The redaction plan of ``model``, made on first use and kept (recursive models
    included: the plan is cached before its fields are read)."""
    plan = _PLANS.get(model)
    if plan is not None:
        return plan
    plan = _PLANS[model] = ModelPlan(model)
    for name, info in model.model_fields.items():
        keys = {name}
        keys.update(
            alias
            for alias in (info.alias, info.validation_alias, info.serialization_alias)
            if isinstance(alias, str)
        )
        if any(isinstance(m, Sensitive) for m in info.metadata) or any(
            sensitive_name(k) for k in keys
        ):
            node: Node = _REDACT
        else:
            node = _node_of(info.annotation)
        if node is not None:
            for key in keys:
                plan.fields[key] = node
    plan.passthrough = (
        not plan.fields
        and model.model_config.get("extra") != "allow"
        and all(_is_scalar(info.annotation) for info in model.model_fields.values())
    )
    return plan


_SCALARS: frozenset[Any] = frozenset(
    {str, int, float, bool, Decimal, datetime, date, time, timedelta, uuid.UUID, type(None)}
)


def _is_scalar(annotation: Any) -> bool:
    """Whether valid data of this type is a JSON scalar (no keys the name rule could
    catch)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_scalar(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return all(_is_scalar(a) for a in get_args(annotation))
    if origin is Literal:
        return True
    if origin is not None:
        return False
    return annotation in _SCALARS or (isinstance(annotation, type) and issubclass(annotation, Enum))


def _node_of(annotation: Any) -> Node:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        if any(isinstance(m, Sensitive) for m in metadata):
            return _REDACT
        return _node_of(base)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return plan_for(annotation)
    if origin is None:
        return None
    args = get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return _combined([_node_of(a) for a in args])
    if origin in _SEQUENCES:
        item = _combined([_node_of(a) for a in args if a is not Ellipsis])
        return None if item is None else _Items(item)
    if origin in _MAPPINGS and len(args) == 2:
        value = _node_of(args[1])
        return None if value is None else _Values(value)
    return None


def _combined(nodes: list[Node]) -> Node:
    if _REDACT in nodes:
        return _REDACT
    distinct: list[Node] = []
    for node in nodes:
        if node is not None and node not in distinct:
            distinct.append(node)
    if not distinct:
        return None
    return distinct[0] if len(distinct) == 1 else _Either(tuple(distinct))


# -- applying a plan --------------------------------------------------------------------


def _apply(node: Node, value: Any, depth: int) -> Any:
    if node is _REDACT:
        return REDACTED
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if type(node) is ModelPlan:
            return _apply_model(node, value, depth)
        if type(node) is _Values:
            inner = node.value
            return {
                k: REDACTED if sensitive_name(str(k)) else _apply(inner, v, depth + 1)
                for k, v in value.items()
            }
    elif isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if type(node) is _Items:
            inner = node.item
            return [_apply(inner, v, depth + 1) for v in value]
    else:
        return value
    if type(node) is _Either:
        for option in node.options:
            value = _apply(option, value, depth)
        return value
    # Nothing declared here (or the data does not have the declared shape): the name rule.
    if isinstance(value, dict):
        return {
            k: REDACTED if sensitive_name(str(k)) else _apply(None, v, depth + 1)
            for k, v in value.items()
        }
    return [_apply(None, v, depth + 1) for v in value]


def _apply_model(plan: ModelPlan, data: dict[Any, Any], depth: int) -> dict[Any, Any]:
    fields = plan.fields
    out: dict[Any, Any] = {}
    for key, value in data.items():
        node = fields.get(key, _UNLISTED) if isinstance(key, str) else _UNLISTED
        if node is _UNLISTED:
            out[key] = REDACTED if sensitive_name(str(key)) else _apply(None, value, depth + 1)
        elif node is _REDACT:
            out[key] = REDACTED
        else:
            out[key] = _apply(node, value, depth + 1)
    return out


_UNLISTED: Any = object()


def redact(model: type[BaseModel] | None, data: Any) -> Any:
    """``data`` (a model instance, or JSON-like raw input) with sensitive values replaced
    by ``"[REDACTED]"``. Raw input is read by ``model``'s plan, by alias and by field name;
    what the plan does not know gets the name rule. Without a model nothing says which
    values are safe: only the keys are kept."""
    return RedactedInput.of(model, data).redacted


def redacted_input(model: type[BaseModel] | None, data: Any) -> str | None:
    """The input as compact JSON text for the audit record, sensitive values redacted
    (see ``redact``); None when there was no input. Text over ``MAX_INPUT_BYTES`` becomes
    ``{"_truncated":true,"_bytes":<size>}``: never half a value."""
    if data is None:
        return None
    return RedactedInput.of(model, data).text()


@dataclass(frozen=True, slots=True)
class RedactedInput:
    """One input, as sent (JSON-like, keys as on the wire) and as the audit trail keeps it
    (the two are the same object when nothing in it is sensitive)."""

    original: Any
    redacted: Any

    @classmethod
    def of(cls, model: type[BaseModel] | None, data: Any) -> RedactedInput:
        if isinstance(data, BaseModel):
            model = type(data)
            if plan_for(model).passthrough:
                return cls(data, data)
            data = data.model_dump(mode="json", by_alias=True)
        if model is None:
            if isinstance(data, dict):
                return cls(data, dict.fromkeys(data, REDACTED))
            return cls(data, {"_type": json_type(data)})
        if not isinstance(data, dict):
            return cls(data, {"_type": json_type(data)})
        return cls(data, _apply_model(plan_for(model), data, 0))

    def text(self) -> str:
        """Compact JSON, capped at ``MAX_INPUT_BYTES`` (see ``redacted_input``)."""
        text = to_json(self.redacted, by_alias=True, fallback=_unknown)
        if len(text) > MAX_INPUT_BYTES:
            text = to_json({"_truncated": True, "_bytes": len(text)})
        return text.decode()

    def scrub(self, text: str) -> str:
        """``text`` (an error detail, say) with every redacted value of this input that
        it quotes replaced by ``"[REDACTED]"``. Values shorter than ``MIN_SCRUBBED``
        characters are left: they would match ordinary words and reveal little."""
        if self.redacted is self.original:
            return text
        hidden: set[str] = set()
        _hidden_values(self.original, self.redacted, hidden, 0)
        for value in sorted(hidden, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


def _hidden_values(original: Any, redacted: Any, found: set[str], depth: int) -> None:
    """The scalar values of ``original`` that ``redacted`` replaced, as text."""
    if depth > MAX_DEPTH + 1:
        return
    if isinstance(redacted, str) and redacted in (REDACTED, TOO_DEEP):
        if original != redacted:
            _leaves(original, found, depth)
    elif isinstance(original, dict) and isinstance(redacted, dict):
        for key, value in original.items():
            if key in redacted:
                _hidden_values(value, redacted[key], found, depth + 1)
    elif isinstance(original, list | tuple) and isinstance(redacted, list):
        for value, shown in zip(original, redacted, strict=False):
            _hidden_values(value, shown, found, depth + 1)


def _leaves(value: Any, found: set[str], depth: int) -> None:
    if depth > MAX_DEPTH + 1:
        return
    if isinstance(value, dict):
        for item in value.values():
            _leaves(item, found, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _leaves(item, found, depth + 1)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        if len(text) >= MIN_SCRUBBED:
            found.add(text)


def json_type(value: Any) -> str:
    """The JSON type of a decoded value: object, array, string, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _unknown(value: Any) -> str:
    """What a value JSON cannot hold is shown as: its type, never its repr."""
    return f"<{type(value).__name__}>"
