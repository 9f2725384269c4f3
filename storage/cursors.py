"""Opaque page cursors for keyset pagination: the creation time and id of the last row of
a page, base64url-encoded. ``decode`` refuses what ``encode`` did not make, and reads a
time with any offset as the UTC instant it names (SQLite compares UTC digits); ``after``
is what a listing handler calls with its input's cursor, ``next_cursor`` what it answers.

A store pages with ``keyset_page`` (the query continuing after a row, one row over the
page) and ``split`` (the page, and whether more follow)."""

from __future__ import annotations

import base64
import binascii
import operator
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_

from registry.errors import CATALOGUE, Issue

T = TypeVar("T")


class Paged(Protocol):
    """A listed row: what its cursor is made of."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> str: ...


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


def next_cursor(page: Sequence[Paged], more: bool) -> str | None:
    """The cursor of the page after ``page`` when ``more`` rows follow it, else None."""
    return encode(page[-1].created_at, page[-1].id) if more and page else None


def keyset_page(
    query: Select[Any],
    created_at: ColumnElement[datetime],
    row_id: ColumnElement[str],
    after: tuple[datetime, str] | None,
    limit: int,
    *,
    newest_first: bool,
) -> Select[Any]:
    """``query`` ordered by creation time then id (newest or oldest first), from the row
    after the one ``after`` names, and one row over ``limit`` (see ``split``)."""
    if after is not None:
        at, last = after
        beyond = operator.lt if newest_first else operator.gt
        query = query.where(
            or_(beyond(created_at, at), and_(created_at == at, beyond(row_id, last)))
        )
    order = (created_at.desc(), row_id.desc()) if newest_first else (created_at, row_id)
    return query.order_by(*order).limit(limit + 1)


def split(rows: list[T], limit: int) -> tuple[list[T], bool]:
    """The page of a ``keyset_page`` query's rows, and whether more follow it."""
    return rows[:limit], len(rows) > limit
