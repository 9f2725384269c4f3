"""registry.money: exact conversions between major and minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.money import CURRENCIES, exponent, supported, to_major, to_minor


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


@pytest.mark.parametrize("currency", ["xyz", "XYZ", "abc", "eek", "hrk", "usx"])
def test_currencies_stripe_does_not_support_are_refused(currency: str) -> None:
    assert not supported(currency)
    with pytest.raises(ValueError, match=f"{currency.upper()} is not a currency Stripe supports"):
        exponent(currency)
    with pytest.raises(ValueError, match="not a currency Stripe supports"):
        to_minor(Decimal("1"), currency)


def test_the_currency_list_is_lowercase_iso_codes_with_stripe_exponents() -> None:
    assert len(CURRENCIES) >= 135  # "more than 135 currencies"
    assert all(len(code) == 3 and code.isalpha() and code.islower() for code in CURRENCIES)
    zero_decimal = "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf"
    assert {code for code, places in CURRENCIES.items() if places == 0} == set(
        zero_decimal.split(" ")
    )
    assert {code for code, places in CURRENCIES.items() if places == 3} == {
        "bhd", "jod", "kwd", "omr", "tnd"
    }  # fmt: skip
    # Stripe's API keeps these two-decimal, whatever ISO 4217 says.
    assert (CURRENCIES["isk"], CURRENCIES["huf"], CURRENCIES["twd"]) == (2, 2, 2)
    assert supported("USD") and supported("eur")


def test_an_amount_stored_in_an_unlisted_currency_still_reads() -> None:
    """Invoices stored before the list was enforced counted such amounts in hundredths."""
    assert to_major(1250, "xyz") == Decimal("12.50")
