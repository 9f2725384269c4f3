"""Money on the wire in major units (``12.5``), in storage in integer minor units (1250).

Conversions are exact, through ``Decimal``; an amount with more decimals than its
currency has is refused rather than rounded. ``CURRENCIES`` is the one list of the
currencies accepted, with their exponents.
"""

from __future__ import annotations

from decimal import Context, Decimal
from types import MappingProxyType


def _exponents(places: int, codes: str) -> dict[str, int]:
    return dict.fromkeys(codes.split(), places)


#: Stripe's presentment currencies (https://docs.stripe.com/currencies), by lowercase ISO
#: 4217 code, with the decimal places Stripe's API counts minor units in. That is not
#: always ISO's: Stripe keeps ISK, HUF and TWD two-decimal for compatibility.
CURRENCIES: MappingProxyType[str, int] = MappingProxyType(
    {
        **_exponents(0, "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf"),
        **_exponents(3, "bhd jod kwd omr tnd"),
        **_exponents(
            2,
            """
            aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd bob brl bsd
            bwp byn bzd cad cdf chf cny cop crc cve czk dkk dop dzd egp etb eur fjd fkp
            gbp gel gip gmd gtq gyd hkd hnl htg huf idr ils inr isk jmd kes kgs khr kyd
            kzt lak lbp lkr lrd lsl mad mdl mkd mmk mnt mop mur mvr mwk mxn myr mzn nad
            ngn nio nok npr nzd pab pen pgk php pkr pln qar ron rsd rub sar sbd scr sek
            sgd shp sle sos srd std szl thb tjs top try ttd twd tzs uah usd uyu uzs wst
            xcd xcg yer zar zmw
            """,
        ),
    }
)


def supported(currency: str) -> bool:
    """Whether ``currency`` (ISO 4217 code, any case) is one of ``CURRENCIES``."""
    return currency.lower() in CURRENCIES


#: The places of an amount stored in a currency outside ``CURRENCIES``: invoices created
#: before the list was enforced were counted in hundredths of any unknown currency.
UNLISTED_PLACES = 2


def exponent(currency: str) -> int:
    """Decimal places of ``currency`` (any case); ValueError if it is not supported."""
    try:
        return CURRENCIES[currency.lower()]
    except KeyError:
        raise ValueError(f"{currency.upper()} is not a currency Stripe supports") from None


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
    """``1250, 'usd'`` -> ``Decimal('12.50')``; a stored amount in a currency no longer
    accepted is read with ``UNLISTED_PLACES``."""
    places = CURRENCIES.get(currency.lower(), UNLISTED_PLACES)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))
