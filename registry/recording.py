"""What ends an invocation: its audit record (assembled, redacted, written), its
idempotency key (settled), and the choice of whether its response waits for the record.

The trail fails closed. A command's attempt is stored before its handler runs
(``record_attempt``); should the process die before the command's own record is stored,
the next process records the attempt as ``INTERRUPTED``. A command that reached its
handler answers only once its record has committed; when the record did not commit, it
answers UPSTREAM_UNAVAILABLE instead of its outcome (``unrecorded``). Queries, refusals
and replays changed nothing: their responses wait for the same group commit while the
store works when ``wait_for_every_record`` is set (``waits_for_every_record``), and go on
when it fails. The record keeps the input with sensitive values redacted
(``registry.redaction``), and a problem's detail is scrubbed of them before it reaches
the caller or the record.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Literal

import structlog

from registry.actor import Actor
from registry.audit_record import AuditRecord
from registry.call import Call
from registry.errors import CATALOGUE, OperationError, Problem
from registry.invocation import Invocation, Outcome, Transport
from registry.ports import (
    AttemptNotStored,
    AuditSink,
    AuditUnavailable,
    IdempotencyStore,
    StoredOutcome,
)
from registry.redaction import RedactedInput
from registry.tracing import new_trace_id

log = structlog.get_logger("specops.pipeline")

MAX_IDEMPOTENCY_KEY = 255

Unrecorded = Literal["pending", "refused"]
"""Why a durable record is missing: queued until the store is back, or refused by it."""


def waits_for_every_record(chosen: bool | None, *, sqlite: bool) -> bool:
    """Whether queries and refusals wait for their record's commit: as ``chosen``, else on
    SQLite only (docs/performance.md, "Pipeline and audit")."""
    return sqlite if chosen is None else chosen


def clip(value: str | None, size: int) -> str | None:
    """A caller-supplied string cut to the size its audit column holds."""
    return value if value is None or len(value) <= size else value[: size - 1] + "…"


class Recorder:
    """Writes each invocation's audit record and settles its idempotency key."""

    def __init__(
        self, audit: AuditSink, idempotency: IdempotencyStore, *, wait_for_every_record: bool
    ) -> None:
        self.audit = audit
        self.idempotency = idempotency
        #: Records that need not be durable are still waited for (``AuditSink.write``).
        self.wait_for_every_record = wait_for_every_record

    async def record_attempt(self, call: Call) -> None:
        """Store the command's attempt before its handler runs, or refuse to run it: the
        record that the trail keeps as ``INTERRUPTED`` if the process dies before the
        command's own record is stored (which then ends the attempt)."""
        call.seen = self.input_seen(call)
        record = self.audit_record(
            call,
            outcome="INTERRUPTED",
            status=CATALOGUE.INTERRUPTED.status,
            detail=None,
            seen=call.seen,
        )
        try:
            call.attempt = await self.audit.record_attempt(record)
        except AttemptNotStored as exc:
            call.attempt = exc.attempt  # still queued: this call's record must end it
            log.warning("audit_attempt_not_stored", request_id=call.invocation.request_id)
        except Exception:
            log.exception("audit_attempt_failed", request_id=call.invocation.request_id)
        else:
            return
        raise CATALOGUE.UPSTREAM_UNAVAILABLE(
            "The audit store did not record the attempt, so the command was not run; retry later",
            headers={"Retry-After": "1"},
        ) from None

    async def finish(self, call: Call) -> Outcome:
        """Settle the idempotency key (so that it holds the real outcome), then write the
        audit record. A command whose record could not be stored answers
        UPSTREAM_UNAVAILABLE rather than its outcome (``unrecorded``)."""
        outcome = call.outcome()
        seen = call.seen if call.seen is not None else self.input_seen(call)
        problem = outcome.problem
        if seen is not None and problem is not None and problem.detail and call.operation:
            # A detail may quote the input (an upstream's "No such PaymentMethod: 'pm_…'"):
            # a sensitive value reaches neither the caller nor the record.
            detail = seen.scrub(problem.detail)
            if detail != problem.detail:
                outcome = replace(outcome, problem=replace(problem, detail=detail))
        await self.settle_idempotency(call, outcome)
        missing = await self.write(call, outcome, seen)
        if missing is None:
            return outcome
        return self.unrecorded(call, outcome, missing)

    async def record_refusal(
        self,
        *,
        transport: Transport,
        endpoint: str,
        error: OperationError,
        request_id: str,
        client: str | None,
        trace_id: str | None,
        actor: Actor | None,
        decision: Literal["allow", "deny", "none"],
        policy_rule: str | None,
    ) -> None:
        """Audit a request refused before it became an invocation of any operation: one
        record against ``endpoint``. Nothing ran, so it joins the next group commit."""
        invocation = Invocation(
            key=endpoint,
            input=None,
            transport=transport,
            request_id=request_id,
            client=client,
            trace_id=trace_id or new_trace_id(),
        )
        call = Call(invocation, time.perf_counter(), decision=decision, policy_rule=policy_rule)
        call.error = error
        call.actor = actor
        await self.write(call, call.outcome())

    async def settle_idempotency(self, call: Call, outcome: Outcome) -> None:
        """Keep deterministic results (success, non-retryable declared errors) for replay;
        free the key when a retry may differ."""
        if call.idempotency is None:
            return
        problem = outcome.problem
        try:
            if problem is None or (
                not problem.retryable
                and call.operation is not None
                and call.operation.contract.declared_error(problem.code) is not None
            ):
                await self.idempotency.complete(
                    call.idempotency, StoredOutcome(outcome.output, problem)
                )
            else:
                await self.idempotency.release(call.idempotency)
        except Exception:
            log.exception("idempotency_settle_failed", request_id=outcome.request_id)

    @staticmethod
    def unrecorded(call: Call, outcome: Outcome, missing: Unrecorded) -> Outcome:
        """The answer for a command that ran but whose audit record did not commit: not
        its outcome (the trail would not show it), but UPSTREAM_UNAVAILABLE. A ``pending``
        record stays queued with the real outcome; a kept idempotency key replays it."""
        why = (
            "its audit record is not stored yet"
            if missing == "pending"
            else "the audit store refused its record"
        )
        if call.idempotency is not None:
            advice = "Retry with the same Idempotency-Key to read the result."
        else:
            advice = "It had no Idempotency-Key: check its effect before retrying."
        detail = f"The command ran, but {why}, so its result is withheld. {advice}"
        error = CATALOGUE.UPSTREAM_UNAVAILABLE(detail, headers={"Retry-After": "1"})
        return Outcome(outcome.request_id, outcome.operation, problem=Problem.of(error))

    @staticmethod
    def input_seen(call: Call) -> RedactedInput | None:
        """The input as sent and as the record keeps it (sensitive values redacted): the
        validated model, or the raw payload read by the contract's plan (keys only without
        a contract); None when there is none (or it could not be decoded)."""
        inv = call.invocation
        try:
            if call.input is not None:
                return RedactedInput.of(type(call.input), call.input)
            if inv.wire_error is not None or inv.input is None:
                return None
            model = call.operation.contract.input if call.operation is not None else None
            return RedactedInput.of(model, inv.input)
        except Exception:
            log.exception("audit_input_redaction_failed", request_id=inv.request_id)
            return RedactedInput(None, {"_error": "redaction failed"})

    async def write(
        self, call: Call, outcome: Outcome, seen: RedactedInput | None = None
    ) -> Unrecorded | None:
        """Write the invocation's record; for a durable record that was not stored, why
        (``pending``: queued until the store is back; ``refused``: the store refused it)."""
        inv = call.invocation
        contract = call.operation.contract if call.operation else None
        problem = outcome.problem
        record = self.audit_record(
            call,
            outcome=outcome.code,
            status=problem.status if problem else 200,
            detail=clip(problem.detail, 2000) if problem and problem.code != "INTERNAL" else None,
            seen=seen,
        )
        # A command that reached its handler may have changed state: its record is
        # durable (the module's docstring). Everything else may be waited for.
        durable = (
            contract is not None
            and contract.kind == "command"
            and call.ran_handler
            and not call.replayed
        )
        try:
            await self.audit.write(
                record, durable=durable, wait=self.wait_for_every_record, closes=call.attempt
            )
        except AuditUnavailable:
            log.warning("audit_record_pending", request_id=inv.request_id, durable=durable)
            return "pending" if durable else None
        except Exception:
            log.exception("audit_write_failed", request_id=inv.request_id)
            return "refused" if durable else None
        return None

    @staticmethod
    def audit_record(
        call: Call,
        *,
        outcome: str,
        status: int,
        detail: str | None,
        seen: RedactedInput | None,
    ) -> AuditRecord:
        """The invocation's record, ending with ``outcome``."""
        inv = call.invocation
        actor = call.actor
        contract = call.operation.contract if call.operation else None
        return AuditRecord(
            at=time.time(),
            request_id=inv.request_id,
            transport=inv.transport,
            client=clip(inv.client, 128),
            tenant_id=actor.tenant_id if actor else None,
            actor_id=actor.id if actor else None,
            actor_kind=actor.kind if actor else None,
            credential_id=actor.credential_id if actor else None,
            operation_key=contract.key if contract else inv.key[:200],
            operation_version=contract.version_text if contract else clip(inv.version, 64),
            decision=call.decision,
            outcome=outcome,
            status=status,
            latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
            idempotency_key=clip(inv.idempotency_key, MAX_IDEMPOTENCY_KEY),
            replayed=call.replayed,
            input_digest=call.input_digest,
            detail=detail,
            policy_rule=clip(call.policy_rule, 255),
            trace_id=inv.trace_id,
            input=seen.text() if seen is not None else None,
        )
