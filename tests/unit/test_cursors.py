"""Page cursors (``storage.cursors``), as keys.listKeys and billing.listInvoices use them:
what they name, and what they refuse."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from registry.errors import OperationError
from storage import cursors

CREATED = datetime(2026, 11, 24, 21, 0, 0, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    created_at: datetime
    id: str


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_a_cursor_names_the_key_it_follows() -> None:
    assert cursors.decode(cursors.encode(CREATED, "abcdefghijkl")) == (CREATED, "abcdefghijkl")
    assert cursors.after(cursors.encode(CREATED, "abcdefghijkl")) == (CREATED, "abcdefghijkl")
    assert cursors.after(None) is None and cursors.after("") is None


def test_a_time_in_another_zone_is_read_as_utc() -> None:
    elsewhere = CREATED.astimezone(timezone(timedelta(hours=2)))
    at, key_id = cursors.decode(cursor_of(f"{elsewhere.isoformat()}|abcdefghijkl")) or (None, "")
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
    assert cursors.decode(cursor) is None  # a naive time never reaches a query
    with pytest.raises(OperationError) as refused:
        cursors.after(cursor)
    assert refused.value.code == "INVALID_INPUT"
    assert [issue.path for issue in refused.value.issues] == ["cursor"]


def test_invoice_cursors_read_as_before() -> None:
    """A cursor issued before storage.cursors existed still reads the same."""
    issued = base64.urlsafe_b64encode(f"{CREATED.isoformat()}|inv_1".encode()).decode()
    assert cursors.decode(issued) == (CREATED, "inv_1")
    assert cursors.encode(CREATED, "inv_1") == issued


def test_a_page_has_a_next_cursor_only_when_more_rows_follow() -> None:
    rows, more = cursors.split([Row(CREATED, "a"), Row(CREATED, "b"), Row(CREATED, "c")], 2)
    assert [r.id for r in rows] == ["a", "b"] and more
    assert cursors.decode(cursors.next_cursor(rows, more) or "") == (CREATED, "b")
    assert cursors.split(rows, 2) == (rows, False)
    assert cursors.next_cursor(rows, False) is None
    assert cursors.next_cursor([], True) is None
