"""Policy lines as the policy contracts take and show them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from registry.fields import Timestamp
from registry.model import WireModel

#: A role, resource or action name; ``*`` matches any rest (``invoice*``, ``*``).
PolicyName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:*-]+$"),
]


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class RuleKind(StrEnum):
    PERMISSION = "permission"  # a p line
    INHERITANCE = "inheritance"  # a g line


class RuleScope(StrEnum):
    TENANT = "tenant"  # a line of the caller's tenant: tenant admins change these
    GLOBAL = "global"  # a line for every tenant (or a pattern of them): operators only


class PolicyRuleInput(WireModel):
    """A line of the caller's tenant: a permission (role may, or may not, do action on
    resource) or an inheritance (role gets every line of the role it inherits). The tenant
    is always the caller's own."""

    # The two forms, for the JSON Schema (and so OpenAPI) too: the validator below says
    # the same in Python.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "title": "permission",
                    "required": ["resource", "action"],
                    "properties": {
                        "resource": {"type": "string"},
                        "action": {"type": "string"},
                        "inherits": {"type": "null"},
                    },
                },
                {
                    "title": "inheritance",
                    "required": ["inherits"],
                    "properties": {
                        "inherits": {"type": "string"},
                        "resource": {"type": "null"},
                        "action": {"type": "null"},
                    },
                },
            ]
        }
    )

    role: PolicyName = Field(description="The role the line is about, e.g. auditor")
    resource: PolicyName | None = Field(
        None, description="Permission: the resource, e.g. invoice (op for operations)"
    )
    action: PolicyName | None = Field(None, description="Permission: the action, e.g. read")
    effect: Effect = Field(Effect.ALLOW, description="Permission: allow, or deny (beats allows)")
    inherits: PolicyName | None = Field(
        None, description="Inheritance: the role whose lines role gets, e.g. user"
    )

    @model_validator(mode="after")
    def one_kind_of_line(self) -> Self:
        permission = self.resource is not None or self.action is not None
        if self.inherits is not None and permission:
            raise PydanticCustomError(
                "policy_line", "give resource and action, or inherits, not both"
            )
        if self.inherits is None and (self.resource is None or self.action is None):
            raise PydanticCustomError(
                "policy_line", "a permission needs resource and action; an inheritance, inherits"
            )
        return self


class PolicyRule(WireModel):
    """A stored policy line."""

    line: str = Field(description="The line in policy-file form, e.g. p, auditor, acme, ...")
    kind: RuleKind
    scope: RuleScope
    role: str
    tenant: str = Field(description="The caller's tenant, or * (or a pattern) for global lines")
    resource: str | None = None
    action: str | None = None
    effect: Effect | None = None
    inherits: str | None = None
    created_at: Timestamp | None = None
    created_by: str | None = None
