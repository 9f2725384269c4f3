"""Who may call what: a contract's auth level and rules as the caller meets them, and the
policy explain that listings and ``specops policy check`` ask (``actor_for``,
``may_attempt``, ``check``), none of which runs a handler or writes a record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.actor import Actor
from registry.call import Call
from registry.contract import Contract, Rule
from registry.errors import CATALOGUE, OperationError
from registry.invocation import Invocation
from registry.ports import Authorizer, IdentityResolver
from registry.registry import Operation

if TYPE_CHECKING:
    from registry.pipeline import Pipeline


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
    if rules is None:  # made once per key (docs/performance.md, "Pipeline and audit")
        rules = _OP_RULES[contract.key] = (Rule("op", contract.key),)
    return rules


async def actor_for(identity: IdentityResolver, credentials: str | None) -> Actor | None:
    """The actor behind credentials, or None when they are refused. For listings (MCP
    tools/list, GraphQL schema views) and refusals, which are not invocations."""
    try:
        return await identity.resolve(credentials)
    except OperationError:
        return None


async def may_attempt(authorizer: Authorizer, actor: Actor, operation: Operation) -> bool:
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
        if not await authorizer.allowed(actor, rule.resource, rule.action):
            return False
    return True


async def check(
    pipeline: Pipeline, actor: Actor, key: str, input: Any, *, version: str | None = None
) -> Call:
    """What the authorize stage would decide for ``actor`` calling ``key`` with ``input``,
    and why (``call.decision``, ``call.policy_rule``, ``call.error``): the resolve,
    validate-input and authorize stages alone, with resource conditions read from
    storage. No handler runs and nothing is audited (``specops policy check``)."""
    call = Call(Invocation(key=key, input=input, transport="cli", version=version), 0.0)
    call.actor = actor
    try:
        for stage in (pipeline.resolve, pipeline.validate_input, pipeline.authorize):
            await stage(call)
    except OperationError as exc:
        call.error = exc
    return call
