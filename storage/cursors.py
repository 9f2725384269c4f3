"""Opaque page cursors for keyset pagination: the creation time and id of the last row of
a page, base64url-encoded. ``decode`` refuses what ``encode`` did not make, and reads a
time with any offset as the UTC instant it names (SQLite compares UTC digits); ``after``
is what a listing handler calls with its input's cursor."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from registry.errors import CATALOGUE, Issue


def encode(created_at: datetime, row_id: str) -> str:
    """The cursor of the page after the row created at ``created_at`` with ``row_id``."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode(cursor: str) -> tuple[datetime, str] | None:
    """The aware UTC creation time and id a cursor names; None for one not made here."""
    try:
        created, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        at = datetime.fromisoformat(created)
    except (ValueError, binascii.Error):
        return None
    if at.tzinfo is None or not row_id:
        return None
    return at.astimezone(UTC), row_id


def after(cursor: str | None) -> tuple[datetime, str] | None:
    """The creation time and id of the row a listing continues after (None without a
    cursor); INVALID_INPUT for a cursor not made here."""
    if not cursor:
        return None
    found = decode(cursor)
    if found is None:
        raise CATALOGUE.INVALID_INPUT(
            "cursor is not one this server issued",
            issues=(Issue("cursor", "invalid_cursor", "Not a cursor this server issued"),),
        )
    return found
