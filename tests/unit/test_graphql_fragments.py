"""GraphQL documents built of fragments (chains, fan-outs, cycles, deep nesting) are
answered with a result or a typed refusal, and the work they cause is bounded: counted in
Python function calls, not in seconds.

Two budgets hold for every generated document: preparing it (parsing, the introspection
walk, validation with the limits) makes at most ``CALLS_PER_TOKEN`` calls per token of the
document, and while the endpoint answers it, the event loop is never kept more than
``LOOP_STRETCH`` calls from a concurrent task (a probe standing in for ``/healthz``).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pytest
from graphql import Lexer, Source, TokenKind, parse, validate
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from registry.registry import Registry
from specops.settings import Settings
from tests.support.doubles import StubPipeline
from tests.unit.test_graphql_schema import call, graphql_body
from transports.graphql import GraphQLTransport
from transports.graphql.limits import GraphQLLimits, Measurer, limits_rule
from transports.graphql.visibility import introspection_keys, root_selections

#: Calls per token a document's preparation may make (measured: at most 111).
CALLS_PER_TOKEN = 250
#: Calls the event loop may run between two turns of the probe (measured: at most about
#: 30,000, parsing up to the token limit; validation runs on a worker thread).
LOOP_STRETCH = 50_000


class CallCounter:
    """Counts the Python function calls made on this thread while it is installed."""

    def __init__(self) -> None:
        self.calls = 0

    def _profile(self, _frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call":
            self.calls += 1

    @contextmanager
    def counting(self) -> Iterator[CallCounter]:
        previous = sys.getprofile()
        sys.setprofile(self._profile)
        try:
            yield self
        finally:
            sys.setprofile(previous)


def tokens(text: str) -> int:
    lexer = Lexer(Source(text))
    count = 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


# -- documents ----------------------------------------------------------------------------

LEAVES = ("__typename", "system_ping { message }", "system_ping { ...P0 }")


@dataclass(frozen=True)
class Graph:
    """Fragments ``F0..Fn`` on Query, each spreading others (repeats are fan-out, a spread
    back is a cycle), around a leaf nested in ``nesting`` inline fragments."""

    spreads: tuple[tuple[int, ...], ...]
    leaf: str
    nesting: int

    def text(self) -> str:
        parts = ["query { ...F0 }"]
        for i, targets in enumerate(self.spreads):
            body = " ".join(f"...F{t}" for t in targets) or "__typename"
            if i == len(self.spreads) - 1:
                body += " " + self.leaf
            inner = "... on Query { " * self.nesting + body + " }" * self.nesting
            parts.append(f"fragment F{i} on Query {{ {inner} }}")
        parts.append("fragment P0 on PingOutput { message ...P1 ...P1 }")
        parts.append("fragment P1 on PingOutput { actorId tenantId }")
        return " ".join(parts)


def chain(n: int) -> tuple[tuple[int, ...], ...]:
    return (*tuple((i + 1,) for i in range(n - 1)), ())


def fan_out(n: int, width: int) -> tuple[tuple[int, ...], ...]:
    return (*tuple((i + 1,) * width for i in range(n - 1)), ())


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    n = draw(st.integers(1, 40))
    shape = draw(st.sampled_from(("chain", "fan-out", "cycle", "any")))
    if shape == "chain":
        spreads = chain(n)
    elif shape == "fan-out":
        spreads = fan_out(n, draw(st.integers(2, 3)))
    elif shape == "cycle":
        spreads = (*chain(n)[:-1], (draw(st.integers(0, n - 1)),))
    else:
        target = st.integers(0, n - 1)
        spreads = tuple(tuple(draw(st.lists(target, max_size=4))) for _ in range(n))
    nesting = draw(st.sampled_from((0, 1, 3, 60)))
    return Graph(spreads, draw(st.sampled_from(LEAVES)), nesting)


EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def transport(registry: Registry) -> GraphQLTransport:
    return GraphQLTransport(StubPipeline(registry), cache_size=4)  # type: ignore[arg-type]


# -- the walks ----------------------------------------------------------------------------


def bomb(levels: int, leaf: str = "__typename") -> str:
    spreads = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"query {{ ...F0 }} {spreads} fragment F{levels} on Query {{ {leaf} }}"


def test_the_root_walk_enters_each_fragment_once() -> None:
    document = parse(bomb(200, '__schema { queryType { name } } s: __type(name: "Query") { name }'))
    fields = list(root_selections(document))
    assert [f.name.value for f in fields] == ["__schema", "__type"]
    assert introspection_keys(document) == {"__schema": "__schema", "s": "__type"}


def test_the_limits_walk_counts_expansions_in_linear_steps(transport: GraphQLTransport) -> None:
    for levels, refused in ((10, "cost"), (60, "cost"), (400, "depth")):
        walks: list[Measurer] = []
        rule = limits_rule(GraphQLLimits(), walks)
        errors = validate(transport.schema._schema, parse(bomb(levels)), [rule])
        # 2**levels __typename fields; past 64 fragments deep, the walk gives up first
        [limit] = [e.extensions["limit"]["name"] for e in errors if e.extensions]
        assert limit == refused
        [walk] = walks
        assert walk.steps <= 2 * (2 * levels + 2)  # each selection, at the root and below


# -- every generated document -------------------------------------------------------------


@EXAMPLES
@given(graph=graphs())
def test_preparing_a_document_makes_calls_linear_in_its_tokens(
    transport: GraphQLTransport, graph: Graph
) -> None:
    text = graph.text()
    note(text)
    with CallCounter().counting() as counter:
        transport.documents.prepare(text, None)
    assert counter.calls <= CALLS_PER_TOKEN * tokens(text), (counter.calls, tokens(text))


@EXAMPLES
@given(graph=graphs())
async def test_every_document_is_answered_while_the_loop_keeps_turning(
    transport: GraphQLTransport, graph: Graph
) -> None:
    note(graph.text())
    counter = CallCounter()
    turns = [0]  # the call count at each turn of the probe
    done = asyncio.Event()

    async def probe() -> None:  # stands in for /healthz: it runs whenever the loop turns
        while not done.is_set():
            await asyncio.sleep(0)
            turns.append(counter.calls)

    probing = asyncio.create_task(probe())
    with counter.counting():
        answer = await call(transport.endpoint, graphql_body(graph.text()))
        turns.append(counter.calls)
        done.set()
        await probing
    stretches = [later - earlier for earlier, later in itertools.pairwise(turns)]
    assert answer.status == 200
    errors = answer.body.get("errors") or []
    assert all(e["extensions"]["code"] == "MALFORMED_REQUEST" for e in errors), errors
    assert errors or answer.body["data"]
    assert max(stretches) <= LOOP_STRETCH, max(stretches)


# -- what a refusal may say ---------------------------------------------------------------


class HidingPipeline(StubPipeline):
    """A stub whose caller may attempt only ``system.ping``."""

    async def may_attempt(self, actor: Any, operation: Any) -> bool:
        return bool(operation.contract.key == "system.ping")


TYPO = "{ keys_listKey { items { id } } }"
VARIABLE_TYPO = (
    "mutation($i: CreateInvoiceInput!) { billing_createInvoice(input: $i) { id } }",
    {"i": {"amout": "1", "currency": "usd"}},
)


async def messages(transport: GraphQLTransport, query: str, variables: Any = None) -> str:
    answer = await call(
        transport.endpoint,
        graphql_body(query, variables),
        headers={"Authorization": "Bearer sk_test"},
    )
    return " ".join(e["message"] for e in answer.body["errors"])


@pytest.mark.parametrize("suggestions", [False, True])
async def test_no_error_suggests_a_field_the_caller_cannot_see(
    registry: Registry, suggestions: bool
) -> None:
    transport = GraphQLTransport(HidingPipeline(registry), suggestions=suggestions)  # type: ignore[arg-type]
    for query, variables in ((TYPO, None), VARIABLE_TYPO):
        said = await messages(transport, query, variables)
        assert "Did you mean" not in said and "keys_listKeys" not in said, said


async def test_suggestions_are_off_unless_asked_and_then_for_who_sees_everything(
    registry: Registry,
) -> None:
    quiet = GraphQLTransport(StubPipeline(registry))  # type: ignore[arg-type]
    assert "Did you mean" not in await messages(quiet, TYPO)
    helpful = GraphQLTransport(StubPipeline(registry), suggestions=True)  # type: ignore[arg-type]
    assert "Did you mean 'keys_listKeys'" in await messages(helpful, TYPO)


def test_suggestions_are_off_in_production() -> None:
    assert Settings(environment="development").graphql_suggestions_enabled
    assert not Settings(environment="production").graphql_suggestions_enabled
    assert not Settings(
        environment="production", graphql_introspection=True
    ).graphql_suggestions_enabled
    assert not Settings(graphql_introspection=False).graphql_suggestions_enabled


# -- bodies nested too deeply -------------------------------------------------------------

DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(
    "body",
    [
        DEEP.encode(),
        ('{"query": "{ __typename }", "variables": {"v": ' + DEEP + "}}").encode(),
    ],
)
async def test_a_body_nested_too_deeply_is_a_malformed_request_audited_once(
    registry: Registry, body: bytes
) -> None:
    stub = StubPipeline(registry)
    transport = GraphQLTransport(stub)  # type: ignore[arg-type]
    answer = await call(transport.endpoint, body)
    assert answer.status == 400
    [error] = answer.body["errors"]
    assert error["extensions"]["code"] == "MALFORMED_REQUEST"
    assert error["message"] == "The request's JSON nests too deeply"
    [refusal] = stub.refusals
    assert (refusal["endpoint"], refusal["error"].code) == ("graphql", "MALFORMED_REQUEST")
    query = "query=%7B__typename%7D&variables=" + "%5B" * 10_000
    by_get = await call(transport.endpoint, method="GET", query_string=query.encode())
    assert by_get.status == 400 and len(stub.refusals) == 2
