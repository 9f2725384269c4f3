"""Field types contracts share, mirroring the seeds' ScalarTypeEnum.

``Sensitive`` (defined with the redaction it drives, in ``registry.redaction``) marks a field
whose value must never reach an audit record: ``Annotated[NonEmptyString, Sensitive()]``.

Strings refuse NUL characters (no database stores them) and are bounded, so no input can
reach a handler that storage would then reject.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from registry.money import CURRENCIES
from registry.redaction import Sensitive as Sensitive

NO_NUL = r"^[^\x00]*$"

NonEmptyString = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, strip_whitespace=True, pattern=r"^[^\x00]+$"),
]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
Text = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]


def as_utc(value: datetime) -> datetime:
    """An aware time in UTC; a time without offset is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC time Python has
        ahead = (value.utcoffset() or timedelta(0)) > timedelta(0)
        return (datetime.min if ahead else datetime.max).replace(tzinfo=UTC)


#: Every time a contract answers: always in UTC with its offset on the wire
#: (``2026-12-07T21:00:00Z``), whatever the database handed back.
Timestamp = Annotated[datetime, AfterValidator(as_utc)]
#: A time a caller sends: one without an offset is read as UTC.
UtcDateTime = Annotated[
    datetime,
    AfterValidator(as_utc),
    Field(description="A date-time; without an offset it is read as UTC"),
]


def page_cursor() -> Any:
    """The ``cursor`` field of a paginated listing's input: optional, what the previous
    page answered as ``nextCursor`` (base64url, bounded)."""
    return Field(None, max_length=200, pattern=r"^[A-Za-z0-9_=-]*$", description="From nextCursor")


def _supported_currency(value: str) -> str:
    code = value.lower()
    if code not in CURRENCIES:
        raise PydanticCustomError(
            "currency_unsupported",
            "{currency} is not a currency Stripe supports",
            {"currency": value.upper()},
        )
    return code


Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z]{3}$"),
    AfterValidator(_supported_currency),
    Field(
        description="ISO 4217 code of a currency Stripe supports, any case, e.g. usd",
        examples=["usd"],
    ),
]

PositiveAmount = Annotated[
    Decimal,
    Field(
        gt=0,
        le=Decimal("999999999999"),
        max_digits=18,
        decimal_places=3,
        description="Amount in major units of the currency, e.g. 12.5 for $12.50",
        examples=[12.5],
    ),
]
