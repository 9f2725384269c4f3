"""Domain errors the policy contracts declare."""

from registry.errors import ErrorSpec

POLICY_RULE_NOT_FOUND = ErrorSpec(
    "POLICY_RULE_NOT_FOUND", 404, "No such policy line in the caller's tenant"
)
