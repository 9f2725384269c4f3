"""The one invocation path: every transport's call runs these stages, in this order.

    resolve -> identify -> validate input -> authorize -> rate limit -> idempotency
            -> audit available? -> (commands) attempt recorded -> handler -> validate output,
    then settle the idempotency key and write the audit record (``registry.recording``).

Each stage is a method that reads and fills the ``Call`` and raises ``OperationError`` to
end the invocation. No stage is skipped for any transport. Who may call what, and the
policy explain, are ``registry.access``; no stage logs or returns an input value.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from registry import access
from registry.actor import Actor
from registry.call import Call
from registry.context import Context
from registry.digest import input_digest
from registry.errors import (
    CATALOGUE,
    PASS_THROUGH_CODES,
    Issue,
    OperationError,
)
from registry.invocation import Invocation, Outcome, Transport
from registry.ports import (
    AuditSink,
    Authorizer,
    IdempotencyScope,
    IdempotencyStore,
    IdentityResolver,
    RateLimiter,
)
from registry.recording import MAX_IDEMPOTENCY_KEY, Recorder
from registry.redaction import plan_for
from registry.registry import Operation, Registry
from registry.tracing import new_trace_id

log = structlog.get_logger("specops.pipeline")

QueriesWhenUnavailable = Literal["refuse", "log-only"]
"""What a query does while the audit store is down: refused like a command, or run with
its record in the structlog line only (and queued for the table)."""


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


def summarize(issues: tuple[Issue, ...]) -> str:
    """A one-line detail naming the first few invalid fields."""
    shown = "; ".join(f"{i.path or 'input'}: {i.message}" for i in issues[:3])
    more = f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""
    return f"{len(issues)} invalid field{'s' if len(issues) != 1 else ''}: {shown}{more}"


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
        self.rate_limiter = rate_limiter
        self.idempotency_wait_seconds = idempotency_wait_seconds
        self.audit_queries_when_unavailable = audit_queries_when_unavailable
        self.recorder = Recorder(
            audit, idempotency, wait_for_every_record=audit_wait_for_every_record
        )

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
            await asyncio.shield(self.recorder.finish(call))
            raise
        except Exception:
            log.exception("pipeline_failure", request_id=invocation.request_id)
            call.error = CATALOGUE.INTERNAL()
        return await self.recorder.finish(call)

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
            await self.recorder.record_attempt(call)
        await self.run_handler(call)

    # -- the explain (``registry.access``) and refusals, for transports -----------------

    async def actor_for(self, credentials: str | None) -> Actor | None:
        """``access.actor_for`` with this pipeline's identity resolver."""
        return await access.actor_for(self.identity, credentials)

    async def may_attempt(self, actor: Actor, operation: Operation) -> bool:
        """``access.may_attempt`` with this pipeline's authorizer."""
        return await access.may_attempt(self.authorizer, actor, operation)

    async def check(
        self, actor: Actor, key: str, input: Any, *, version: str | None = None
    ) -> Call:
        """``access.check``: what the authorize stage would decide, and why."""
        return await access.check(self, actor, key, input, version=version)

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
        method REST does not serve), naming the caller when ``credentials`` identify one."""
        actor = await self.actor_for(credentials) if credentials is not None else None
        await self.recorder.record_refusal(
            transport=transport,
            endpoint=endpoint,
            error=error,
            request_id=request_id,
            client=client,
            trace_id=trace_id,
            actor=actor,
            decision=decision,
            policy_rule=policy_rule,
        )

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
        refusal = access.scope_refusal(actor, contract)
        if refusal is not None:
            call.policy_rule = "key scope"
            raise refusal
        if contract.policy.auth == "anonymous":
            call.decision = "allow"
            call.policy_rule = "auth anonymous"
            return
        refusal = access.level_refusal(actor, contract)
        if refusal is not None:
            call.policy_rule = f"auth {contract.policy.auth}"
            raise refusal
        deciding: str | None = None
        for rule in access.granted_rules(contract):
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
            claim = await self.recorder.idempotency.claim(scope, fingerprint)
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
        if await self.recorder.audit.available():
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
