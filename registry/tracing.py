"""W3C trace context: the ``traceparent`` a caller sends, and the one we answer with.

``traceparent: 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>``
(https://www.w3.org/TR/trace-context/). A header that breaks the format, or whose ids are
all zeros, is ignored: the invocation gets a new trace id, as one without a header does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.ids import new_span_id, new_trace_id

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A parsed ``traceparent``."""

    trace_id: str
    span_id: str
    flags: str = "00"

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The trace context of a ``traceparent`` value, or None when it is absent or invalid.

    Version ``00`` must be exactly the four fields; a later version may append fields
    (after a ``-``), which are ignored; version ``ff`` is invalid. Hex is lowercase.
    """
    if not value:
        return None
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    rest = value[match.end() :]
    if rest and (version == "00" or not rest.startswith("-")):
        return None
    return TraceParent(trace_id, span_id, flags)


def trace_id_from(value: str | None) -> str | None:
    """The trace id of a ``traceparent`` value, or None (the pipeline then mints one)."""
    parent = parse_traceparent(value)
    return parent.trace_id if parent is not None else None


def response_traceparent(
    trace_id: str, request_value: str | None = None, span_id: str | None = None
) -> str:
    """The ``traceparent`` to answer with: the same trace, a span id for this server's
    part of it (``span_id``, or a new one), and the caller's flags (``00`` when it sent
    none)."""
    parent = parse_traceparent(request_value)
    flags = parent.flags if parent is not None and parent.trace_id == trace_id else "00"
    return f"00-{trace_id}-{span_id or new_span_id()}-{flags}"


__all__ = [
    "TraceParent",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
    "response_traceparent",
    "trace_id_from",
]
