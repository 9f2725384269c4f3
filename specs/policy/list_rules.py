"""policy.listRules: the policy lines that apply to the caller's tenant."""

from __future__ import annotations

from pydantic import Field

from registry.contract import query
from registry.model import WireModel
from specs.policy.models import PolicyName, PolicyRule


class ListRulesInput(WireModel):
    role: PolicyName | None = Field(None, description="Only the lines about this role")


class RuleList(WireModel):
    items: list[PolicyRule] = Field(description="In the order they were added")
    policy_version: int


ListRules = query(
    key="policy.listRules",
    version="1.0.0",
    title="List policy rules",
    description="The policy lines that apply to the caller's tenant: its own (scope tenant) "
    "and the global ones (scope global)",
    goal="Show tenant admins who may do what in their tenant, and what they can change",
    context="Called by a tenant admin, from an admin console or an automation",
    owners=["team-platform"],
    tags=["policy"],
    stability="beta",
    input=ListRulesInput,
    output=RuleList,
    auth="admin",
    rules=[("policy", "list")],
)
