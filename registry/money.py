"""Money on the wire in major units (``12.5``), in storage in integer minor units (1250).

Conversions are exact, through ``Decimal``; an amount with more decimals than its
currency has is refused rather than rounded. Exponents follow Stripe's currency list.
"""

from __future__ import annotations

from decimal import Context, Decimal

ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def exponent(currency: str) -> int:
    """Decimal places of ``currency`` (ISO 4217 code, any case)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_minor(amount: Decimal, currency: str) -> int:
    """``Decimal('12.5'), 'usd'`` -> ``1250``; ValueError if it has too many decimals."""
    if not amount.is_finite():
        raise ValueError("an amount must be a finite number")
    places = exponent(currency)
    exact = Context(prec=len(amount.as_tuple().digits) + places + 1)
    scaled = amount.scaleb(places, context=exact)
    if scaled != scaled.to_integral_value(context=exact):
        raise ValueError(f"{currency.upper()} amounts have at most {places} decimal places")
    return int(scaled)


def to_major(minor: int, currency: str) -> Decimal:
    """``1250, 'usd'`` -> ``Decimal('12.50')``."""
    places = exponent(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))
