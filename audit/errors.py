"""The audit trail's own failure."""

from __future__ import annotations


class AuditUnavailable(ConnectionError):
    """The audit store could not take a record (in time)."""


class AttemptNotStored(AuditUnavailable):
    """A command's attempt was not stored (in time): its handler must not run. ``attempt``
    is its id when it stays queued (the command's record must end it), else None."""

    def __init__(self, message: str, attempt: str | None) -> None:
        super().__init__(message)
        self.attempt = attempt
