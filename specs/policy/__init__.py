"""Policy contracts: tenant admins grant, revoke and list their tenant's policy lines."""

from specs.policy.grant import Grant
from specs.policy.list_rules import ListRules
from specs.policy.revoke import Revoke

__all__ = ["Grant", "ListRules", "Revoke"]
