"""Every time an operation answers carries its UTC offset, on every transport: the output
models turn the database's offset-less times (SQLite has no time zones) into UTC, so the
OpenAPI document's ``format: date-time`` (RFC 3339, offset required) holds."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, TypeAdapter

from registry.fields import Timestamp, as_utc
from registry.registry import Registry

NAIVE = datetime(2026, 12, 7, 21, 0, 0)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _mentions_datetime(annotation: Any) -> bool:
    if annotation is datetime:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _mentions_datetime(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        return any(_mentions_datetime(arg) for arg in typing.get_args(annotation))
    return False


def time_fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[tuple[str, Any]]:
    """``Model.field`` and its full type, for each field holding a time, nested models
    included."""
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        annotation = field.annotation
        full = typing.Annotated[annotation, *field.metadata] if field.metadata else annotation
        if _mentions_datetime(annotation):
            yield f"{model.__name__}.{name}", full
        for nested in _models_in(annotation):
            yield from time_fields(nested, seen)


def all_output_time_fields(registry: Registry) -> list[tuple[str, Any]]:
    seen: set[type[BaseModel]] = set()
    found: list[tuple[str, Any]] = []
    for operation in registry.operations():
        found.extend(time_fields(operation.contract.output, seen))
    return found


def test_the_outputs_have_time_fields_to_check(registry: Registry) -> None:
    names = {name for name, _ in all_output_time_fields(registry)}
    assert {"PolicyRule.created_at", "Invoice.created_at", "ApiKeyView.created_at"} <= names


def test_every_output_time_is_answered_with_its_offset(registry: Registry) -> None:
    """A time read back without an offset (as SQLite hands it) is answered in UTC with
    one; a time in another zone is answered as the same instant in UTC."""
    for name, annotation in all_output_time_fields(registry):
        adapter = TypeAdapter(annotation)
        naive = adapter.dump_json(adapter.validate_python(NAIVE)).decode()
        assert naive == '"2026-12-07T21:00:00Z"', (name, naive)
        elsewhere = datetime(2026, 12, 7, 22, 0, tzinfo=timezone(timedelta(hours=1)))
        shifted = adapter.dump_python(adapter.validate_python(elsewhere), mode="json")
        assert shifted == "2026-12-07T21:00:00Z", (name, shifted)


def test_as_utc_keeps_the_instant() -> None:
    assert as_utc(NAIVE) == NAIVE.replace(tzinfo=UTC)
    later = datetime(2026, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert as_utc(later) == datetime(2026, 1, 1, tzinfo=UTC)
    assert TypeAdapter(Timestamp).validate_python(NAIVE).tzinfo is UTC
