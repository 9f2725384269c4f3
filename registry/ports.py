"""The small interfaces the pipeline needs from policy, idempotency storage and audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from registry.actor import Actor
from registry.audit_record import AuditRecord
from registry.contract import RateLimit
from registry.errors import Problem


@dataclass(frozen=True, slots=True)
class Decision:
    """An authorization answer and the reason for it: the policy line that decided (an
    allow that granted, or a deny that refused), or None when no line grants (deny by
    default). ``role`` is the caller's role the deciding line applied to."""

    allowed: bool
    rule: str | None = None
    role: str | None = None

    def reason(self, resource: str, action: str) -> str:
        """The deciding line, or why there is none."""
        return self.rule or f"no rule grants {resource}:{action}"


class AuditUnavailable(ConnectionError):
    """The audit store could not take a record (in time)."""


class AttemptNotStored(AuditUnavailable):
    """A command's attempt was not stored (in time): its handler must not run. ``attempt``
    is its id when it stays queued (the command's record must end it), else None."""

    def __init__(self, message: str, attempt: str | None) -> None:
        super().__init__(message)
        self.attempt = attempt


class IdentityResolver(Protocol):
    """Turns presented credentials into an actor; raises UNAUTHENTICATED when they are bad."""

    async def resolve(self, credentials: str | None) -> Actor: ...


class Authorizer(Protocol):
    """Answers whether an actor's roles grant ``action`` on ``resource`` in its tenant;
    ``decide`` also names the policy line that decided (for audit records and explain)."""

    async def allowed(self, actor: Actor, resource: str, action: str) -> bool: ...

    async def decide(self, actor: Actor, resource: str, action: str) -> Decision: ...


class RateLimiter(Protocol):
    """Counts a call against ``limit`` in ``bucket``; returns seconds to wait when over it."""

    async def hit(self, bucket: str, limit: RateLimit) -> float | None: ...


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """A finished command, kept so that a retry with the same key replays it."""

    output: dict[str, Any] | None
    problem: Problem | None


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to claiming an idempotency key."""

    state: Literal["claimed", "replay", "mismatch", "busy"]
    stored: StoredOutcome | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyScope:
    """Keys are unique per tenant and actor: one caller cannot replay another's result."""

    tenant_id: str
    actor_id: str
    key: str


class IdempotencyStore(Protocol):
    """Claims keys, stores finished outcomes and releases keys of failed attempts."""

    async def claim(self, scope: IdempotencyScope, fingerprint: str) -> Claim: ...

    async def complete(self, scope: IdempotencyScope, stored: StoredOutcome) -> None: ...

    async def release(self, scope: IdempotencyScope) -> None: ...


class AuditSink(Protocol):
    """Writes audit records. ``durable=True`` returns only once the record is stored and
    raises ``AuditUnavailable`` when it could not be stored in time (the record stays
    queued and is written once the store is back). ``wait=True`` (a record that is not
    durable) returns once it is stored too, while the store takes records, and never
    raises: when the store fails, the caller goes on and the record stays queued."""

    async def write(
        self,
        record: AuditRecord,
        *,
        durable: bool,
        wait: bool = False,
        closes: str | None = None,
    ) -> None:
        """``closes``: the id of the command's attempt (``record_attempt``) the record
        ends, in the same transaction."""
        ...

    async def record_attempt(self, record: AuditRecord) -> str:
        """Store a command's attempt before its handler runs (``record`` is what the
        trail keeps if the process dies before the command's own record); return its id
        once stored. Raises ``AttemptNotStored`` when it was not (then the handler must
        not run)."""
        ...

    async def available(self) -> bool:
        """Whether records can be stored now: True while writes succeed; after a failure,
        probes the store (at most once a second) and answers False while it is down."""
        ...


__all__ = [
    "AttemptNotStored",
    "AuditRecord",
    "AuditSink",
    "AuditUnavailable",
    "Authorizer",
    "Claim",
    "Decision",
    "IdempotencyScope",
    "IdempotencyStore",
    "IdentityResolver",
    "RateLimiter",
    "StoredOutcome",
]
