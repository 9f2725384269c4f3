"""Every id this server mints: request ids, W3C trace ids and span ids.

None of them guards anything, so they come from ``random`` (seeded from the OS, reseeded in
a forked child). A request id sorts by the time it was minted (see docs/performance.md).
"""

from __future__ import annotations

import random
import re
import time

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id() -> str:
    """32 hex digits: the time in milliseconds (48 bits, as in UUIDv7) then 80 random
    bits, so that ids minted later sort later."""
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


def request_id_from(candidate: str | None) -> str:
    """A caller's request id when it is sane (8 to 128 of ``[A-Za-z0-9._:-]``), else a
    new one."""
    if candidate and _REQUEST_ID.fullmatch(candidate):
        return candidate
    return new_request_id()


def new_trace_id() -> str:
    """128 random bits as 32 hex digits, never all zeros."""
    return f"{random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    """64 random bits as 16 hex digits, never all zeros."""
    return f"{random.getrandbits(64) or 1:016x}"
