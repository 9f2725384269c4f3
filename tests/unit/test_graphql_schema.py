"""GraphQL: the schema generated from the registry, its SDL snapshot, and the resolvers,
limits and error shapes run in-process against a stub pipeline."""

from __future__ import annotations

import difflib
import enum
import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import graphql
import pytest
from pydantic import Field
from starlette.responses import Response

from registry.contract import Deprecation
from registry.errors import CATALOGUE, Problem
from registry.invocation import Invocation, Outcome
from registry.model import WireModel
from registry.registry import Registry, install_op
from tests.support.doubles import StubPipeline, ViewCalls
from tests.unit.conftest import Declare
from transports.graphql import GraphQLLimits, GraphQLTransport, build_schema, graphql_sdl
from transports.graphql.documents import MAX_CACHED_TEXT, DocumentCache
from transports.graphql.errors import ProblemSchema
from transports.graphql.resolvers import GraphQLContext, field_idempotency_key, resolver_for
from transports.graphql.schema import SchemaBuildError, field_name, pinned_field_name

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "schema.graphql"
REGENERATE = (
    "If the change is intended, regenerate the snapshot and commit it with the contract "
    "change:\n"
    "    .venv/bin/specops graphql-schema > tests/snapshots/schema.graphql\n"
    "or\n"
    "    SPECOPS_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/unit/test_graphql_schema.py"
)


async def handler(_input, _ctx):  # unannotated: serves any test contract
    return {"ok": True}


@pytest.fixture(scope="module")
def sdl(registry: Registry) -> str:
    return graphql_sdl(registry)


@pytest.fixture(scope="module")
def schema(sdl: str) -> graphql.GraphQLSchema:
    """The SDL as a client sees it, parsed back by graphql-core."""
    return graphql.build_schema(sdl)


def type_str(tp: Any) -> str:
    return str(tp)


def default_of(input_field: graphql.GraphQLInputField) -> str | None:
    """The default of an input field as the SDL shows it (a GraphQL literal)."""
    literal = input_field.default.literal if input_field.default else None
    return None if literal is None else graphql.print_ast(literal)


def root(schema: graphql.GraphQLSchema, kind: str) -> dict[str, graphql.GraphQLField]:
    root_type = schema.query_type if kind == "query" else schema.mutation_type
    assert root_type is not None
    return dict(root_type.fields)


# -- names, kinds, types ---------------------------------------------------------------------


def test_every_operation_is_a_root_field_latest_and_pinned(
    registry: Registry, schema: graphql.GraphQLSchema
) -> None:
    queries, mutations = root(schema, "query"), root(schema, "mutation")
    for op in registry.operations():
        c = op.contract
        fields = queries if c.kind == "query" else mutations
        others = mutations if c.kind == "query" else queries
        pinned = pinned_field_name(c.key, str(c.version))
        assert pinned in fields and pinned not in others
    for op in registry.latest():
        assert field_name(op.contract.key) in (
            queries if op.contract.kind == "query" else mutations
        )
    assert {"system_ping", "billing_getInvoice", "billing_listInvoices"} <= set(queries)
    assert {"billing_capturePayment", "billing_createInvoice"} <= set(mutations)
    assert "billing_capturePayment_v1_0_0" in mutations
    assert all("." not in name for name in [*queries, *mutations])
    assert len(queries) + len(mutations) == len(list(registry.operations())) + len(
        list(registry.latest())
    )


def test_names_follow_the_design() -> None:
    assert field_name("billing.capturePayment") == "billing_capturePayment"
    assert pinned_field_name("billing.capturePayment", "1.0.0") == "billing_capturePayment_v1_0_0"
    assert pinned_field_name("payments.stripe.chargeCard", "2.1.0-rc.1") == (
        "payments_stripe_chargeCard_v2_1_0_rc_1"
    )


def test_one_input_argument_typed_from_the_model(schema: graphql.GraphQLSchema) -> None:
    capture = root(schema, "mutation")["billing_capturePayment"]
    assert list(capture.args) == ["input"]
    assert type_str(capture.args["input"].type) == "CapturePaymentInput!"
    input_type = schema.get_type("CapturePaymentInput")
    assert isinstance(input_type, graphql.GraphQLInputObjectType)
    assert {name: type_str(f.type) for name, f in input_type.fields.items()} == {
        "invoiceId": "String!",
        "amount": "Decimal!",
        "currency": "String!",
        "paymentMethodId": "String!",
    }
    # every field of the ping input has a default: the argument is optional, defaults shown
    ping = root(schema, "query")["system_ping"]
    assert type_str(ping.args["input"].type) == "PingInput"
    ping_input = schema.get_type("PingInput")
    assert isinstance(ping_input, graphql.GraphQLInputObjectType)
    assert default_of(ping_input.fields["message"]) == '"ping"'
    listing = schema.get_type("ListInvoicesInput")
    assert isinstance(listing, graphql.GraphQLInputObjectType)
    assert type_str(listing.fields["limit"].type) == "Int!"
    assert default_of(listing.fields["limit"]) == "20"
    assert type_str(listing.fields["status"].type) == "InvoiceStatus"


def test_outputs_nullability_lists_enums_and_scalars(schema: graphql.GraphQLSchema) -> None:
    queries = root(schema, "query")
    # root fields are nullable: one failed field leaves the rest of a response intact
    assert type_str(queries["billing_getInvoice"].type) == "Invoice"
    assert type_str(root(schema, "mutation")["billing_capturePayment"].type) == "PaymentResult"
    invoice = schema.get_type("Invoice")
    assert isinstance(invoice, graphql.GraphQLObjectType)
    assert {name: type_str(f.type) for name, f in invoice.fields.items()} == {
        "id": "String!",
        "ownerId": "String!",
        "amount": "Decimal!",
        "amountMinor": "BigInt!",  # unbounded: more than GraphQL's 32-bit Int
        "currency": "String!",
        "status": "InvoiceStatus!",
        "description": "String",
        "transactionId": "String",
        "paidAt": "DateTime",
        "createdAt": "DateTime!",
    }
    page = schema.get_type("InvoicePage")
    assert isinstance(page, graphql.GraphQLObjectType)
    assert type_str(page.fields["items"].type) == "[Invoice!]!"
    assert type_str(page.fields["nextCursor"].type) == "String"
    status = schema.get_type("InvoiceStatus")
    assert isinstance(status, graphql.GraphQLEnumType)
    assert set(status.values) == {"OPEN", "PROCESSING", "PAID"}
    for scalar in ("Decimal", "DateTime", "BigInt"):
        assert isinstance(schema.get_type(scalar), graphql.GraphQLScalarType)


def test_descriptions_come_from_the_contract(schema: graphql.GraphQLSchema) -> None:
    capture = root(schema, "mutation")["billing_capturePayment"]
    assert capture.description is not None
    assert capture.description.startswith("Process a payment for an invoice")
    assert "billing.capturePayment" in capture.description
    assert "INVOICE_NOT_FOUND" in capture.description
    argument = capture.args["input"].description
    assert argument is not None and "billing.capturePayment" in argument
    input_type = schema.get_type("CapturePaymentInput")
    assert isinstance(input_type, graphql.GraphQLInputObjectType)
    assert input_type.fields["paymentMethodId"].description == "Stripe PaymentMethod id, pm_..."
    invoice = schema.get_type("Invoice")
    assert isinstance(invoice, graphql.GraphQLObjectType)
    assert invoice.description == "An invoice as callers see it."
    assert invoice.fields["amountMinor"].description == "Amount in minor units (cents)"


# -- contracts the server does not ship: versions, deprecation, shapes ---------------------


class Kind(enum.StrEnum):
    SMALL = "small"
    LARGE = "large"


class Line(WireModel):
    """One line of a thing."""

    label: str
    quantity: int = 1
    price: Decimal


class Node(WireModel):
    name: str
    children: list[Node] = []


class RichInput(WireModel):
    thing_id: str
    kind: Kind = Kind.SMALL
    lines: list[Line]
    due: date | None = None
    mode: Literal["fast", "slow"] = "fast"
    meta: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)


class RichOutput(WireModel):
    ok: bool
    small: int = Field(ge=0, le=1000)
    big: int
    kind: Kind
    lines: list[Line]
    tree: Node | None = None
    at: datetime
    extra: dict[str, Any] = {}


def test_pinned_deprecated_versions_and_the_latest(declare_command: Declare) -> None:
    registry = Registry()
    retired = Deprecation("Use 2.0.0", sunset=date(2030, 1, 1), replaced_by="things.doThing@2.0.0")
    install_op(registry, declare_command(version="1.0.0", deprecation=retired), handler)
    install_op(registry, declare_command(version="2.0.0"), handler)
    mutations = root(graphql.build_schema(graphql_sdl(registry)), "mutation")
    assert set(mutations) == {"things_doThing", "things_doThing_v1_0_0", "things_doThing_v2_0_0"}
    v1 = mutations["things_doThing_v1_0_0"]
    assert v1.deprecation_reason == (
        "things.doThing v1.0.0 is deprecated: Use 2.0.0. It stops working on 2030-01-01. "
        "Use things.doThing@2.0.0 instead."
    )
    assert mutations["things_doThing_v2_0_0"].deprecation_reason is None
    assert mutations["things_doThing"].deprecation_reason is None
    assert "now 2.0.0" in (mutations["things_doThing"].description or "")
    assert "@deprecated" in graphql_sdl(registry)


def test_a_key_with_only_deprecated_versions_is_deprecated(declare_query: Declare) -> None:
    registry = Registry()
    install_op(registry, declare_query(stability="deprecated"), handler)
    queries = root(graphql.build_schema(graphql_sdl(registry)), "query")
    assert queries["things_doThing"].deprecation_reason is not None
    assert queries["things_doThing_v1_0_0"].deprecation_reason is not None


def test_nested_models_lists_enums_literals_and_json(declare_command: Declare) -> None:
    registry = Registry()
    install_op(registry, declare_command(input=RichInput, output=RichOutput), handler)
    schema = graphql.build_schema(graphql_sdl(registry))
    rich_input = schema.get_type("RichInput")
    assert isinstance(rich_input, graphql.GraphQLInputObjectType)
    assert {n: type_str(f.type) for n, f in rich_input.fields.items()} == {
        "thingId": "String!",
        "kind": "Kind!",
        "lines": "[LineInput!]!",
        "due": "Date",
        "mode": "String!",
        "meta": "JSON",
        "tags": "[String!]",
    }
    assert default_of(rich_input.fields["kind"]) == "SMALL"
    output = schema.get_type("RichOutput")
    assert isinstance(output, graphql.GraphQLObjectType)
    assert {n: type_str(f.type) for n, f in output.fields.items()} == {
        "ok": "Boolean!",
        "small": "Int!",
        "big": "BigInt!",
        "kind": "Kind!",
        "lines": "[Line!]!",
        "tree": "Node",
        "at": "DateTime!",
        "extra": "JSON!",
    }
    node = schema.get_type("Node")
    assert isinstance(node, graphql.GraphQLObjectType)
    assert type_str(node.fields["children"].type) == "[Node!]!"
    line = schema.get_type("Line")
    assert isinstance(line, graphql.GraphQLObjectType)
    assert line.description == "One line of a thing."
    assert type_str(line.fields["price"].type) == "Decimal!"


def test_same_class_name_in_two_contracts_gets_two_types(
    declare_command: Declare, declare_query: Declare
) -> None:
    def thing_output() -> type[WireModel]:
        class ThingOutput(WireModel):
            done: bool

        return ThingOutput

    registry = Registry()
    install_op(registry, declare_command(output=thing_output()), handler)
    install_op(registry, declare_query(key="things.getThing", output=thing_output()), handler)
    schema = graphql.build_schema(graphql_sdl(registry))
    names = {type_str(f.type) for f in [*root(schema, "query").values()]} | {
        type_str(f.type) for f in root(schema, "mutation").values()
    }
    assert len(names) == 2 and "ThingOutput" in names


def test_a_model_graphql_cannot_name_is_refused_at_build(declare_command: Declare) -> None:
    class Odd(WireModel):
        weird: str = Field(alias="not-a-name")

    registry = Registry()
    install_op(registry, declare_command(input=Odd), handler)
    with pytest.raises(SchemaBuildError, match="not-a-name"):
        graphql_sdl(registry)


def test_adding_a_contract_adds_its_field(registry: Registry, declare_query: Declare) -> None:
    extended = Registry()
    for op in registry.operations():
        install_op(extended, op.contract, op.handler)
    install_op(extended, declare_query(key="things.findThing"), handler)
    queries = root(graphql.build_schema(graphql_sdl(extended)), "query")
    assert {"things_findThing", "things_findThing_v1_0_0"} <= set(queries)


# -- the SDL snapshot ----------------------------------------------------------------------


def test_sdl_matches_the_committed_snapshot(sdl: str) -> None:
    if os.environ.get("SPECOPS_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(sdl)
    committed = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if sdl.rstrip("\n") != committed.rstrip("\n"):  # however the file was written
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                sdl.splitlines(keepends=True),
                "tests/snapshots/schema.graphql (committed)",
                "graphql_sdl(registry) (now)",
            )
        )
        pytest.fail(
            f"The GraphQL schema differs from tests/snapshots/schema.graphql:\n\n{diff}\n"
            f"{REGENERATE}",
            pytrace=False,
        )


def test_sdl_is_valid_and_stable(sdl: str, registry: Registry) -> None:
    graphql.build_schema(sdl)  # parses and validates
    assert graphql_sdl(registry) == sdl
    assert sdl.endswith("\n") and not sdl.endswith("\n\n")
    assert all(line == line.rstrip() for line in sdl.splitlines())


# -- resolvers, errors and limits, in-process against a stub pipeline ----------------------


@pytest.fixture
def stub(registry: Registry) -> StubPipeline:
    return StubPipeline(registry)


def context(stub: StubPipeline, *, idempotency_key: str | None = None) -> GraphQLContext:
    return GraphQLContext(
        request=None,
        response=Response(),
        pipeline=stub,  # type: ignore[arg-type]
        request_id="req-12345678",
        credentials="sk_test",
        idempotency_key=idempotency_key,
        client="127.0.0.1",
    )


async def execute(
    transport: GraphQLTransport,
    stub: StubPipeline,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    ctx = context(stub, idempotency_key=idempotency_key)
    result = await transport.schema.execute(query, variables, context_value=ctx)
    return result.data, [dict(e.formatted) for e in result.errors or []]


async def test_a_query_field_is_one_invocation(stub: StubPipeline) -> None:
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    data, errors = await execute(
        transport, stub, '{ system_ping(input: {message: "hi"}) { message actorId } }'
    )
    assert errors == []
    assert data == {"system_ping": {"message": "pong", "actorId": "alice"}}
    [inv] = stub.invocations
    assert (inv.key, inv.version, inv.transport, inv.input) == (
        "system.ping",
        None,
        "graphql",
        {"message": "hi"},
    )
    assert (inv.credentials, inv.request_id, inv.client) == ("sk_test", "req-12345678", "127.0.0.1")
    assert inv.read_only is True and inv.idempotency_key is None


async def test_inputs_go_back_to_the_wire(stub: StubPipeline) -> None:
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    data, errors = await execute(
        transport,
        stub,
        "query($s: InvoiceStatus) { billing_listInvoices_v1_0_0(input: {status: $s}) "
        "{ items { amount amountMinor status createdAt paidAt } nextCursor } }",
        {"s": "PAID"},
    )
    assert errors == []
    assert data == {
        "billing_listInvoices_v1_0_0": {
            "items": [
                {
                    "amount": "999999999999.00",
                    "amountMinor": 99999999999900,
                    "status": "OPEN",
                    "createdAt": "2024-05-01T12:00:00Z",
                    "paidAt": None,
                }
            ],
            "nextCursor": None,
        }
    }
    [inv] = stub.invocations
    assert inv.version == "1.0.0"
    # GraphQL defaults are filled in; the enum is its wire value
    assert inv.input == {"limit": 20, "cursor": None, "status": "paid", "ownerId": None}
    await execute(transport, stub, "{ system_ping { message } }")
    assert stub.invocations[-1].input == {}


async def test_decimal_literals_are_exact(stub: StubPipeline) -> None:
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    query = (
        "mutation { billing_createInvoice(input: "
        '{amount: 0.1000000000000000055511151231257827, currency: "usd"}) { id } }'
    )
    _, errors = await execute(transport, stub, query)
    assert errors == []
    amount = stub.invocations[-1].input["amount"]
    assert amount == Decimal("0.1000000000000000055511151231257827")
    assert "description" in stub.invocations[-1].input  # shown default null, sent as None


async def test_mutation_fields_get_their_own_idempotency_key(stub: StubPipeline) -> None:
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    query = (
        'mutation { a: billing_createInvoice(input: {amount: 1, currency: "usd"}) { id } '
        'b: billing_createInvoice(input: {amount: 2, currency: "usd"}) { id } }'
    )
    _, errors = await execute(transport, stub, query, idempotency_key="key-1")
    assert errors == []
    assert [i.idempotency_key for i in stub.invocations] == ["key-1:a", "key-1:b"]
    assert all(not i.read_only for i in stub.invocations)
    assert field_idempotency_key(None, "a") is None


async def test_a_failed_field_is_null_with_a_problem(stub: StubPipeline) -> None:
    stub.problems["billing.createInvoice"] = Problem.of(CATALOGUE.FORBIDDEN("Policy says no"))
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    query = 'mutation { ok: billing_createInvoice(input: {amount: 1, currency: "usd"}) { id } }'
    data, errors = await execute(transport, stub, query)
    assert data == {"ok": None}
    [error] = errors
    assert error["path"] == ["ok"]
    assert error["message"] == "Policy says no"
    assert error["extensions"] == {
        "type": "https://specops.dev/problems/forbidden",
        "title": "Not allowed by policy",
        "status": 403,
        "code": "FORBIDDEN",
        "detail": "Policy says no",
        "retryable": False,
        "operation": {"key": "billing.createInvoice", "version": "1.0.0", "kind": "command"},
        "requestId": "req-12345678",
    }


async def test_an_unexpected_failure_is_masked(
    stub: StubPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_invocation: Invocation) -> Outcome:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(stub, "invoke", broken)
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    data, errors = await execute(transport, stub, "{ system_ping { message } }")
    assert data == {"system_ping": None}
    [error] = errors
    assert error["extensions"]["code"] == "INTERNAL"
    assert "secret" not in str(error)


@pytest.mark.parametrize(
    ("query", "code", "issue_path"),
    [
        ('mutation { billing_createInvoice(input: {amount: "x", currency: "usd"}) { id } }',
         "INVALID_INPUT", "amount"),
        ('mutation { billing_createInvoice(input: {currency: "usd"}) { id } }',
         "INVALID_INPUT", "amount"),
        ("mutation { billing_createInvoice { id } }", "INVALID_INPUT", ""),
        ('mutation { billing_createInvoice(input: {amount: 1, currency: "usd", x: 1}) { id } }',
         "INVALID_INPUT", "x"),
        ("{ system_ping { nope } }", "MALFORMED_REQUEST", None),
        ("{ system_ping { message }", "MALFORMED_REQUEST", None),
    ],
)  # fmt: skip
async def test_graphql_refusals_have_codes_and_invoke_nothing(
    stub: StubPipeline, query: str, code: str, issue_path: str | None
) -> None:
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    data, errors = await execute(transport, stub, query)
    assert data is None and stub.invocations == []
    assert errors and all(e["extensions"]["code"] == code for e in errors), errors
    extensions = errors[0]["extensions"]
    assert extensions["requestId"] == "req-12345678"
    assert {"type", "title", "status", "detail"} <= set(extensions)
    if issue_path is not None:
        assert [i["path"] for i in extensions["issues"]] == [issue_path]


async def test_variables_that_do_not_fit_are_invalid_input(stub: StubPipeline) -> None:
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    query = "mutation($i: CreateInvoiceInput!) { billing_createInvoice(input: $i) { id } }"
    _, errors = await execute(transport, stub, query, {"i": {"amount": "x", "currency": "usd"}})
    [error] = errors
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["issues"][0]["path"] == "amount"
    assert stub.invocations == []


def aliases(n: int) -> str:
    return "{ " + " ".join(f"p{i}: system_ping {{ message }}" for i in range(n)) + " }"


@pytest.mark.parametrize(
    ("limits", "query", "limit"),
    [
        (GraphQLLimits(max_depth=2), "{ billing_listInvoices { items { id } } }", "depth"),
        (
            GraphQLLimits(max_depth=2),
            "{ ...F } fragment F on Query { billing_listInvoices { items { id } } }",
            "depth",
        ),
        (GraphQLLimits(max_aliases=3), aliases(4), "aliases"),
        (GraphQLLimits(max_root_fields=3, max_aliases=10), aliases(4), "rootFields"),
        (GraphQLLimits(max_cost=30), "{ billing_listInvoices { items { id amount } } }", "cost"),
    ],
)
async def test_limits_refuse_with_a_clear_error(
    stub: StubPipeline, limits: GraphQLLimits, query: str, limit: str
) -> None:
    transport = GraphQLTransport(stub, limits=limits)  # type: ignore[arg-type]
    data, errors = await execute(transport, stub, query)
    assert data is None and stub.invocations == []
    refusals = [e for e in errors if e["extensions"].get("limit", {}).get("name") == limit]
    assert refusals, errors
    assert refusals[0]["extensions"]["code"] == "MALFORMED_REQUEST"
    assert refusals[0]["extensions"]["title"] == "Query exceeds the server's limits"


async def test_limits_allow_what_fits(stub: StubPipeline) -> None:
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    # cost: 10 (root) + 1 (items) + 10 (list) x 2 fields + 1 (nextCursor) = 32
    data, errors = await execute(
        transport, stub, "{ billing_listInvoices { items { id amount } nextCursor } }"
    )
    assert errors == [] and data is not None
    _, errors = await execute(transport, stub, aliases(10))
    assert errors == []


async def test_fragment_bombs_are_measured_once(stub: StubPipeline) -> None:
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    query = f"{{ ...F0 }} {fragments} fragment F40 on Query {{ system_ping {{ message }} }}"
    transport = GraphQLTransport(stub, limits=GraphQLLimits(max_tokens=5000))  # type: ignore[arg-type]
    data, errors = await execute(transport, stub, query)
    assert data is None
    assert any(e["extensions"].get("limit", {}).get("name") == "cost" for e in errors), errors


async def test_introspection_can_be_switched_off(stub: StubPipeline) -> None:
    query = "{ __schema { queryType { name } } }"
    data, errors = await execute(GraphQLTransport(stub), stub, query)  # type: ignore[arg-type]
    assert errors == [] and data == {"__schema": {"queryType": {"name": "Query"}}}
    closed = GraphQLTransport(stub, introspection=False)  # type: ignore[arg-type]
    data, errors = await execute(closed, stub, query)
    assert data is None
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert errors[0]["message"] == "Introspection is disabled on this server"
    # __typename is not introspection of the schema
    data, errors = await execute(closed, stub, "{ system_ping { __typename } }")
    assert errors == [] and data == {"system_ping": {"__typename": "PingOutput"}}


async def test_token_limit(stub: StubPipeline) -> None:
    transport = GraphQLTransport(stub, limits=GraphQLLimits(max_tokens=20))  # type: ignore[arg-type]
    _, errors = await execute(transport, stub, aliases(5))
    assert errors[0]["extensions"]["code"] == "MALFORMED_REQUEST"
    assert "tokens" in errors[0]["message"]


# -- the endpoint: the fast path, and the view for everything else -------------------------

Headers = dict[str, str]


@dataclass
class Answer:
    status: int
    headers: Headers
    body: Any


async def call(
    app: Any,
    body: bytes | list[bytes] = b"",
    *,
    method: str = "POST",
    content_type: str | None = "application/json",
    headers: Headers | None = None,
    query_string: bytes = b"",
) -> Answer:
    """One HTTP request to an ASGI app, in-process (``body`` in chunks when a list)."""
    chunks = [body] if isinstance(body, bytes) else body
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if content_type is not None:
        raw.append((b"content-type", content_type.encode()))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "scheme": "http",
        "query_string": query_string,
        "headers": raw,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    start, *rest = sent
    content = b"".join(m.get("body", b"") for m in rest)
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return Answer(start["status"], answer_headers, json.loads(content) if content else None)


def graphql_body(query: str, variables: dict[str, Any] | None = None, **extra: Any) -> bytes:
    return json.dumps({"query": query, "variables": variables, **extra}).encode()


def refusal_summary(stub: StubPipeline) -> list[tuple[str, str, str]]:
    return [(r["error"].spec.code, r["error"].detail, r["request_id"]) for r in stub.refusals]


async def answered_alike(
    transport: GraphQLTransport, stub: StubPipeline, views: ViewCalls, body: bytes, **kw: Any
) -> Answer:
    """The endpoint's answer, checked equal to the view's (same body, status, headers and
    audit); ``views.count`` tells whether the endpoint used the view."""
    headers = {"Authorization": "Bearer sk_test", "X-Request-Id": "req-12345678", **kw}
    stub.invocations.clear()
    stub.refusals.clear()
    fast = await call(transport.endpoint, body, headers=headers)
    fast_invocations, fast_refusals = list(stub.invocations), refusal_summary(stub)
    stub.invocations.clear()
    stub.refusals.clear()
    count = views.count
    slow = await call(transport.view, body, headers=headers)
    views.count = count
    assert (fast.status, fast.body) == (slow.status, slow.body)
    assert set(fast.headers) == set(slow.headers)
    for name in ("content-type", "x-request-id", "idempotent-replayed", "retry-after"):
        assert fast.headers.get(name) == slow.headers.get(name), name
    assert fast_refusals == refusal_summary(stub)
    assert [i.input for i in fast_invocations] == [i.input for i in stub.invocations]
    return fast


PING = '{ system_ping(input: {message: "hi"}) { message actorId tenantId } }'
CREATE = 'mutation { a: billing_createInvoice(input: {amount: 1, currency: "usd"}) { id } }'


@pytest.mark.parametrize(
    ("query", "variables", "operation_name"),
    [
        (PING, None, None),
        (
            "query P($m: String!) { system_ping(input: {message: $m}) { message } }",
            {"m": "x"},
            None,
        ),
        ("query A { system_ping { message } } query B { b: system_ping { actorId } }", None, "B"),
        ("query A { system_ping { message } } query B { b: system_ping { actorId } }", None, None),
        ("{ __typename system_ping { __typename } }", None, None),
    ],
)
async def test_the_fast_path_answers_valid_documents_as_the_view_does(
    stub: StubPipeline,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> None:
    views = ViewCalls(monkeypatch)
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    body = graphql_body(query, variables, operationName=operation_name)
    answer = await answered_alike(transport, stub, views, body)
    assert views.count == 0 and answer.status == 200
    assert answer.headers["x-request-id"] == "req-12345678"
    assert answer.headers["traceparent"].startswith("00-")
    assert "errors" not in answer.body and stub.invocations


async def test_the_fast_path_shapes_audits_and_masks_errors_as_the_view_does(
    stub: StubPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = ViewCalls(monkeypatch)
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    # fields fail with a problem (its Retry-After passed on)
    both = 'mutation { a: billing_createInvoice(input: {amount: 1, currency: "usd"}) { id } ' + (
        'b: billing_createInvoice(input: {amount: 2, currency: "usd"}) { id } }'
    )
    stub.problems["billing.createInvoice"] = Problem.of(
        CATALOGUE.RATE_LIMITED("Slow down", headers={"Retry-After": "7"})
    )
    partial = await answered_alike(transport, stub, views, graphql_body(both))
    assert partial.body["data"] == {"a": None, "b": None}
    assert partial.body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert partial.headers["retry-after"] == "7"
    # variables of the wrong type: no field runs, the request is audited as refused
    query = "mutation($i: CreateInvoiceInput!) { billing_createInvoice(input: $i) { id } }"
    wrong = graphql_body(query, {"i": {"amount": "x", "currency": "usd"}})
    refused = await answered_alike(transport, stub, views, wrong)
    assert refused.body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert views.count == 0

    async def broken(_invocation: Invocation) -> Outcome:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(stub, "invoke", broken)
    masked = await answered_alike(transport, stub, views, graphql_body(PING))
    assert masked.body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert "secret" not in json.dumps(masked.body) and views.count == 0


async def test_the_fast_path_replays_mutations_as_the_view_does(
    stub: StubPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = ViewCalls(monkeypatch)
    stub.replay = True
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    answer = await answered_alike(
        transport, stub, views, graphql_body(CREATE), **{"Idempotency-Key": "key-1"}
    )
    assert answer.headers["idempotent-replayed"] == "true"
    assert answer.body["extensions"] == {"replayed": ["a"]}
    assert [i.idempotency_key for i in stub.invocations] == ["key-1:a"]
    assert views.count == 0


@pytest.mark.parametrize(
    "body",
    [
        graphql_body("{ system_ping { nope } }"),  # does not validate
        graphql_body("{ system_ping { message }"),  # does not parse
        graphql_body("{ __schema { queryType { name } } }"),  # introspection: filtered
        graphql_body(PING, extensions={"x": 1}),
        graphql_body(PING, operationName="Missing"),
        graphql_body(""),
        json.dumps([{"query": PING}]).encode(),  # a batch
        json.dumps({"query": PING, "variables": [1]}).encode(),
        b"{not json",
    ],
)
async def test_other_requests_are_the_views(
    stub: StubPipeline, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    views = ViewCalls(monkeypatch)
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    await answered_alike(transport, stub, views, body)
    assert views.count == 1


async def test_other_methods_and_content_types_are_the_views(
    stub: StubPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = ViewCalls(monkeypatch)
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    query = "query=" + PING.replace(" ", "%20")
    got = await call(transport.endpoint, method="GET", query_string=query.encode())
    assert got.status == 200 and got.body["data"]["system_ping"]["message"] == "pong"
    form = await call(transport.endpoint, b"query=x", content_type="text/plain")
    assert form.body["errors"][0]["extensions"]["status"] == form.status == 415
    assert views.count == 2
    assert [r["error"].spec for r in stub.refusals] == [CATALOGUE.UNSUPPORTED_MEDIA_TYPE]


async def test_a_body_in_chunks_is_served_and_the_size_limit_holds(
    stub: StubPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = ViewCalls(monkeypatch)
    body = graphql_body(PING)
    transport = GraphQLTransport(stub, limits=GraphQLLimits(max_body_bytes=len(body)))  # type: ignore[arg-type]
    chunked = await call(transport.endpoint, [body[:10], body[10:30], body[30:]])
    assert chunked.status == 200 and views.count == 0
    assert chunked.body["data"]["system_ping"]["message"] == "pong"
    for too_large in ([body, b" "], [body[:10], body[10:] + b" "]):
        refused = await call(transport.endpoint, too_large)
        assert refused.status == 413
        assert refused.body["errors"][0]["extensions"]["title"] == "Request body too large"
    declared = await call(transport.endpoint, body, headers={"Content-Length": "999999"})
    assert declared.status == 413
    assert [r["error"].spec for r in stub.refusals] == [CATALOGUE.PAYLOAD_TOO_LARGE] * 3
    assert views.count == 0  # refused as the view refuses, without running it


async def test_limits_hold_for_documents_seen_before(stub: StubPipeline) -> None:
    transport = GraphQLTransport(stub, limits=GraphQLLimits(max_depth=2))  # type: ignore[arg-type]
    deep = graphql_body("{ billing_listInvoices { items { id } } }")
    for _ in range(3):
        answer = await call(transport.endpoint, deep)
        assert answer.body["data"] is None
        assert answer.body["errors"][0]["extensions"]["limit"]["name"] == "depth"
    assert stub.invocations == [] and len(stub.refusals) == 3
    assert len(transport.documents) == 1
    for _ in range(2):
        ok = await call(transport.endpoint, graphql_body(PING))
        assert "errors" not in ok.body
    assert len(stub.invocations) == 2 and len(transport.documents) == 2


async def test_the_document_cache_is_bounded_least_recently_used_first(registry: Registry) -> None:
    transport = GraphQLTransport(StubPipeline(registry), cache_size=2)  # type: ignore[arg-type]
    documents = transport.documents
    first = await documents.get("{ system_ping { message } }", None)
    assert first is not None and first.operation_type == graphql.OperationType.QUERY
    assert await documents.get("{ system_ping { message } }", None) is first  # cached
    assert await documents.get("{ system_ping { actorId } }", None) is not None
    await documents.get("{ system_ping { message } }", None)  # now the most recently used
    assert await documents.get("{ system_ping { tenantId } }", None) is not None
    assert len(documents) == 2
    assert await documents.get("{ system_ping { message } }", None) is first  # kept
    named = await documents.get("query A { system_ping { message } } query B { __typename }", None)
    assert named is not None and named.operation_name == "A"
    assert await documents.get("subscription { x }", None) is None
    padded = "{ system_ping { message } }" + " " * MAX_CACHED_TEXT
    assert await documents.get(padded, None) is None  # too long to keep: the view's
    assert len(documents) == 2 and ("subscription { x }", None) in documents
    with pytest.raises(ValueError, match="at least one"):
        DocumentCache(transport.validator, max_tokens=10, maxsize=0)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            'mutation { things_doThing(input: {thingId: "t", lines: [{label: "a", price: 1.5}, '
            '{label: "b", quantity: 3, price: "2"}], due: "2024-05-01", meta: {a: [1]}, '
            'tags: ["x"]}) { ok } }',
            None,
        ),
        (
            'mutation { things_doThing(input: {thingId: "t", kind: LARGE, mode: "slow", '
            'lines: {label: "a", price: 0.1}, due: null, tags: null}) { ok } }',
            None,
        ),
        (
            "mutation($i: RichInput!) { things_doThing(input: $i) { ok } }",
            {"i": {"thingId": "t", "kind": "LARGE", "lines": [{"label": "a", "price": "1.50"}]}},
        ),
    ],
)
async def test_direct_resolvers_send_what_strawberrys_would(
    declare_command: Declare, query: str, variables: dict[str, Any] | None
) -> None:
    registry = Registry()
    install_op(registry, declare_command(input=RichInput, output=RichOutput), handler)
    stub = StubPipeline(registry)
    stub.problems["things.doThing"] = Problem.of(CATALOGUE.FORBIDDEN("no"))
    declared = build_schema(registry, resolver_for, schema_class=ProblemSchema)
    direct = GraphQLTransport(stub).schema  # type: ignore[arg-type]
    for schema in (declared, direct):
        result = await schema.execute(query, variables, context_value=context(stub))
        assert [(e.extensions or {})["code"] for e in result.errors or []] == ["FORBIDDEN"]
    via_strawberry, via_direct = stub.invocations
    assert via_direct.input == via_strawberry.input
    assert via_direct.input["thingId"] == "t" and via_direct.input["lines"]
