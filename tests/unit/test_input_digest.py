"""The input digest (idempotency fingerprint, audit) is the same for the same request."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from registry.digest import input_digest
from registry.model import WireModel
from specs.billing.capture_payment import CapturePaymentInput


def digest_of(**fields: object) -> str:
    return input_digest(CapturePaymentInput.model_validate(fields))


def test_the_spelling_of_an_amount_does_not_change_the_digest() -> None:
    base = {"invoiceId": "inv_1", "currency": "usd", "paymentMethodId": "pm_card_visa"}
    assert digest_of(amount=12.5, **base) == digest_of(amount="12.50", **base)
    assert digest_of(amount="12.5", **base) == digest_of(amount="12.500", **base)


def test_a_different_amount_or_field_changes_the_digest() -> None:
    base = {"invoiceId": "inv_1", "currency": "usd", "paymentMethodId": "pm_card_visa"}
    assert digest_of(amount=12.5, **base) != digest_of(amount=12.51, **base)
    assert digest_of(amount=12.5, **base) != digest_of(
        amount=12.5, **{**base, "invoiceId": "inv_2"}
    )


def _frozen_definition(model: BaseModel) -> str:
    """The canonical form as first defined: stored fingerprints and records hold it."""

    def default(value: object) -> object:
        if isinstance(value, Decimal):
            return str(value.normalize())
        return to_jsonable_python(value)

    text = json.dumps(
        model.model_dump(mode="python", by_alias=True),
        default=default,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


class _Nested(WireModel):
    when: datetime
    tags: list[str]
    extra: dict[str, Decimal]
    note: str | None = None


class _Outer(WireModel):
    inner_value: _Nested
    amount: Decimal
    ratio: float


def test_the_digest_keeps_its_frozen_definition() -> None:
    samples: list[BaseModel] = [
        CapturePaymentInput.model_validate(
            {"invoiceId": "inv_é1", "amount": "12.50", "currency": "usd", "paymentMethodId": "pm"}
        ),
        _Outer.model_validate(
            {
                "innerValue": {
                    "when": "2024-05-01T12:00:00+02:00",
                    "tags": ["b", "a", "\u2028", "☃"],
                    "extra": {"z": "1.10", "a": "-0"},
                },
                "amount": "1E+3",
                "ratio": 0.1,
            }
        ),
    ]
    for sample in samples:
        assert input_digest(sample) == _frozen_definition(sample)
