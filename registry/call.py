"""The state of one invocation as it moves through the pipeline's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from registry.actor import Actor
from registry.errors import OperationError, Problem
from registry.invocation import Invocation, Outcome
from registry.model import WireModel
from registry.ports import IdempotencyScope
from registry.redaction import RedactedInput
from registry.registry import Operation, ResourceAttrs


@dataclass(slots=True)
class Call:
    """What the stages have learned about one invocation so far."""

    invocation: Invocation
    started: float
    decision: Literal["allow", "deny", "none"] = "none"
    #: What decided: the policy line, or the auth level or condition that refused.
    policy_rule: str | None = None
    operation: Operation | None = None
    actor: Actor | None = None
    input: WireModel | None = None
    input_digest: str | None = None
    resources: dict[str, ResourceAttrs] = field(default_factory=dict)
    idempotency: IdempotencyScope | None = None
    output: dict[str, Any] | None = None
    error: OperationError | None = None
    replayed: bool = False
    finished: bool = False
    ran_handler: bool = False
    #: The command's stored attempt (``AuditSink.record_attempt``), which its record ends.
    attempt: str | None = None
    #: The input as the record keeps it, once worked out (``registry.recording``).
    seen: RedactedInput | None = None

    def outcome(self) -> Outcome:
        ref = self.operation.ref if self.operation is not None else None
        if self.error is None:
            return Outcome(self.invocation.request_id, ref, self.output, None, self.replayed)
        problem = Problem.of(self.error)
        return Outcome(self.invocation.request_id, ref, None, problem, self.replayed)
