"""Handlers for policy.grant, policy.revoke and policy.listRules.

Lines always land in the caller's tenant: the input names no tenant, and the one used is
the caller's. Global lines (tenant ``*``) come from the seed file or the operators' CLI.
"""

from __future__ import annotations

import structlog

from policy.enforcer import CasbinAuthorizer
from policy.rules import PolicyLine, PolicyLineError, applies_to
from policy.store import PolicyStore, StoredLine
from registry.context import Context
from registry.errors import CATALOGUE
from specs.policy.errors import POLICY_RULE_NOT_FOUND
from specs.policy.grant import GrantOutput
from specs.policy.list_rules import ListRulesInput, RuleList
from specs.policy.models import Effect, PolicyRule, PolicyRuleInput, RuleKind, RuleScope
from specs.policy.revoke import RevokeOutput

log = structlog.get_logger("specops.policy")


class PolicyHandlers:
    """Policy changes through the store, applied at once to this process' authorizer."""

    def __init__(self, store: PolicyStore, authorizer: CasbinAuthorizer) -> None:
        self.store = store
        self.authorizer = authorizer

    async def grant(self, data: PolicyRuleInput, ctx: Context) -> GrantOutput:
        line = tenant_line(data, ctx)
        stored, created, version = await self.store.add(line, by=ctx.actor.id)
        if created:
            await self.changed()
        return GrantOutput(
            rule=rule_view(stored, ctx.tenant_id), created=created, policy_version=version
        )

    async def revoke(self, data: PolicyRuleInput, ctx: Context) -> RevokeOutput:
        line = tenant_line(data, ctx)
        stored = await self.store.find(line)
        removed, version = await self.store.remove(line)
        if not removed:
            raise POLICY_RULE_NOT_FOUND(
                f"No line '{line}' in tenant {ctx.tenant_id}; global lines are changed by "
                "operators (specops policy revoke)"
            )
        await self.changed()
        return RevokeOutput(
            rule=rule_view(stored or StoredLine(line, None, None), ctx.tenant_id),
            policy_version=version,
        )

    async def list_rules(self, data: ListRulesInput, ctx: Context) -> RuleList:
        snapshot = await self.store.snapshot()
        tenant = ctx.tenant_id
        items = [
            rule_view(stored, tenant)
            for stored in snapshot.lines
            if applies_to(stored.line, tenant) and data.role in (None, stored.line.role)
        ]
        return RuleList(items=items, policy_version=snapshot.version)

    async def changed(self) -> None:
        """Apply a committed change here at once; should that fail, the periodic refresh
        applies it a little later."""
        try:
            await self.authorizer.reload()
        except Exception:
            log.warning("policy_reload_failed", exc_info=True)


def tenant_line(data: PolicyRuleInput, ctx: Context) -> PolicyLine:
    """The line ``data`` describes, in the caller's tenant."""
    tenant = ctx.tenant_id
    if "*" in tenant:
        raise CATALOGUE.FORBIDDEN(f"Tenant {tenant!r} is a pattern and cannot hold policy lines")
    try:
        if data.inherits is not None:
            return PolicyLine.inheritance(data.role, data.inherits, tenant)
        assert data.resource is not None and data.action is not None
        deny = data.effect is Effect.DENY
        return PolicyLine.permission(
            data.role, tenant, data.resource, data.action, "deny" if deny else "allow"
        )
    except PolicyLineError as exc:
        raise CATALOGUE.INVALID_INPUT(str(exc)) from None


def rule_view(stored: StoredLine, tenant: str) -> PolicyRule:
    line = stored.line
    return PolicyRule(
        line=str(line),
        kind=RuleKind.PERMISSION if line.ptype == "p" else RuleKind.INHERITANCE,
        scope=RuleScope.TENANT if line.tenant == tenant else RuleScope.GLOBAL,
        role=line.role,
        tenant=line.tenant,
        resource=line.resource,
        action=line.action,
        effect=Effect(line.effect) if line.effect else None,
        inherits=line.inherits,
        created_at=stored.created_at,
        created_by=stored.created_by,
    )
