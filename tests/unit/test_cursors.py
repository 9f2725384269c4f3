"""Page cursors (``storage.cursors``), as keys.listKeys and billing.listInvoices use them:
what they name, and what they refuse."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from handlers.billing import invoices_store
from handlers.keys.keys import decode_cursor, encode_cursor
from policy.api_keys import ApiKey
from storage import cursors

CREATED = datetime(2026, 11, 24, 21, 0, 0, 123456, tzinfo=UTC)
KEY = ApiKey("abcdefghijkl", "acme", "bot", "service", ("user",), None, CREATED, None)


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_a_cursor_names_the_key_it_follows() -> None:
    assert decode_cursor(encode_cursor(KEY)) == (CREATED, "abcdefghijkl")


def test_a_time_in_another_zone_is_read_as_utc() -> None:
    elsewhere = CREATED.astimezone(timezone(timedelta(hours=2)))
    at, key_id = decode_cursor(cursor_of(f"{elsewhere.isoformat()}|abcdefghijkl")) or (None, "")
    assert at == CREATED and at is not None and at.utcoffset() == timedelta(0)
    assert at.hour == 21 and key_id == "abcdefghijkl"


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "%%%",
        cursor_of("no separator"),
        cursor_of("2026-11-24T21:00:00|abc"),  # no zone
        cursor_of(f"{CREATED.isoformat()}|"),  # no id
        cursor_of("yesterday|abc"),
        base64.urlsafe_b64encode(b"\xff\xfe|abc").decode(),
    ],
)
def test_cursors_this_server_did_not_issue_are_refused(cursor: str) -> None:
    assert cursors.decode(cursor) is None
    assert decode_cursor(cursor) is None
    assert invoices_store.decode_cursor(cursor) is None  # a naive time never reaches a query


def test_invoice_cursors_read_as_before() -> None:
    """A cursor issued before storage.cursors existed still reads the same."""
    issued = base64.urlsafe_b64encode(f"{CREATED.isoformat()}|inv_1".encode()).decode()
    assert invoices_store.decode_cursor(issued) == (CREATED, "inv_1")
    assert cursors.encode(CREATED, "inv_1") == issued
