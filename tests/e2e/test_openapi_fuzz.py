"""Fuzz the REST surface of a running server from its own OpenAPI document (schemathesis).

The document is loaded from ``/api/openapi.json`` of a real server (subprocess, SQLite,
localstripe). Every operation gets schemathesis' coverage cases (boundary values, missing
and unexpected parts, undeclared methods) and Hypothesis-generated positive and negative
cases sent with a valid API key, then a few more without one. Every response must have
a documented status, content type, headers and body, never a 5xx; invalid input must be
refused, valid input must pass the contract's validation, and a 2xx must not come back
when the credentials are removed or wrong (``ignored_auth`` resends to check).

schemathesis' pytest integration (``schemathesis.pytest.from_fixture``) is not used: with
pytest 9.2 it fails on ``Function._nodeid``. The public ``BaseSchema.iter_coverage_cases``,
``APIOperation.as_strategy`` and ``Case.call_and_validate`` do the same work here, and
the failures are gathered per operation (one subtest each) and reported together.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tests.support.fuzz import OPENAPI_CONFIG as CONFIG
from tests.support.fuzz import SETTINGS
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

Case = schemathesis.Case[Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]

USER = "alice"

#: Hypothesis examples per operation without credentials; with them, ``SETTINGS``' own
#: (positive and negative mixed). The coverage cases come on top: deterministic, a few
#: dozen per operation.
MAX_EXAMPLES_UNAUTHENTICATED = max(10, SETTINGS.max_examples // 4)

#: Input rules a JSON Schema cannot state: an amount may have only as many decimals as its
#: currency (2 for usd, 0 for jpy), the document's limit being 3; a page cursor is an
#: opaque token that must be one this server issued; and a currency must be one of the
#: ~140 Stripe supports, in any case (the document states the shape of a code, not that list).
RULES_THE_DOCUMENT_CANNOT_STATE = {"currency_precision", "currency_unsupported", "invalid_cursor"}


def positive_input_is_accepted(ctx: Any, response: Any, case: Case) -> None:
    """Input the document calls valid must pass the contract's validation.

    A 422 INVALID_INPUT with field issues means the document is looser than the contract,
    unless every issue is a rule the document cannot state. Other 422s (AMOUNT_MISMATCH,
    PAYMENT_METHOD_INVALID, IDEMPOTENCY_CONFLICT) and a handler's refusal without field
    issues depend on stored state, like a 404; schemathesis' positive_data_acceptance
    cannot tell them apart.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return
    try:
        problem = response.json()
    except ValueError:
        return
    issues = {issue.get("code") for issue in problem.get("issues", [])}
    if problem.get("code") != "INVALID_INPUT" or not issues:
        return
    assert issues <= RULES_THE_DOCUMENT_CANNOT_STATE, (
        f"The document accepts this input but the contract refused it: {response.text}"
    )


#: Server errors with a known cause outside this test's reach, recognised by the request
#: that triggers them (reason -> predicate on key and input). The test is an xfail while
#: they reproduce, and fails when one no longer does, so that its entry goes with the fix.
#: Any other 5xx is a failure. Empty now: keep it so.
KNOWN_SERVER_ERRORS: dict[str, Callable[[str, dict[str, Any]], bool]] = {}


@dataclass
class Known:
    """The known server errors that reproduced, each with one request that shows it."""

    seen: dict[str, str] = field(default_factory=dict)

    def not_a_server_error(self, ctx: Any, response: Any, case: Case) -> None:
        if response.status_code == 500:
            key = case.operation.path.removeprefix("/api/ops/").split("/", 1)[0]
            data = case.body if isinstance(case.body, dict) else case.query or {}
            for reason, matches in KNOWN_SERVER_ERRORS.items():
                if matches(key, data):
                    self.seen.setdefault(reason, f"{case.method} {case.path} {data}")
                    return
        not_a_server_error(ctx, response, case)


def checks(known: Known, *, authenticated: bool) -> list[Callable[..., Any]]:
    conformance: list[Callable[..., Any]] = [
        known.not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    if not authenticated:
        return conformance
    return [
        *conformance,
        negative_data_rejection,
        positive_input_is_accepted,
        missing_required_header,
        unsupported_method,
        allow_header_conformance,
        # On a 2xx, resends without and with invalid credentials and expects 401/403.
        ignored_auth,
    ]


@dataclass
class Seed:
    """A user's key, and invoices of theirs for capturePayment and getInvoice to find."""

    token: str
    invoices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def seed(stack: Stack) -> Seed:
    seed = Seed(await stack.key(f"fuzz-{uuid.uuid4().hex[:8]}", USER))
    async with stack.client(seed.token) as http:
        for amount, currency in [("12.50", "usd"), ("1000", "jpy"), ("7.125", "kwd")] * 2:
            r = await http.post(
                "/api/ops/billing.createInvoice", json={"amount": amount, "currency": currency}
            )
            assert r.status_code == 200, r.text
            seed.invoices.append(r.json())
    return seed


def with_seeded_invoices(
    operation: Operation, seed: Seed, strategy: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """Cases that sometimes name a real invoice (and then maybe its exact price and a
    localstripe card), to reach what lies behind the 404: reads, the amount check, Stripe
    charges and declines, already-paid invoices."""
    if not operation.path.startswith(("/api/ops/billing.capturePayment", "/api/ops/billing.get")):
        return strategy
    methods = ["pm_card_visa", "pm_card_visa_chargeDeclined", "pm_does_not_exist"]
    variants = st.one_of(
        st.none(),
        st.tuples(st.sampled_from(seed.invoices), st.booleans(), st.sampled_from(methods)),
    )

    def apply(drawn: tuple[Case, Any]) -> Case:
        case, variant = drawn
        if variant is None:
            return case
        invoice, exact, method = variant
        if isinstance(case.query, dict) and "invoiceId" in case.query:
            case.query = {**case.query, "invoiceId": invoice["id"]}
        if isinstance(case.body, dict) and "invoiceId" in case.body:
            body = {**case.body, "invoiceId": invoice["id"]}
            if exact:
                body.update(
                    amount=invoice["amount"], currency=invoice["currency"], paymentMethodId=method
                )
            case.body = body
        return case

    return st.tuples(strategy, variants).map(apply)


@dataclass
class Findings:
    """The distinct failures of one operation, each with the first report that showed it."""

    by_title: dict[str, str] = field(default_factory=dict)

    def run(self, send: Callable[[], None]) -> None:
        try:
            send()
        except (AssertionError, BaseExceptionGroup) as exc:
            self.add(exc)

    def add(self, exc: BaseException) -> None:
        if isinstance(exc, FailureGroup):
            for failure in exc.exceptions:
                self.by_title.setdefault(failure.title, str(exc))
        elif isinstance(exc, BaseExceptionGroup):  # Hypothesis found several bugs
            for inner in exc.exceptions:
                self.add(inner)
        elif isinstance(exc, AssertionError):
            self.by_title.setdefault(str(exc).split("\n", 1)[0], str(exc))
        else:
            raise exc


def fuzz_operation(
    schema: schemathesis.BaseSchema,
    operation: Operation,
    seed: Seed,
    session: requests.Session,
    known: Known,
) -> Findings:
    findings = Findings()
    with_key = checks(known, authenticated=True)
    without_key = checks(known, authenticated=False)

    def authenticated(case: Case) -> None:
        case.call_and_validate(headers=seed.auth, session=session, checks=with_key)

    def unauthenticated(case: Case) -> None:
        response = case.call_and_validate(session=session, checks=without_key)
        assert response.status_code == 401, f"without credentials: {response.text}"

    generation = schema.config.generation_for(operation=operation, phase="coverage")
    for case in schema.iter_coverage_cases(
        operation, generation_modes=list(GenerationMode), generation_config=generation
    ):
        findings.run(functools.partial(authenticated, case))

    modes = st.one_of([operation.as_strategy(generation_mode=mode) for mode in GenerationMode])

    @SETTINGS
    @given(case=with_seeded_invoices(operation, seed, modes))
    def fuzz_authenticated(case: Case) -> None:
        authenticated(case)

    @hypothesis.settings(SETTINGS, max_examples=MAX_EXAMPLES_UNAUTHENTICATED)
    @given(case=modes)
    def fuzz_unauthenticated(case: Case) -> None:
        unauthenticated(case)

    findings.run(fuzz_authenticated)
    findings.run(fuzz_unauthenticated)
    return findings


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_rest_surface_matches_its_document(
    stack: Stack, seed: Seed, subtests: pytest.Subtests
) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.url}/api/openapi.json", config=CONFIG)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert len(operations) >= 10, "the document lists too few operations"
    known = Known()
    failed = []
    with requests.Session() as session:
        for operation in operations:
            with subtests.test(msg=operation.label):
                findings = fuzz_operation(schema, operation, seed, session, known)
                if findings.by_title:
                    failed.append(operation.label)
                assert not findings.by_title, "\n".join(findings.by_title.values())
    assert not failed, f"{len(failed)} operations break their document: {failed}"
    stale = [reason for reason in KNOWN_SERVER_ERRORS if reason not in known.seen]
    assert not stale, f"Known server errors no longer reproduce; remove them: {stale}"
    if known.seen:
        shown = "; ".join(f"{reason}, e.g. {request}" for reason, request in known.seen.items())
        pytest.xfail(f"known server errors: {shown}")


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_deeply_nested_json_is_a_documented_400(stack: Stack, seed: Seed, method: str) -> None:
    """What the generators never try: JSON nested past Python's recursion limit."""
    schema = schemathesis.openapi.from_url(f"{stack.url}/api/openapi.json", config=CONFIG)
    operation = schema["/api/ops/system.ping"][method]
    depth = 3_000 if method == "GET" else 100_000  # a URL the HTTP server still reads
    nested = "[" * depth + "]" * depth
    if method == "GET":
        response = requests.get(
            f"{stack.url}/api/ops/system.ping", params={"input": nested}, headers=seed.auth
        )
    else:
        response = requests.post(
            f"{stack.url}/api/ops/system.ping",
            data=nested,
            headers={**seed.auth, "Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "MALFORMED_REQUEST"
    operation.validate_response(response)
