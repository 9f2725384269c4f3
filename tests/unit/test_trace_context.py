"""W3C trace context: parsing ``traceparent``, and the trace id each invocation records."""

from __future__ import annotations

import random
import re

import pytest

from registry.invocation import Invocation
from registry.tracing import (
    TraceParent,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    response_traceparent,
    trace_id_from,
)
from tests.support.doubles import Sink, make_pipeline

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_a_valid_traceparent_is_parsed() -> None:
    assert parse_traceparent(VALID) == TraceParent(TRACE, SPAN, "01")
    assert parse_traceparent(f"  {VALID}\t") == TraceParent(TRACE, SPAN, "01")
    assert trace_id_from(VALID) == TRACE
    assert TraceParent(TRACE, SPAN, "01").header() == VALID


def test_a_later_version_may_carry_more_fields() -> None:
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-extra") == TraceParent(TRACE, SPAN, "01")
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01") == TraceParent(TRACE, SPAN, "01")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"01-{TRACE}-{SPAN}-01extra",  # more fields need a dash
        f"00-{TRACE.upper()}-{SPAN}-01",  # hex is lowercase
        f"00-{TRACE[:-1]}-{SPAN}-01",  # short trace id
        f"00-{TRACE}-{SPAN[:-1]}-01",  # short span id
        f"00-{TRACE}-{SPAN}-1",  # short flags
        f"00-{TRACE}-{SPAN}-0g",  # not hex
        f"0-{TRACE}-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE}x-{SPAN}-01",
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None
    assert trace_id_from(value) is None


def test_new_ids_are_random_hex() -> None:
    assert HEX32.match(new_trace_id())
    assert new_trace_id() != new_trace_id()
    assert re.match(r"^[0-9a-f]{16}$", new_span_id())


def test_minted_trace_and_span_ids_are_never_all_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "getrandbits", lambda bits: 0)
    trace_id, span_id = new_trace_id(), new_span_id()
    assert (trace_id, span_id) == ("0" * 31 + "1", "0" * 15 + "1")
    assert parse_traceparent(f"00-{trace_id}-{span_id}-00") is not None


def test_the_response_span_is_the_one_given() -> None:
    answer = parse_traceparent(response_traceparent(TRACE, VALID, "00f067aa0ba902b7"))
    assert answer is not None
    assert (answer.trace_id, answer.span_id, answer.flags) == (TRACE, "00f067aa0ba902b7", "01")


def test_the_response_continues_the_trace_with_a_new_span() -> None:
    answer = parse_traceparent(response_traceparent(TRACE, VALID))
    assert answer is not None
    assert (answer.trace_id, answer.flags) == (TRACE, "01")
    assert answer.span_id != SPAN
    minted = new_trace_id()
    started = parse_traceparent(response_traceparent(minted, None))
    assert started is not None
    assert (started.trace_id, started.flags) == (minted, "00")


# -- the pipeline records the trace id ----------------------------------------------------


@pytest.mark.parametrize("wait", [True, False])
async def test_every_record_is_waited_for_unless_configured_not_to(wait: bool) -> None:
    sink = Sink()
    pipeline = make_pipeline(sink, wait_for_every_record=wait)
    await pipeline.invoke(Invocation(key="test.echo", input={"text": "a"}, transport="rest"))
    await pipeline.invoke(Invocation(key="test.shout", input={"text": "b"}, transport="rest"))
    await pipeline.invoke(Invocation(key="test.echo", input={"text": 1}, transport="rest"))
    assert sink.durable == [False, True, False]  # the query, the command, a refusal
    assert sink.waits == [wait, wait, wait]


async def test_the_callers_trace_id_is_recorded() -> None:
    sink = Sink()
    outcome = await make_pipeline(sink).invoke(
        Invocation(key="test.echo", input={}, transport="rest", trace_id=TRACE)
    )
    assert outcome.ok
    assert sink.records[0].trace_id == TRACE


async def test_without_one_the_pipeline_mints_a_trace_id_per_invocation() -> None:
    sink = Sink()
    p = make_pipeline(sink)
    first = Invocation(key="test.echo", input={}, transport="cli")
    second = Invocation(key="nope.missing", input={}, transport="cli")
    await p.invoke(first)
    await p.invoke(second)
    ids = [r.trace_id for r in sink.records]
    assert all(i is not None and HEX32.match(i) for i in ids)
    assert ids[0] != ids[1]
    # The transport can read it back (REST answers it in its traceparent header).
    assert first.trace_id == ids[0]


def test_minted_request_ids_are_unique_and_sort_by_time() -> None:
    from registry.ids import new_request_id, request_id_from

    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)  # millisecond prefix
    assert all(request_id_from(i) == i for i in ids[:10])  # valid as a caller's id too
