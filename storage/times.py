"""The time formats of stored rows, in one place.

A record's time is a float (seconds since the epoch) until it is stored; both databases
keep naive UTC (SQLite as text in SQLAlchemy's format, PostgreSQL as ``timestamptz``,
which asyncpg takes as an aware datetime); a hashed content and an export hold ISO text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

#: How a driver takes a time given as naive UTC ISO text (``sqlite_time_of``,
#: ``aware_time_of``).
EncodeTime = Callable[[str], object]

_EPOCH = datetime(1970, 1, 1)


class _SecondText:
    """The ISO text of the last second asked for: records come many a second
    (docs/performance.md, "Pipeline and audit"). One immutable pair, replaced whole, so
    that threads sharing it never see one second's text under another's."""

    def __init__(self) -> None:
        self.entry: tuple[int, str] = (0, _EPOCH.isoformat())

    def of(self, second: int) -> str:
        entry = self.entry
        if entry[0] == second:
            return entry[1]
        text = (_EPOCH + timedelta(seconds=second)).isoformat()
        self.entry = (second, text)
        return text


_second_text = _SecondText()


def timestamp_text(at: float) -> str:
    """A record's time (seconds since the epoch) rounded to the microsecond, as naive
    UTC ISO text (``2024-05-01T12:00:00.123457``): what both databases keep, and the
    form a content holds it in. Raises OverflowError beyond datetime's years."""
    second, micro = divmod(round(at * 1_000_000), 1_000_000)
    return _second_text.of(second) + "." + str(micro).zfill(6)


def naive_utc(value: datetime | str) -> datetime:
    """A stored or exported time as a naive UTC datetime (SQLite keeps naive UTC,
    PostgreSQL answers in the session's zone, an export says ``...Z``)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def time_text(at: datetime) -> str:
    """The canonical text of a naive UTC time: ``2024-05-01T12:00:00.123456Z``."""
    return at.isoformat(timespec="microseconds") + "Z"


def utc_text(value: datetime | str) -> str:
    """A stored or exported time as a content holds it: naive UTC ISO text with
    microseconds (``2024-05-01T12:00:00.123456``)."""
    return naive_utc(value).isoformat(timespec="microseconds")


def sqlite_time(at: datetime) -> str:
    """A naive UTC time in SQLAlchemy's SQLite DATETIME storage format."""
    return at.isoformat(sep=" ", timespec="microseconds")


def sqlite_time_of(iso: str) -> str:
    """``sqlite_time`` of a time given as naive UTC ISO text (``T`` between date and
    time, microseconds)."""
    return f"{iso[:10]} {iso[11:]}"


def aware_time(at: datetime) -> datetime:
    """A naive UTC time as asyncpg takes it for ``timestamptz``."""
    return at.replace(tzinfo=UTC)


def aware_time_of(iso: str) -> datetime:
    """A time given as naive UTC ISO text, as asyncpg takes it for ``timestamptz``."""
    return aware_time(datetime.fromisoformat(iso))


def utc_now() -> datetime:
    """Now, as naive UTC (what both databases keep)."""
    return datetime.now(UTC).replace(tzinfo=None)
