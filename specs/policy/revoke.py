"""policy.revoke: a tenant admin removes a policy line of its own tenant."""

from __future__ import annotations

from pydantic import Field

from registry.contract import RateLimit, command
from registry.model import WireModel
from specs.policy.errors import POLICY_RULE_NOT_FOUND
from specs.policy.models import PolicyRule, PolicyRuleInput


class RevokeOutput(WireModel):
    rule: PolicyRule = Field(description="The line removed")
    policy_version: int = Field(description="The policy version after the change")


Revoke = command(
    key="policy.revoke",
    version="1.0.0",
    title="Revoke",
    description="Remove a line of the caller's tenant's policy (global lines are the "
    "operators', changed with `specops policy revoke`).",
    goal="Let tenant admins take back what they granted",
    context="Called by a tenant admin, from an admin console or an automation",
    owners=["team-platform"],
    tags=["policy"],
    stability="beta",
    input=PolicyRuleInput,
    output=RevokeOutput,
    errors=[POLICY_RULE_NOT_FOUND],
    auth="admin",
    rules=[("policy", "revoke")],
    rate_limit=RateLimit(rpm=60),  # per actor; SPECOPS_RATE_LIMITS overrides
)
