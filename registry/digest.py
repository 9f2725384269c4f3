"""The input digest: SHA-256 of a validated input in a canonical form.

The same request digests the same whatever its spelling (``12.5``, ``"12.50"``, key
order, aliases), so the digest serves as the idempotency fingerprint and as the audit
record's ``input_digest``. The canonical form is frozen, since stored fingerprints and
records hold digests made with it: it is exactly

    json.dumps(model.model_dump(mode="python", by_alias=True), default=<below>,
               sort_keys=True, separators=(",", ":"))

with decimals in their normalised text and every other non-JSON value as pydantic
renders it. The encoder behind ``json.dumps`` is built once here instead of per call.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterator
from decimal import Decimal

from pydantic import BaseModel
from pydantic_core import to_jsonable_python


def _canonical_json(value: object) -> object:
    """A value JSON cannot hold, as the canonical form writes it."""
    if isinstance(value, Decimal):
        return str(value.normalize())
    return to_jsonable_python(value)


_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encoder = json.JSONEncoder(default=_canonical_json, sort_keys=True, separators=(",", ":"))
#: ``json.dumps``'s encoder for these arguments, made once: CPython's C encoder (its
#: circular-reference check left out, since a model's dump has no cycles), or the
#: pure-Python one elsewhere.
_c_iterencode: Callable[[object, int], Iterator[str]] | None = (
    _c_make_encoder(
        None,
        _canonical_json,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,
        False,
        True,
    )
    if _c_make_encoder is not None
    else None
)


def canonical_text(data: object) -> str:
    """``data`` (a model's dump) in the canonical form."""
    if _c_iterencode is None:
        return _encoder.encode(data)
    return "".join(_c_iterencode(data, 0))


def input_digest(data: BaseModel) -> str:
    """SHA-256 (hex) of ``data`` in the canonical form."""
    canonical = canonical_text(data.model_dump(mode="python", by_alias=True))
    return hashlib.sha256(canonical.encode()).hexdigest()
