"""Test doubles shared by test modules: in-memory stand-ins for the pipeline's ports, a
pipeline built on them, a stub pipeline for the GraphQL transport, and a patched one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from registry.actor import Actor
from registry.audit_record import AuditRecord
from registry.contract import Contract, RateLimit, command, query
from registry.errors import Problem
from registry.invocation import Invocation, OperationRef, Outcome
from registry.model import WireModel
from registry.pipeline import Pipeline
from registry.ports import AuditUnavailable, Claim, Decision, IdempotencyScope, StoredOutcome
from registry.registry import Operation, Registry, install_op
from transports.graphql.view import GraphQLView

# -- a pipeline over in-memory ports, no database -----------------------------------------


class EchoInput(WireModel):
    text: str = "hi"


class EchoOutput(WireModel):
    text: str


RUNS: list[str] = []


async def echo(data: EchoInput, ctx: Any) -> EchoOutput:
    RUNS.append(data.text)
    return EchoOutput(text=data.text)


ACTOR = Actor(id="u1", tenant_id="t1", roles=frozenset({"user"}), kind="user")


class Identity:
    async def resolve(self, credentials: str | None) -> Actor:
        return ACTOR


class AllowAll:
    async def allowed(self, actor: Actor, resource: str, action: str) -> bool:
        return True

    async def decide(self, actor: Actor, resource: str, action: str) -> Decision:
        return Decision(True, "p, user, *, *, *, allow")


class MemoryIdempotency:
    """Keeps completed outcomes for replay; ``events`` records the calls in order."""

    def __init__(self, events: list[str] | None = None) -> None:
        self.stored: dict[IdempotencyScope, StoredOutcome] = {}
        self.events = events if events is not None else []

    async def claim(self, scope: IdempotencyScope, fingerprint: str) -> Claim:
        if scope in self.stored:
            return Claim("replay", self.stored[scope])
        return Claim("claimed")

    async def complete(self, scope: IdempotencyScope, stored: StoredOutcome) -> None:
        self.events.append("complete")
        self.stored[scope] = stored

    async def release(self, scope: IdempotencyScope) -> None:
        self.events.append("release")


class NoLimit:
    async def hit(self, bucket: str, limit: RateLimit) -> float | None:
        return None


class Sink:
    """An audit sink: ``up`` answers available(); ``fail_durable`` makes durable writes
    raise AuditUnavailable (after keeping the record, as the real log queues it)."""

    def __init__(self, *, up: bool = True, fail_durable: bool = False) -> None:
        self.up = up
        self.fail_durable = fail_durable
        self.records: list[AuditRecord] = []
        self.durable: list[bool] = []
        self.waits: list[bool] = []
        self.events: list[str] = []
        self.attempts: list[AuditRecord] = []

    async def write(
        self,
        record: AuditRecord,
        *,
        durable: bool,
        wait: bool = False,
        closes: str | None = None,
    ) -> None:
        self.events.append("audit")
        self.records.append(record)
        self.durable.append(durable)
        self.waits.append(wait)
        if durable and self.fail_durable:
            raise AuditUnavailable("the audit store did not commit in time")

    async def record_attempt(self, record: AuditRecord) -> str:
        self.attempts.append(record)
        return f"attempt-{len(self.attempts)}"

    async def available(self) -> bool:
        return self.up


def contract_base(**overrides: Any) -> dict[str, Any]:
    return {
        "version": "1.0.0",
        "title": "Echo",
        "description": "Echo",
        "goal": "Test",
        "context": "Tests",
        "owners": ["team-tests"],
        "input": EchoInput,
        "output": EchoOutput,
        **overrides,
    }


def make_pipeline(
    sink: Sink,
    *ops: tuple[Contract, Any],
    idempotency: MemoryIdempotency | None = None,
    queries_when_unavailable: Literal["refuse", "log-only"] = "refuse",
    wait_for_every_record: bool = True,
) -> Pipeline:
    """A pipeline offering ``test.echo`` (query), ``test.shout`` (command) and ``ops``."""
    registry = Registry()
    install_op(registry, query(key="test.echo", **contract_base()), echo)
    install_op(registry, command(key="test.shout", **contract_base()), echo)
    for contract, handler in ops:
        install_op(registry, contract, handler)
    return Pipeline(
        registry,
        identity=Identity(),
        authorizer=AllowAll(),
        idempotency=idempotency or MemoryIdempotency(sink.events),
        audit=sink,
        rate_limiter=NoLimit(),
        audit_queries_when_unavailable=queries_when_unavailable,
        audit_wait_for_every_record=wait_for_every_record,
    )


# -- stand-ins for a whole pipeline --------------------------------------------------------


@dataclass
class StubPipeline:
    """Stands in for ``Pipeline``: records invocations, answers from ``answer``."""

    registry: Registry
    invocations: list[Invocation] = field(default_factory=list)
    problems: dict[str, Problem] = field(default_factory=dict)
    replay: bool = False
    refusals: list[dict[str, Any]] = field(default_factory=list)

    async def invoke(self, invocation: Invocation) -> Outcome:
        self.invocations.append(invocation)
        op = self.registry.resolve(invocation.key, invocation.version)
        assert op is not None
        ref = OperationRef(op.contract.key, str(op.contract.version), op.contract.kind)
        problem = self.problems.get(invocation.key)
        if problem is not None:
            return Outcome(invocation.request_id, ref, None, problem)
        outputs: dict[str, dict[str, Any]] = {
            "system.ping": {"message": "pong", "actorId": "alice", "tenantId": "acme"},
            "billing.listInvoices": {"items": [INVOICE], "nextCursor": None},
            "billing.createInvoice": INVOICE,
        }
        return Outcome(invocation.request_id, ref, outputs[invocation.key], None, self.replay)

    async def actor_for(self, credentials: str | None) -> Actor | None:
        return Actor("alice", "acme", frozenset({"user"}), "user")

    async def record_refusal(self, **refusal: Any) -> None:
        self.refusals.append(refusal)

    async def may_attempt(self, actor: Actor, operation: Operation) -> bool:
        return True


INVOICE = {
    "id": "inv_1",
    "ownerId": "alice",
    "amount": "999999999999.00",
    "amountMinor": 99999999999900,
    "currency": "usd",
    "status": "open",
    "description": None,
    "transactionId": None,
    "paidAt": None,
    "createdAt": "2024-05-01T12:00:00Z",
}


class Patched:
    """``pipeline`` with some methods replaced."""

    def __init__(self, pipeline: Any, **methods: Any) -> None:
        self.pipeline = pipeline
        vars(self).update(methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)


class ViewCalls:
    """Counts the requests the GraphQL endpoint hands to strawberry's view."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = GraphQLView.__call__

        async def counted(view: GraphQLView, scope: Any, receive: Any, send: Any) -> None:
            self.count += 1
            await original(view, scope, receive, send)

        monkeypatch.setattr(GraphQLView, "__call__", counted)
