"""A contract's documentation says the same on every surface: OpenAPI, GraphQL, the MCP
tool and resource, and ``specops ops show`` state one deprecation notice, one list of the
errors any call may answer, and one policy in words."""

from __future__ import annotations

from datetime import date
from typing import Any

import graphql
import pytest

from registry.contract import Contract, Deprecation, RateLimit
from registry.registry import Registry
from tests.unit.conftest import Declare, ThingInput
from transports.graphql import graphql_sdl
from transports.graphql.schema import field_name
from transports.mcp.resources import contract_markdown
from transports.mcp.tools import describe
from transports.openapi import openapi_document


async def handler(_input: ThingInput, _ctx: Any) -> dict[str, Any]:
    raise AssertionError("never called")


def surfaces(registry: Registry, contract: Contract) -> dict[str, str]:
    """Every text that documents the latest version of ``contract``'s key."""
    openapi = openapi_document(registry)["paths"][f"/api/ops/{contract.key}"]["post"]
    schema = graphql.build_schema(graphql_sdl(registry))
    root = schema.mutation_type if contract.kind == "command" else schema.query_type
    assert root is not None
    field = root.fields[field_name(contract.key)]
    return {
        "openapi": openapi["description"],
        "graphql": f"{field.description}\n{field.deprecation_reason or ''}",
        "mcp tool": describe(contract, pinned=False),
        "mcp resource": contract_markdown(contract, latest=True),
    }


@pytest.fixture
def retired(declare_command: Declare) -> tuple[Registry, Contract]:
    contract = declare_command(
        auth="admin",
        rules=[("thing", "do", "owner")],
        rate_limit=RateLimit(7, "tenant"),
        deprecation=Deprecation(
            "Things are done otherwise now",
            sunset=date(2031, 1, 2),
            since=date(2030, 1, 2),
            replaced_by="things.doOther",
        ),
    )
    registry = Registry()
    registry.add(contract, handler)
    return registry, contract


def test_every_surface_states_the_same_deprecation_notice(
    retired: tuple[Registry, Contract],
) -> None:
    registry, contract = retired
    notice = (
        "things.doThing v1.0.0 is deprecated since 2030-01-02: Things are done otherwise "
        "now. It stops working on 2031-01-02. Use things.doOther instead."
    )
    for surface, text in surfaces(registry, contract).items():
        assert notice in text, surface


def test_every_surface_states_the_policy_in_the_same_words(
    retired: tuple[Registry, Contract],
) -> None:
    registry, contract = retired
    caller = "Caller: an admin-level identity; needs do on thing (only things the caller owns)."
    limit = "Rate limit: 7 calls a minute per tenant."
    for surface, text in surfaces(registry, contract).items():
        assert caller in text, surface
        assert limit in text, surface


def test_the_errors_any_call_may_answer_agree_with_the_openapi_responses(
    retired: tuple[Registry, Contract],
) -> None:
    registry, contract = retired
    operation = openapi_document(registry)["paths"][f"/api/ops/{contract.key}"]["post"]
    answered = {
        part.split(":", 1)[0]
        for status, response in operation["responses"].items()
        if status != "200"
        for part in response["description"].split("; ")
    }
    for surface, text in surfaces(registry, contract).items():
        if surface == "openapi":
            continue
        for code in answered:
            assert code in text, (surface, code)
