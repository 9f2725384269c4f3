"""What a transport hands to the pipeline, and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from registry.errors import OperationError, Problem
from registry.ids import new_request_id, request_id_from

Transport = Literal["rest", "graphql", "mcp", "cli", "webhook", "workflow"]


@dataclass(slots=True)
class Invocation:
    """One call of one operation, independent of the wire it arrived on.

    ``input`` is the decoded, not yet validated payload. ``credentials`` is the bearer
    secret as presented (or None); only the identity stage ever looks at it.
    ``read_only`` marks a channel that serves queries only (HTTP GET, GraphQL Query);
    ``wire_error`` carries a payload the transport could not decode, so the pipeline
    refuses and audits it like any other invalid input. ``request_id``: a new one
    unless given. ``trace_id``: the W3C trace id (32 lowercase hex) taken from
    ``traceparent``; None: the pipeline mints one.
    """

    key: str
    input: Any
    transport: Transport
    version: str | None = None
    credentials: str | None = None
    idempotency_key: str | None = None
    request_id: str = field(default_factory=new_request_id)
    client: str | None = None
    read_only: bool = False
    wire_error: OperationError | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class OperationRef:
    """The operation an outcome belongs to, as shown in problems and audit records; and,
    for a retired version, since when it is retired, its sunset and the key and version
    (None: the key's current one) replacing it (see ``registry.contract.Deprecation``),
    which transports may announce."""

    key: str
    version: str
    kind: str
    deprecated: bool = False
    sunset: date | None = None
    successor: tuple[str, str | None] | None = None
    since: date | None = None

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "version": self.version, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of an invocation: JSON-ready output, or a problem."""

    request_id: str
    operation: OperationRef | None
    output: dict[str, Any] | None = None
    problem: Problem | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def code(self) -> str:
        return "OK" if self.problem is None else self.problem.code

    def problem_body(self) -> dict[str, Any]:
        """The problem document (DESIGN.md section 5) for a failed outcome."""
        assert self.problem is not None
        return self.problem.as_dict(
            operation=self.operation.as_dict() if self.operation else None,
            requestId=self.request_id,
        )


__all__ = [
    "Invocation",
    "OperationRef",
    "Outcome",
    "Transport",
    "new_request_id",
    "request_id_from",
]
