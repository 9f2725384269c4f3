"""Fuzzing the GraphQL surface: schemathesis generates queries and mutations from the
schema a caller sees (introspection with its key) and sends them to the running server.

Whatever the input, an answer is a GraphQL response with HTTP 200, and every error in it
carries a stable catalogue code (``extensions.code``) other than ``INTERNAL``: bad input
is a typed refusal, never a server error. The caller is a user and admin of a tenant of
its own, so that what its mutations change (keys, policy lines) concerns no other test.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.graphql import nodes

from tests.support.fuzz import SETTINGS, is_stable_refusal
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

# Amounts are exact decimals sent as strings; also numbers and odd text, which the
# contract must refuse as typed errors.
schemathesis.graphql.scalar(
    "Decimal",
    st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: nodes.String(str(d))),
        st.text(max_size=30).map(nodes.String),
        st.integers().map(nodes.Int),
    ),
)


def problems_in(response: Any) -> list[str]:
    """What is wrong with one GraphQL answer, if anything."""
    if response.status_code != 200:
        return [f"HTTP {response.status_code}: {response.text[:300]}"]
    try:
        body = response.json()
    except ValueError:
        return [f"not JSON: {response.text[:300]}"]
    if not isinstance(body, dict) or not ({"data", "errors"} & set(body)):
        return [f"not a GraphQL response: {response.text[:300]}"]
    found = []
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if not is_stable_refusal(code):
            found.append(f"error without a stable code ({code!r}): {error.get('message')}")
    return found


def fuzz_field(
    field: Any,
    headers: dict[str, str],
    session: requests.Session,
    failures: list[str],
    seen: dict[str, int],
) -> None:
    """Send ``SETTINGS.max_examples`` generated calls of one root field; note what is wrong with
    each answer in ``failures`` and count the error codes in ``seen``."""

    @SETTINGS
    @given(case=field.as_strategy())
    def fuzz(case: Any) -> None:
        response = case.call(headers=headers, session=session)
        found = problems_in(response)
        failures.extend(f"{field.label}: {problem}" for problem in found)
        if not found:
            for error in response.json().get("errors") or []:
                code = error["extensions"]["code"]
                seen[code] = seen.get(code, 0) + 1

    fuzz()


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
async def test_graphql_answers_any_input_with_data_or_coded_errors(stack: Stack) -> None:
    token = await stack.key(f"gqlfuzz-{uuid.uuid4().hex[:8]}", "fuzzer", ("user", "admin"))
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.graphql.from_url(f"{stack.url}/graphql", headers=headers)
    fields = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        fields.append(result.ok())
    labels = {field.label for field in fields}
    assert {"Mutation.billing_capturePayment", "Query.system_ping"} <= labels, labels
    seen: dict[str, int] = {}
    failures: list[str] = []
    with requests.Session() as session:
        for field in fields:
            fuzz_field(field, headers, session, failures, seen)
    assert not failures, "\n".join(failures[:20])
    assert len(fields) >= 20, f"the admin's schema has too few root fields: {sorted(labels)}"
    assert seen.get("INVALID_INPUT"), f"no input was refused, so validation went untried: {seen}"
