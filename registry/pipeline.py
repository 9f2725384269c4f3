"""The one invocation path: every transport's call runs these stages, in this order.

    resolve -> identify -> validate input -> authorize -> rate limit -> idempotency
            -> audit available? -> (commands) attempt recorded -> handler -> validate output,
    then settle the idempotency key and write the audit record.

Each stage is a method that reads and fills the ``Call`` and raises ``OperationError`` to
end the invocation. No stage is skipped for any transport.

The audit trail fails closed: no command runs while its record could not be stored, and a
command whose record did not commit does not answer success (``finish``). Before a
command's handler runs, its attempt is stored (``record_attempt``): should the process die
before the command's record is stored, the next process to start records the attempt as
``INTERRUPTED``, so that no effect is left without a record. The record keeps the input
with sensitive values redacted (``audit.redaction``); no stage logs or returns an input
value.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from audit.errors import AttemptNotStored, AuditUnavailable
from audit.redaction import RedactedInput, plan_for
from policy.actor import Actor
from registry.context import Context
from registry.contract import Contract, Rule
from registry.digest import input_digest
from registry.errors import (
    CATALOGUE,
    PASS_THROUGH_CODES,
    Issue,
    OperationError,
    Problem,
)
from registry.invocation import Invocation, Outcome, Transport
from registry.model import WireModel
from registry.ports import (
    AuditRecord,
    AuditSink,
    Authorizer,
    IdempotencyScope,
    IdempotencyStore,
    IdentityResolver,
    RateLimiter,
    StoredOutcome,
)
from registry.registry import Operation, Registry, ResourceAttrs
from registry.tracing import new_trace_id

log = structlog.get_logger("specops.pipeline")

MAX_IDEMPOTENCY_KEY = 255

Unrecorded = Literal["pending", "refused"]
"""Why a durable record is missing: queued until the store is back, or refused by it."""

QueriesWhenUnavailable = Literal["refuse", "log-only"]
"""What a query does while the audit store is down: refused like a command, or run with
its record in the structlog line only (and queued for the table)."""


@dataclass(slots=True)
class Call:
    """The state of one invocation as it moves through the stages."""

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
    #: The input as the record keeps it, once worked out (``Pipeline.input_seen``).
    seen: RedactedInput | None = None

    def outcome(self) -> Outcome:
        ref = self.operation.ref if self.operation is not None else None
        if self.error is None:
            return Outcome(self.invocation.request_id, ref, self.output, None, self.replayed)
        problem = Problem.of(self.error)
        return Outcome(self.invocation.request_id, ref, None, problem, self.replayed)


def input_issues(error: ValidationError) -> tuple[Issue, ...]:
    """Field issues from a pydantic error, without echoing the submitted values."""
    return tuple(
        Issue(
            path=".".join(str(part) for part in err["loc"]),
            code=err["type"],
            message=err["msg"],
        )
        for err in error.errors(include_url=False, include_input=False)
    )


def clip(value: str | None, size: int) -> str | None:
    """A caller-supplied string cut to the size its audit column holds."""
    return value if value is None or len(value) <= size else value[: size - 1] + "…"


def summarize(issues: tuple[Issue, ...]) -> str:
    """A one-line detail naming the first few invalid fields."""
    shown = "; ".join(f"{i.path or 'input'}: {i.message}" for i in issues[:3])
    more = f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""
    return f"{len(issues)} invalid field{'s' if len(issues) != 1 else ''}: {shown}{more}"


def level_refusal(actor: Actor, contract: Contract) -> OperationError | None:
    """Why ``actor`` falls short of the contract's auth level, or None."""
    auth = contract.policy.auth
    if auth == "anonymous":
        return None
    if not actor.authenticated:
        return CATALOGUE.UNAUTHENTICATED("This operation needs credentials")
    if (auth == "admin" and not actor.is_admin) or (auth == "service" and actor.kind != "service"):
        return CATALOGUE.FORBIDDEN(f"This operation needs a caller of level {auth!r}")
    return None


def scope_refusal(actor: Actor, contract: Contract) -> OperationError | None:
    """FORBIDDEN when the caller's credential is limited to operations other than this
    one (an API key scoped with ``--operation``), else None."""
    if actor.operations is None or contract.key in actor.operations:
        return None
    return CATALOGUE.FORBIDDEN(f"This credential is not allowed to call {contract.key}")


_OP_RULES: dict[str, tuple[Rule, ...]] = {}


def granted_rules(contract: Contract) -> tuple[Rule, ...]:
    """The rules policy must grant; a contract without rules is granted as ``op:<key>``,
    so nothing is allowed that the policy does not name (deny by default)."""
    if contract.policy.rules:
        return contract.policy.rules
    rules = _OP_RULES.get(contract.key)
    if rules is None:  # made once per key: a frozen dataclass costs a microsecond a call
        rules = _OP_RULES[contract.key] = (Rule("op", contract.key),)
    return rules


class Pipeline:
    """Runs invocations against a registry with the given policy, storage and audit."""

    def __init__(
        self,
        registry: Registry,
        *,
        identity: IdentityResolver,
        authorizer: Authorizer,
        idempotency: IdempotencyStore,
        audit: AuditSink,
        rate_limiter: RateLimiter,
        idempotency_wait_seconds: float = 10.0,
        audit_queries_when_unavailable: QueriesWhenUnavailable = "refuse",
        audit_wait_for_every_record: bool = True,
    ) -> None:
        self.registry = registry
        self.identity = identity
        self.authorizer = authorizer
        self.idempotency = idempotency
        self.audit = audit
        self.rate_limiter = rate_limiter
        self.idempotency_wait_seconds = idempotency_wait_seconds
        self.audit_queries_when_unavailable = audit_queries_when_unavailable
        #: Records that need not be durable are still waited for (``AuditSink.write``).
        self.audit_wait_for_every_record = audit_wait_for_every_record

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one invocation through every stage; always returns, always audits."""
        if invocation.trace_id is None:
            invocation.trace_id = new_trace_id()
        call = Call(invocation, time.perf_counter())
        try:
            await self.run_stages(call)
        except OperationError as exc:
            call.error = exc
        except asyncio.CancelledError:
            call.error = CATALOGUE.INTERNAL("The request was cancelled")
            await asyncio.shield(self.finish(call))
            raise
        except Exception:
            log.exception("pipeline_failure", request_id=invocation.request_id)
            call.error = CATALOGUE.INTERNAL()
        return await self.finish(call)

    async def run_stages(self, call: Call) -> None:
        """The stages in order (the module's docstring). Rate limiting and idempotency
        are entered only where the contract or the call asks for them."""
        await self.resolve(call)
        await self.identify(call)
        await self.validate_input(call)
        await self.authorize(call)
        assert call.operation is not None
        contract = call.operation.contract
        if contract.policy.rate_limit is not None:
            await self.limit_rate(call)
        if call.invocation.idempotency_key is not None and contract.kind == "command":
            await self.check_idempotency(call)
            if call.finished:  # a replay: the stored outcome is the answer
                return
        await self.require_audit(call)
        if contract.kind == "command":
            await self.record_attempt(call)
        await self.run_handler(call)

    async def actor_for(self, credentials: str | None) -> Actor | None:
        """The actor behind credentials, or None when they are refused. For listings
        (MCP tools/list, GraphQL schema views), which are not invocations."""
        try:
            return await self.identity.resolve(credentials)
        except OperationError:
            return None

    async def may_attempt(self, actor: Actor, operation: Operation) -> bool:
        """Whether ``actor`` passes the auth level and the role grants of ``operation``
        (resource conditions such as ``owner`` are only known per call)."""
        contract = operation.contract
        if scope_refusal(actor, contract) is not None:
            return False
        if contract.policy.auth == "anonymous":
            return True
        if level_refusal(actor, contract) is not None:
            return False
        for rule in granted_rules(contract):
            if not await self.authorizer.allowed(actor, rule.resource, rule.action):
                return False
        return True

    async def check(
        self, actor: Actor, key: str, input: Any, *, version: str | None = None
    ) -> Call:
        """What the authorize stage would decide for ``actor`` calling ``key`` with
        ``input``, and why (``call.decision``, ``call.policy_rule``, ``call.error``): the
        resolve, validate-input and authorize stages alone, with resource conditions read
        from storage. No handler runs and nothing is audited (``specops policy check``)."""
        call = Call(Invocation(key=key, input=input, transport="cli", version=version), 0.0)
        call.actor = actor
        try:
            for stage in (self.resolve, self.validate_input, self.authorize):
                await stage(call)
        except OperationError as exc:
            call.error = exc
        return call

    async def record_refusal(
        self,
        *,
        transport: Transport,
        endpoint: str,
        error: OperationError,
        request_id: str,
        client: str | None,
        trace_id: str | None,
        credentials: str | None = None,
        decision: Literal["allow", "deny", "none"] = "none",
        policy_rule: str | None = None,
    ) -> None:
        """Audit a request refused before it became an invocation of any operation (bad
        credentials at the MCP endpoint, a GraphQL document that does not validate, a
        method REST does not serve): one record against ``endpoint``, naming the caller
        when ``credentials`` identify one. Nothing ran, so it joins the next group commit."""
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
        if credentials is not None:
            call.actor = await self.actor_for(credentials)
        await self.write_audit(call, call.outcome())

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
        missing = await self.write_audit(call, outcome, seen)
        if missing is None:
            return outcome
        return self.unrecorded(call, outcome, missing)

    # -- stages -------------------------------------------------------------------------

    async def resolve(self, call: Call) -> None:
        inv = call.invocation
        operation = self.registry.resolve(inv.key, inv.version)
        if operation is None:
            await self.attribute(call)
            what = f"{inv.key} version {inv.version}" if inv.version else inv.key
            raise CATALOGUE.OP_NOT_FOUND(f"No operation {what}")
        call.operation = operation
        if inv.read_only and operation.contract.kind != "query":
            raise CATALOGUE.METHOD_NOT_ALLOWED(
                f"{inv.key} is a command; send it with POST", headers={"Allow": "POST"}
            )

    async def attribute(self, call: Call) -> None:
        """Name the caller of an unknown operation in its record (probing for operations
        is worth knowing about); credentials that do not identify anyone are left at
        that, since the answer is OP_NOT_FOUND either way."""
        if call.actor is None and call.invocation.credentials is not None:
            call.actor = await self.actor_for(call.invocation.credentials)

    async def identify(self, call: Call) -> None:
        assert call.operation is not None
        try:
            call.actor = await self.identity.resolve(call.invocation.credentials)
        except OperationError:
            call.decision = "deny"
            raise
        if call.operation.contract.policy.auth != "anonymous" and not call.actor.authenticated:
            call.decision = "deny"
            raise CATALOGUE.UNAUTHENTICATED("This operation needs credentials")

    async def validate_input(self, call: Call) -> None:
        assert call.operation is not None
        contract = call.operation.contract
        if call.invocation.wire_error is not None:
            raise call.invocation.wire_error
        raw = call.invocation.input
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise CATALOGUE.INVALID_INPUT(
                "Input must be a JSON object",
                issues=(Issue("", "object_type", "Input should be an object"),),
            )
        try:
            call.input = contract.input.model_validate(raw)
        except ValidationError as exc:
            issues = input_issues(exc)
            raise CATALOGUE.INVALID_INPUT(summarize(issues), issues=issues) from None
        call.input_digest = input_digest(call.input)

    async def authorize(self, call: Call) -> None:
        assert call.operation is not None and call.actor is not None and call.input is not None
        contract = call.operation.contract
        actor = call.actor
        call.decision = "deny"
        refusal = scope_refusal(actor, contract)
        if refusal is not None:
            call.policy_rule = "key scope"
            raise refusal
        if contract.policy.auth == "anonymous":
            call.decision = "allow"
            call.policy_rule = "auth anonymous"
            return
        refusal = level_refusal(actor, contract)
        if refusal is not None:
            call.policy_rule = f"auth {contract.policy.auth}"
            raise refusal
        deciding: str | None = None
        for rule in granted_rules(contract):
            verdict = await self.authorizer.decide(actor, rule.resource, rule.action)
            if not verdict.allowed:
                call.policy_rule = verdict.reason(rule.resource, rule.action)
                verb = "denies" if verdict.rule else "does not grant"
                raise CATALOGUE.FORBIDDEN(f"Policy {verb} {rule.action} on {rule.resource}")
            deciding = verdict.rule if deciding is None else f"{deciding}; {verdict.rule}"
            if rule.condition is None:
                continue
            resource = self.registry.resource(rule.resource)
            resource_id = str(getattr(call.input, rule.resource_id_field))
            attrs = await resource.loader(resource_id, actor)
            if attrs is None or attrs.tenant_id != actor.tenant_id:
                call.policy_rule = f"condition {rule.condition} on {rule.resource}: not found"
                if rule.resource_id_field in plan_for(contract.input).sensitive:
                    raise resource.not_found(f"No such {rule.resource}")
                raise resource.not_found(f"No {rule.resource} {resource_id}")
            if rule.condition == "owner" and attrs.owner_id != actor.id:
                call.policy_rule = f"condition owner on {rule.resource}: not the owner"
                raise CATALOGUE.FORBIDDEN(f"Only the {rule.resource}'s owner may {rule.action} it")
            call.resources[rule.resource] = attrs
        call.policy_rule = deciding
        call.decision = "allow"

    async def limit_rate(self, call: Call) -> None:
        assert call.operation is not None and call.actor is not None
        contract = call.operation.contract
        limit = contract.policy.rate_limit
        if limit is None:
            return
        actor = call.actor
        if limit.per == "global":
            subject = "*"
        elif limit.per == "tenant":
            subject = actor.tenant_id or "anonymous"
        elif actor.authenticated:
            subject = f"{actor.tenant_id}/{actor.id}"
        else:
            subject = f"anonymous/{call.invocation.client}"
        wait = await self.rate_limiter.hit(f"{contract.key}|{limit.per}|{subject}", limit)
        if wait is not None:
            raise CATALOGUE.RATE_LIMITED(
                f"{contract.key} allows {limit.rpm} calls a minute per {limit.per}",
                headers={"Retry-After": str(int(wait))},
            )

    async def check_idempotency(self, call: Call) -> None:
        assert call.operation is not None and call.actor is not None
        key = call.invocation.idempotency_key
        if key is None or call.operation.contract.kind != "command":
            return
        if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
            raise CATALOGUE.MALFORMED_REQUEST(
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
            )
        scope = IdempotencyScope(call.actor.tenant_id or "", call.actor.id, key)
        fingerprint = f"{call.operation.contract.ref}:{call.input_digest}"
        deadline = time.monotonic() + self.idempotency_wait_seconds
        delay = 0.01
        while True:
            claim = await self.idempotency.claim(scope, fingerprint)
            if claim.state == "claimed":
                call.idempotency = scope
                return
            if claim.state == "mismatch":
                raise CATALOGUE.IDEMPOTENCY_MISMATCH(
                    "This Idempotency-Key was used for a different request"
                )
            if claim.state == "replay":
                assert claim.stored is not None
                call.replayed = True
                call.finished = True
                call.output = claim.stored.output
                if claim.stored.problem is not None:
                    call.error = claim.stored.problem.to_error()
                return
            if time.monotonic() >= deadline:
                raise CATALOGUE.IDEMPOTENCY_BUSY(headers={"Retry-After": "1"})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def require_audit(self, call: Call) -> None:
        """Fail closed: while the audit store cannot take records, no command runs (its
        record could not be kept), and no query either unless queries are configured
        ``log-only``. The refusal's own record waits in the audit log's queue. While the
        store is healthy this is a flag check."""
        if await self.audit.available():
            return
        assert call.operation is not None
        kind = call.operation.contract.kind
        mode = self.audit_queries_when_unavailable if kind == "query" else "refuse"
        log.warning(
            "invocation_while_audit_unavailable",
            mode=mode,
            kind=kind,
            operation=call.operation.contract.ref,
            request_id=call.invocation.request_id,
        )
        if mode == "log-only":
            return
        raise CATALOGUE.UPSTREAM_UNAVAILABLE(
            f"The audit store is unavailable, so the {kind} was not run; retry later",
            headers={"Retry-After": "1"},
        )

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
        assert call.operation is not None
        raise CATALOGUE.UPSTREAM_UNAVAILABLE(
            "The audit store did not record the attempt, so the command was not run; retry later",
            headers={"Retry-After": "1"},
        ) from None

    async def run_handler(self, call: Call) -> None:
        assert call.operation is not None and call.actor is not None
        contract = call.operation.contract
        actor = call.actor

        refused: list[str] = []

        async def allowed(resource: str, action: str) -> bool:
            verdict = await self.authorizer.decide(actor, resource, action)
            if not verdict.allowed:
                refused.append(verdict.reason(resource, action))
            return verdict.allowed

        ctx = Context(
            actor=actor,
            request_id=call.invocation.request_id,
            transport=call.invocation.transport,
            operation_key=contract.key,
            idempotency_key=call.invocation.idempotency_key,
            allowed=allowed,
            resources=call.resources,
        )
        try:
            call.ran_handler = True
            async with asyncio.timeout(contract.timeout_seconds):
                result = await call.operation.handler(call.input, ctx)
        except OperationError as exc:
            if exc.code == "FORBIDDEN":
                call.decision = "deny"  # the handler asked policy a further question
                if refused:
                    call.policy_rule = refused[-1]
            if contract.declared_error(exc.code) or exc.code in PASS_THROUGH_CODES:
                raise
            log.error("undeclared_error", operation=contract.ref, code=exc.code)
            raise CATALOGUE.INTERNAL() from None
        except TimeoutError:
            raise CATALOGUE.TIMEOUT(
                f"{contract.key} did not finish within {contract.timeout_seconds:g}s"
            ) from None
        call.output = self.validate_output(call.operation, result)

    @staticmethod
    def validate_output(operation: Operation, result: object) -> dict[str, Any]:
        """The handler's result as JSON, or INTERNAL if it breaks the contract."""
        output = operation.contract.output
        if type(result) is output and output.model_config.get("revalidate_instances") in (
            None,
            "never",
        ):  # validated when it was made: model_validate would hand it back as it is
            return result.model_dump(mode="json")
        try:
            model = output.model_validate(result)
        except ValidationError as exc:
            log.error(
                "output_contract_violation",
                operation=operation.contract.ref,
                issues=[i.as_dict() for i in input_issues(exc)],
            )
            raise CATALOGUE.INTERNAL() from None
        return model.model_dump(mode="json")

    # -- after the stages ---------------------------------------------------------------

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

    async def write_audit(
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
        # committed before the response, or the response says it was not. Queries,
        # refusals and replays changed nothing: with ``audit_wait_for_every_record`` their
        # responses wait for the same group commit while the store works, but are sent
        # when it fails (``wait``); without, at once.
        durable = (
            contract is not None
            and contract.kind == "command"
            and call.ran_handler
            and not call.replayed
        )
        try:
            await self.audit.write(
                record,
                durable=durable,
                wait=self.audit_wait_for_every_record,
                closes=call.attempt,
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
