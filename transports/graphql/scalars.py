"""The GraphQL scalars of generated schemas, and which ints fit GraphQL's ``Int``.

Outputs arrive from the pipeline as JSON (decimals and dates as strings), inputs as
GraphQL literals or variables: these scalars accept both, and parse decimal literals from
their source text so that no amount ever passes through a float.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, NewType

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode


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


PLAIN = (str, float, bool, Decimal, datetime, date, time, uuid.UUID)

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


def fits_int32(metadata: Sequence[Any]) -> bool:
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
