"""policy.grant: a tenant admin adds a policy line to its own tenant."""

from __future__ import annotations

from pydantic import Field

from registry.contract import RateLimit, command
from registry.model import WireModel
from specs.policy.models import PolicyRule, PolicyRuleInput


class GrantOutput(WireModel):
    rule: PolicyRule
    created: bool = Field(description="false: the line was already there")
    policy_version: int = Field(description="The policy version after the change")


Grant = command(
    key="policy.grant",
    version="1.0.0",
    title="Grant",
    description="Add a permission (allow or deny) or a role inheritance to the caller's "
    "tenant's policy. It takes effect at once on this server and within the policy refresh "
    "interval on every other.",
    goal="Let tenant admins give roles permissions, or take them away with a deny, "
    "without an operator or a restart",
    context="Called by a tenant admin, from an admin console or an automation",
    owners=["team-platform"],
    tags=["policy"],
    stability="beta",
    input=PolicyRuleInput,
    output=GrantOutput,
    auth="admin",
    rules=[("policy", "grant")],
    rate_limit=RateLimit(rpm=60),  # per actor; SPECOPS_RATE_LIMITS overrides
)
