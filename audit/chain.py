"""The hash chain of the audit trail: a record's canonical bytes, and its hash.

Every ``audit_events`` row holds ``seq`` (its position, gapless from 1), ``prev_hash``
(the hash of the row at ``seq - 1``; ``GENESIS`` for the first) and::

    hash = sha256(prev_hash + canonical(seq, content)).hexdigest()

``canonical`` is compact JSON (ASCII only) of ``[seq, at, request_id, ..., input]``, the
columns of ``CONTENT`` in that order. The same record gives the same bytes as written by
``audit.log``, as read back from SQLite or from PostgreSQL, and as exported to JSON lines:

- ``at`` is UTC with microseconds, ``2024-05-01T12:00:00.123456Z`` (a record's float time
  is rounded to microseconds once, by ``timestamp_text``, before it is stored);
- text columns are ``str`` or null, ``status`` an integer, ``latency_ms`` a float (its
  ``repr``: a double survives both databases exactly), ``replayed`` a JSON boolean
  (SQLite returns 0/1).

``CONTENT`` and the encoding are frozen: changing either changes every stored hash.
Migration ``0003`` keeps its own copy of this code for the same reason.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Iterator, Mapping
from hashlib import sha256
from operator import attrgetter
from typing import Any

from registry.audit_record import AuditRecord
from storage.times import timestamp_text, utc_text

#: ``prev_hash`` of the first record, and the hash of the empty chain.
GENESIS = "0" * 64


def _text(value: Any) -> str | None:
    return value if value is None or type(value) is str else str(value)


def _integer(value: Any) -> int:
    return value if type(value) is int else int(value)


def _real(value: Any) -> float:
    return value if type(value) is float else float(value)


def _boolean(value: Any) -> bool:
    return value if type(value) is bool else bool(value)


#: The hashed columns, in hashing order, with the normalisation of each. ``at`` comes
#: first and is normalised apart (``utc_text``). Frozen: see the module's docstring.
CONTENT: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("at", utc_text),
    ("request_id", _text),
    ("transport", _text),
    ("client", _text),
    ("tenant_id", _text),
    ("actor_id", _text),
    ("actor_kind", _text),
    ("credential_id", _text),
    ("operation_key", _text),
    ("operation_version", _text),
    ("decision", _text),
    ("outcome", _text),
    ("status", _integer),
    ("latency_ms", _real),
    ("idempotency_key", _text),
    ("replayed", _boolean),
    ("input_digest", _text),
    ("detail", _text),
    ("policy_rule", _text),
    ("trace_id", _text),
    ("input", _text),
)
CONTENT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in CONTENT)
_AFTER_AT = CONTENT[1:]

#: Content is a tuple in ``CONTENT`` order: ``at`` as ``utc_text`` gives it, the rest
#: normalised Python values.
Content = tuple[Any, ...]

_encoder = json.JSONEncoder(
    ensure_ascii=True, check_circular=False, allow_nan=True, separators=(",", ":")
)
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
#: CPython: the C encoder made once, not a new one per call (None elsewhere). One
#: ``_json_of`` tests for it, rather than two conditional definitions: mypyc compiles
#: this module and refuses a function defined twice.
_iterencode: Callable[[Any, int], Iterator[str]] | None = (
    _c_encoder(None, None, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    if _c_encoder is not None
    else None
)


def _json_of(values: list[Any]) -> str:
    if _iterencode is not None:
        return "".join(_iterencode(values, 0))
    return _encoder.encode(values)


_record_values = attrgetter(*(name for name, _ in _AFTER_AT))
#: The text columns of a record (those whose values are str or None as they are).
_TEXT_COLUMNS = tuple(name for name, normalise in _AFTER_AT if normalise is _text)
_text_values = attrgetter(*_TEXT_COLUMNS)


def _stored_text(record: Any, texts: tuple[Any, ...]) -> str | None:
    """The text columns ``texts`` of ``record`` joined (to look for NUL in one pass),
    when every value of the record (an ``AuditRecord``; ``Any``, as compiled code would
    check each field's declared type on reading it) already has the type its column
    stores; None when one needs normalising."""
    if (
        type(record.status) is not int
        or type(record.latency_ms) is not float
        or type(record.replayed) is not bool
    ):
        return None
    present: list[str] = []
    for text in texts:
        if text is not None:
            if type(text) is not str:
                return None
            present.append(text)
    return "".join(present)


def record_content(record: AuditRecord) -> Content:
    """A record's content as it is stored and hashed. Raises (TypeError, ValueError) for
    a record whose values do not fit their columns."""
    values: tuple[Any, ...] = _record_values(record)
    joined = _stored_text(record, _text_values(record))
    if joined is not None:
        has_nul = "\x00" in joined
    else:
        values = tuple(normalise(v) for (_, normalise), v in zip(_AFTER_AT, values, strict=True))
        has_nul = any(type(v) is str and "\x00" in v for v in values)
    if has_nul:
        # No database stores NUL in text (PostgreSQL refuses it): a record must not be
        # lost for a caller's odd byte, so it is kept as U+FFFD.
        values = tuple(v.replace("\x00", "\ufffd") if type(v) is str else v for v in values)
    return (timestamp_text(record.at), *values)


def row_content(row: Mapping[Any, Any]) -> Content:
    """A stored row's (or an exported record's) content, normalised like a record's."""
    return tuple(normalise(row[name]) for name, normalise in CONTENT)


def canonical(seq: int, content: Content) -> bytes:
    """The bytes hashed for the record at ``seq``."""
    return _canonical_of(seq, content[0] + "Z", content)


def _canonical_of(seq: int, at_text: str, content: Content) -> bytes:
    return _json_of([seq, at_text, *content[1:]]).encode("ascii")


def chain_hash(prev_hash: str, seq: int, content: Content) -> str:
    """The hash of the record at ``seq`` that follows the record hashed ``prev_hash``."""
    return sha256(prev_hash.encode("ascii") + canonical(seq, content)).hexdigest()


#: How a driver takes a record's time, from its naive UTC ISO text
#: (``2024-05-01T12:00:00.123456``).
EncodeAt = Callable[[str], Any]


def chained_rows(
    contents: list[Content], head_seq: int, head_hash: str, encode_at: EncodeAt
) -> tuple[list[tuple[Any, ...]], int, str]:
    """The rows that chain ``contents`` after the record at ``head_seq`` hashed
    ``head_hash`` (each content, ``at`` encoded for the driver, then ``seq``,
    ``prev_hash`` and ``hash``), and the seq and hash of the new head."""
    seq, prev_hash = head_seq, head_hash
    rows = []
    for content in contents:
        seq += 1
        at = content[0]
        hashed = prev_hash.encode("ascii") + _canonical_of(seq, at + "Z", content)
        digest = sha256(hashed).hexdigest()
        rows.append((encode_at(at), *content[1:], seq, prev_hash, digest))
        prev_hash = digest
    return rows, seq, prev_hash
