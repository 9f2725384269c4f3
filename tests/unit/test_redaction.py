"""Redaction of inputs for the audit trail: marks, the name rule, nesting, raw input."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from pydantic import Field

from registry import redaction
from registry.contract import command
from registry.errors import CATALOGUE, ErrorSpec
from registry.fields import NonEmptyString
from registry.fields import Sensitive as ReexportedSensitive
from registry.invocation import Invocation
from registry.model import WireModel
from registry.redaction import (
    MAX_INPUT_BYTES,
    REDACTED,
    RedactedInput,
    Sensitive,
    plan_for,
    redact,
    redacted_input,
    sensitive_name,
)
from specs.billing.capture_payment import CapturePaymentInput
from tests.support.doubles import Sink, contract_base, make_pipeline


class Card(WireModel):
    holder_name: str
    number: Annotated[str, Sensitive()]
    expiry: str


class Address(WireModel):
    street: str
    city: str


class Wallet(WireModel):
    iban_hint: str | None = None  # a name-rule word: "iban"
    secret_note: str | None = None


class Customer(WireModel):
    customer_id: str
    email: Annotated[str, Sensitive()]
    home: Address
    cards: list[Card] = []
    card_by_label: dict[str, Card] = {}
    backup: Card | None = None
    either: Card | Address | None = None
    wallet: Wallet | None = None
    pins: list[Annotated[str, Sensitive()]] = []
    notes: dict[str, str] = {}
    extra: dict[str, Any] = {}


class Node(WireModel):
    """A recursive model."""

    label: str
    secret_code: str | None = None
    children: list[Node] = []


def card(number: str = "4242424242424242") -> dict[str, str]:
    return {"holderName": "Ada", "number": number, "expiry": "12/30"}


def customer(**extra: Any) -> dict[str, Any]:
    return {
        "customerId": "c-1",
        "email": "ada@example.com",
        "home": {"street": "1 Lane", "city": "Town"},
        **extra,
    }


def loads(text: str | None) -> Any:
    assert text is not None
    return json.loads(text)


def test_the_marker_is_one_class_reexported_for_contracts() -> None:
    assert ReexportedSensitive is Sensitive
    assert Sensitive() == Sensitive()
    assert hash(Sensitive()) == hash(Sensitive())


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "newPassword",
        "user_passwd",
        "clientSecret",
        "access_token",
        "refreshTokens",
        "apiKey",
        "api_key",
        "API_KEY",
        "x-api-key",
        "Authorization",
        "private_key",
        "privateKey",
        "card",
        "cards",
        "cardNumber",
        "card_number",
        "creditcard",
        "cvc",
        "cardCvv",
        "pan",
        "cardPAN",
        "iban",
        "IBAN",
        "ssn",
        "userSSN",
    ],
)
def test_secret_looking_names_are_sensitive(name: str) -> None:
    assert sensitive_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "invoiceId",
        "amount",
        "company",  # contains "pan", but not as a word
        "business_name",  # contains "ssn", but not as a word
        "timeSpan",
        "description",
        "owner_id",
        "keyId",
        "discarded",
    ],
)
def test_ordinary_names_are_not(name: str) -> None:
    assert not sensitive_name(name)


def test_capture_payment_keeps_the_key_and_hides_the_method() -> None:
    data = CapturePaymentInput.model_validate(
        {"invoiceId": "inv_1", "amount": "12.50", "currency": "USD", "paymentMethodId": "pm_x1"}
    )
    text = redacted_input(CapturePaymentInput, data)
    assert loads(text) == {
        "currency": "usd",
        "amount": "12.50",
        "invoiceId": "inv_1",
        "paymentMethodId": REDACTED,
    }
    assert "pm_x1" not in (text or "")
    assert " " not in (text or "")  # compact


def test_marked_nested_listed_mapped_and_union_fields() -> None:
    model = Customer.model_validate(
        customer(
            cards=[card("1111222233334444"), card("5555666677778888")],
            cardByLabel={"work": card("9999000011112222")},
            backup=card("3333"),
            either=card("4444"),
            wallet={"ibanHint": "DE89", "secretNote": "hush"},
            pins=["1234", "5678"],
            notes={"password": "pw", "colour": "blue"},
            extra={"nested": {"apiKey": "k", "fine": [{"token": "t", "ok": 1}]}},
        )
    )
    out = loads(redacted_input(Customer, model))
    assert out["email"] == REDACTED
    assert out["home"] == {"street": "1 Lane", "city": "Town"}
    # "cards", "cardByLabel" and "backup"... "cards" is itself a name-rule word: whole list.
    assert out["cards"] == REDACTED
    assert out["cardByLabel"] == REDACTED
    assert out["backup"]["number"] == REDACTED
    assert out["backup"]["holderName"] == "Ada"
    assert out["either"]["number"] == REDACTED
    assert out["wallet"] == {"ibanHint": REDACTED, "secretNote": REDACTED}
    assert out["pins"] == [REDACTED, REDACTED]
    assert out["notes"] == {"password": REDACTED, "colour": "blue"}
    assert out["extra"] == {"nested": {"apiKey": REDACTED, "fine": [{"token": REDACTED, "ok": 1}]}}


class Holder(WireModel):
    """Nesting without name-rule names on the way, so the plan alone must find the mark."""

    primary: Card
    others: list[Card] = []
    by_label: dict[str, Card] = {}
    maybe: Card | None = None
    shape: Card | Address | None = None


def test_marks_are_found_through_lists_dicts_optionals_and_unions() -> None:
    model = Holder.model_validate(
        {
            "primary": card("1"),
            "others": [card("2"), card("3")],
            "byLabel": {"a": card("4")},
            "maybe": card("5"),
            "shape": {"street": "s", "city": "c"},
        }
    )
    out = loads(redacted_input(Holder, model))
    assert out["primary"]["number"] == REDACTED
    assert [o["number"] for o in out["others"]] == [REDACTED, REDACTED]
    assert out["byLabel"]["a"]["number"] == REDACTED
    assert out["byLabel"]["a"]["holderName"] == "Ada"
    assert out["maybe"]["number"] == REDACTED
    assert out["shape"] == {"street": "s", "city": "c"}


def test_a_recursive_model_has_one_plan_and_is_redacted_at_every_depth() -> None:
    tree = Node.model_validate(
        {"label": "a", "secretCode": "1", "children": [{"label": "b", "secretCode": "2"}]}
    )
    out = loads(redacted_input(Node, tree))
    assert out["secretCode"] == REDACTED
    assert out["children"][0]["secretCode"] == REDACTED
    assert out["children"][0]["label"] == "b"


def test_plans_are_made_once_per_model() -> None:
    first = plan_for(Customer)
    assert plan_for(Customer) is first
    assert redaction._PLANS[Customer] is first
    # Both spellings of a field lead to the same plan entry.
    assert first.fields["email"] is first.fields["email"]
    assert "email" in first.sensitive
    assert {"paymentMethodId", "payment_method_id"} <= plan_for(CapturePaymentInput).sensitive


def test_invalid_input_is_read_by_alias_by_field_name_and_by_the_name_rule() -> None:
    raw = {
        "invoiceId": 7,  # wrong type: kept, it is not sensitive
        "payment_method_id": "pm_snake",  # by field name
        "paymentMethodId": {"deep": "pm_camel"},  # by alias, whatever its shape
        "clientSecret": "cs_1",  # unknown key, by the name rule
        "unknown": {"password": "pw", "list": [{"cvc": "123"}]},
        "amount": {"token": "shaped-wrong"},  # a scalar field holding an object
    }
    out = loads(redacted_input(CapturePaymentInput, raw))
    assert out == {
        "invoiceId": 7,
        "payment_method_id": REDACTED,
        "paymentMethodId": REDACTED,
        "clientSecret": REDACTED,
        "unknown": {"password": REDACTED, "list": [{"cvc": REDACTED}]},
        "amount": {"token": REDACTED},
    }


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (["pm_secret"], "array"),
        ("pm_secret", "string"),
        (4242424242424242, "number"),
        (True, "boolean"),
    ],
)
def test_input_that_is_not_an_object_keeps_only_its_type(raw: Any, kind: str) -> None:
    assert loads(redacted_input(CapturePaymentInput, raw)) == {"_type": kind}


def test_no_input_records_nothing() -> None:
    assert redacted_input(CapturePaymentInput, None) is None


def test_without_a_contract_only_the_keys_are_kept() -> None:
    out = loads(redacted_input(None, {"paymentMethodId": "pm_1", "n": 1}))
    assert out == {"paymentMethodId": REDACTED, "n": REDACTED}
    assert loads(redacted_input(None, [1, 2])) == {"_type": "array"}


class Blob(WireModel):
    text: str = Field(max_length=100_000)
    card_number: Annotated[NonEmptyString, Sensitive()] = "4242"


def test_large_input_becomes_a_note_of_its_size_never_a_cut_value() -> None:
    small = Blob(text="x" * 100)
    assert loads(redacted_input(Blob, small))["text"] == "x" * 100
    big = Blob(text="y" * (MAX_INPUT_BYTES + 10))
    out = loads(redacted_input(Blob, big))
    assert out["_truncated"] is True
    assert out["_bytes"] > MAX_INPUT_BYTES
    assert set(out) == {"_truncated", "_bytes"}


def test_very_deep_raw_input_is_cut_off_not_crashed_on() -> None:
    raw: Any = {"password": "pw"}
    for _ in range(500):
        raw = {"a": raw}
    text = redacted_input(CapturePaymentInput, raw)
    assert text is not None
    assert "pw" not in text
    assert redaction.TOO_DEEP in text


def test_values_json_cannot_hold_show_as_their_type_only() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "opaque-secret-repr"

    text = redacted_input(CapturePaymentInput, {"invoiceId": Opaque()})
    assert text is not None
    assert "opaque-secret-repr" not in text
    assert loads(text) == {"invoiceId": "<Opaque>"}


def test_scrub_hides_redacted_values_quoted_in_text() -> None:
    seen = RedactedInput.of(
        CapturePaymentInput,
        {"invoiceId": "inv_1", "paymentMethodId": "pm_quoted_123", "apiKey": "k"},
    )
    detail = "No such PaymentMethod: 'pm_quoted_123' for invoice inv_1"
    assert seen.scrub(detail) == f"No such PaymentMethod: '{REDACTED}' for invoice inv_1"
    # Values too short to be told apart from ordinary text are left alone.
    assert seen.scrub("a k b") == "a k b"


def test_redact_returns_the_structure() -> None:
    assert redact(Card, {"number": "1", "expiry": "x"}) == {"number": REDACTED, "expiry": "x"}


def test_sensitive_fields_are_write_only_in_json_schemas() -> None:
    schema = CapturePaymentInput.model_json_schema(by_alias=True)
    prop = schema["properties"]["paymentMethodId"]
    assert prop["writeOnly"] is True
    assert prop["x-sensitive"] is True
    assert "writeOnly" not in schema["properties"]["invoiceId"]


class Plain(WireModel):
    name: str
    count: int = 0
    note: str | None = None


def test_models_with_nothing_to_hide_are_serialized_as_they_are() -> None:
    assert plan_for(Plain).passthrough
    assert not plan_for(Customer).passthrough  # marks, nested models, free-form dicts
    assert not plan_for(CapturePaymentInput).passthrough
    seen = RedactedInput.of(Plain, Plain(name="n", note="x"))
    assert seen.text() == '{"name":"n","count":0,"note":"x"}'
    assert seen.scrub("n x") == "n x"


# -- through the pipeline ---------------------------------------------------------------


class PayInput(WireModel):
    invoice_id: str
    payment_method_id: Annotated[str, Sensitive()]


METHOD_INVALID = ErrorSpec("PAYMENT_METHOD_INVALID", 422, "The payment method cannot be used")


async def pay(data: PayInput, ctx: Any) -> dict[str, Any]:
    # As an upstream might: the detail quotes the value it refused.
    raise METHOD_INVALID(f"No such PaymentMethod: '{data.payment_method_id}'")


PAY = command(key="test.pay", **contract_base(input=PayInput, errors=[METHOD_INVALID]))


async def test_the_record_keeps_the_redacted_input_of_a_valid_call() -> None:
    sink = Sink()
    p = make_pipeline(sink, (PAY, pay))
    outcome = await p.invoke(
        Invocation(
            key="test.pay",
            input={"invoiceId": "inv_1", "paymentMethodId": "pm_quoted_secret"},
            transport="rest",
        )
    )
    assert outcome.problem is not None
    assert outcome.problem.detail == f"No such PaymentMethod: '{REDACTED}'"
    [record] = sink.records
    assert loads(record.input) == {"invoiceId": "inv_1", "paymentMethodId": REDACTED}
    assert all("pm_quoted_secret" not in str(v) for v in record.as_dict().values())


async def test_the_record_keeps_the_redacted_raw_input_of_an_invalid_call() -> None:
    sink = Sink()
    p = make_pipeline(sink, (PAY, pay))
    outcome = await p.invoke(
        Invocation(
            key="test.pay",
            input={"payment_method_id": "pm_raw_secret", "password": "pw-secret", "x": 1},
            transport="rest",
        )
    )
    assert outcome.code == "INVALID_INPUT"
    [record] = sink.records
    assert loads(record.input) == {"payment_method_id": REDACTED, "password": REDACTED, "x": 1}
    text = str(outcome.problem_body()) + str(record.as_dict())
    assert "pm_raw_secret" not in text
    assert "pw-secret" not in text


async def test_without_a_contract_the_record_keeps_only_the_keys() -> None:
    sink = Sink()
    await make_pipeline(sink).invoke(
        Invocation(key="test.paay", input={"paymentMethodId": "pm_typo"}, transport="rest")
    )
    assert loads(sink.records[0].input) == {"paymentMethodId": REDACTED}


async def test_undecodable_or_missing_input_records_none() -> None:
    sink = Sink()
    p = make_pipeline(sink)
    await p.invoke(
        Invocation(
            key="test.echo",
            input=None,
            transport="rest",
            wire_error=CATALOGUE.MALFORMED_REQUEST("The body is not valid JSON"),
        )
    )
    await p.invoke(Invocation(key="test.echo", input=None, transport="rest"))
    assert sink.records[0].input is None
    assert loads(sink.records[1].input) == {"text": "hi"}  # no input: the defaults
