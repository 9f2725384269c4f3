"""registry.money: exact conversions between major and minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.money import exponent, to_major, to_minor


@pytest.mark.parametrize(
    ("currency", "places"),
    [("usd", 2), ("USD", 2), ("eur", 2), ("jpy", 0), ("JPY", 0), ("krw", 0), ("kwd", 3)],
)
def test_exponent(currency: str, places: int) -> None:
    assert exponent(currency) == places


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.5", "usd", 1250),
        ("12.50", "usd", 1250),
        ("12.500", "usd", 1250),  # trailing zeros are not extra precision
        ("0.01", "usd", 1),
        ("0.1", "usd", 10),
        ("999999999999.99", "usd", 99999999999999),
        ("1E+2", "usd", 10000),
        ("500", "jpy", 500),
        ("500.0", "JPY", 500),
        ("12.345", "kwd", 12345),
        ("0.001", "kwd", 1),
        ("12.5", "kwd", 12500),
    ],
)
def test_to_minor_is_exact(amount: str, currency: str, minor: int) -> None:
    result = to_minor(Decimal(amount), currency)
    assert result == minor
    assert type(result) is int


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("12.555", "usd"),
        ("0.001", "usd"),
        ("0.5", "jpy"),
        ("500.01", "jpy"),
        ("12.3456", "kwd"),
        ("0.0001", "KWD"),
    ],
)
def test_too_many_decimals_are_refused(amount: str, currency: str) -> None:
    with pytest.raises(ValueError, match=f"{currency.upper()} amounts have at most"):
        to_minor(Decimal(amount), currency)


def test_a_long_amount_with_too_many_decimals_is_refused_not_rounded() -> None:
    with pytest.raises(ValueError):
        to_minor(Decimal("1.00000000000000000000000000001"), "usd")


def test_non_finite_amounts_raise_value_error() -> None:
    with pytest.raises(ValueError):
        to_minor(Decimal("NaN"), "usd")
    with pytest.raises(ValueError):
        to_minor(Decimal("Infinity"), "usd")


@pytest.mark.parametrize(
    ("minor", "currency", "major"),
    [
        (1250, "usd", "12.50"),
        (1, "usd", "0.01"),
        (0, "usd", "0.00"),
        (500, "jpy", "500"),
        (12345, "kwd", "12.345"),
        (10, "KWD", "0.010"),
    ],
)
def test_to_major_is_an_exact_decimal(minor: int, currency: str, major: str) -> None:
    result = to_major(minor, currency)
    assert isinstance(result, Decimal)
    assert str(result) == major  # quantized to the currency's places, no float noise


@given(
    minor=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from(["usd", "jpy", "kwd", "EUR", "BHD", "vnd"]),
)
def test_round_trip_from_minor(minor: int, currency: str) -> None:
    assert to_minor(to_major(minor, currency), currency) == minor


@given(
    amount=st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False),
)
def test_round_trip_from_major(amount: Decimal) -> None:
    assert to_major(to_minor(amount, "usd"), "usd") == amount
