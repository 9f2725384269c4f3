"""What a contract's documentation says, as one model: OpenAPI, the GraphQL descriptions,
the MCP tools and resources and ``specops ops show`` all render it.

It holds what the contract declares, the errors any call may answer besides the declared
ones, the policy in words, and the notice of a retired version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.contract import Contract, Rule
from registry.errors import CATALOGUE, ErrorSpec

#: Errors any call may answer, whatever the contract declares.
ANY_CALL_ERRORS: tuple[ErrorSpec, ...] = (
    CATALOGUE.MALFORMED_REQUEST,
    CATALOGUE.UNAUTHENTICATED,
    CATALOGUE.FORBIDDEN,
    CATALOGUE.OP_NOT_FOUND,
    CATALOGUE.PAYLOAD_TOO_LARGE,
    CATALOGUE.INVALID_INPUT,
    CATALOGUE.RATE_LIMITED,
    CATALOGUE.INTERNAL,
    CATALOGUE.UPSTREAM_UNAVAILABLE,
    CATALOGUE.TIMEOUT,
)
#: Errors any call of a command may answer besides those (idempotency keys).
COMMAND_ERRORS: tuple[ErrorSpec, ...] = (
    CATALOGUE.IDEMPOTENCY_BUSY,
    CATALOGUE.IDEMPOTENCY_MISMATCH,
)


def sentence(text: str) -> str:
    """``text`` stripped and ending as a sentence ends."""
    text = text.strip()
    return text if not text or text[-1] in ".!?" else f"{text}."


def rule_in_words(rule: Rule) -> str:
    """``read on invoice (only invoices of the caller's tenant)``."""
    scope = {
        None: "",
        "owner": f" (only {rule.resource}s the caller owns)",
        "tenant": f" (only {rule.resource}s of the caller's tenant)",
    }[rule.condition]
    return f"{rule.action} on {rule.resource}{scope}"


def codes(errors: tuple[ErrorSpec, ...]) -> list[str]:
    """The distinct codes of ``errors``, in their order."""
    return list(dict.fromkeys(e.code for e in errors))


@dataclass(frozen=True, slots=True)
class ContractDoc:
    """The documentation of one contract."""

    contract: Contract

    @property
    def summary(self) -> tuple[str, str, str]:
        """What the operation does, why (``Goal: ...``), and who calls it when
        (``Context: ...``): three paragraphs."""
        c = self.contract
        return c.description, f"Goal: {c.goal}", f"Context: {c.context}"

    @property
    def caller(self) -> str:
        """Who may call, in words."""
        policy = self.contract.policy
        if policy.auth == "anonymous":
            return "Caller: anyone, no credentials needed."
        article = "an" if policy.auth == "admin" else "a"
        needs = f"Caller: {article} {policy.auth}-level identity"
        if policy.rules:
            needs += "; needs " + ", ".join(rule_in_words(r) for r in policy.rules)
        return sentence(needs)

    @property
    def rate_limit(self) -> str | None:
        limit = self.contract.policy.rate_limit
        if limit is None:
            return None
        return f"Rate limit: {limit.rpm} calls a minute per {limit.per}."

    @property
    def rules(self) -> str:
        """The policy in words: the caller, and the rate limit if any."""
        return " ".join(t for t in (self.caller, self.rate_limit) if t)

    @property
    def deprecation_notice(self) -> str | None:
        """Why the version is retired, since when, until when, and what replaces it;
        None unless it is retired."""
        c = self.contract
        if not c.deprecated:
            return None
        notice = f"{c.key} v{c.version_text} is deprecated"
        retired = c.deprecation
        if retired is None:
            return f"{notice}."
        if retired.since:
            notice += f" since {retired.since.isoformat()}"
        notice += f": {sentence(retired.reason)}"
        if retired.sunset:
            notice += f" It stops working on {retired.sunset.isoformat()}."
        successor = retired.successor_ref(c.key)
        if successor:
            notice += f" Use {successor} instead."
        return notice

    @property
    def declared_errors(self) -> tuple[ErrorSpec, ...]:
        return self.contract.errors

    @property
    def common_errors(self) -> tuple[ErrorSpec, ...]:
        """The errors any call of this contract may answer besides the declared ones."""
        if self.contract.kind == "command":
            return ANY_CALL_ERRORS + COMMAND_ERRORS
        return ANY_CALL_ERRORS

    @property
    def errors(self) -> tuple[ErrorSpec, ...]:
        """Every error a call may answer: the common ones, then the declared ones, then
        those of commands."""
        command = COMMAND_ERRORS if self.contract.kind == "command" else ()
        return ANY_CALL_ERRORS + self.declared_errors + command

    def input_schema(self) -> dict[str, Any]:
        """The input's JSON Schema (camelCase, ``$defs`` inside)."""
        return self.contract.input.model_json_schema(by_alias=True)

    def output_schema(self) -> dict[str, Any]:
        """The output's JSON Schema, as serialised."""
        return self.contract.output.model_json_schema(by_alias=True, mode="serialization")

    def as_dict(self) -> dict[str, Any]:
        """Everything the contract declares, with the texts above, as JSON data."""
        c = self.contract
        policy = c.policy
        doc: dict[str, Any] = {
            "key": c.key,
            "version": c.version_text,
            "kind": c.kind,
            "title": c.title,
            "description": c.description,
            "goal": c.goal,
            "context": c.context,
            "owners": list(c.owners),
            "tags": list(c.tags),
            "stability": c.stability,
            "domain": c.domain,
            "policy": {
                "auth": policy.auth,
                "rules": [[r.resource, r.action, r.condition] for r in policy.rules],
                "rateLimit": (
                    {"rpm": policy.rate_limit.rpm, "per": policy.rate_limit.per}
                    if policy.rate_limit
                    else None
                ),
            },
            "policyInWords": self.rules,
            "errors": [_error(e) for e in self.declared_errors],
            "commonErrors": [_error(e) for e in self.common_errors],
            "input": self.input_schema(),
            "output": self.output_schema(),
        }
        if c.deprecation:
            doc["deprecation"] = {
                "reason": c.deprecation.reason,
                "since": str(c.deprecation.since) if c.deprecation.since else None,
                "sunset": str(c.deprecation.sunset) if c.deprecation.sunset else None,
                "replacedBy": c.deprecation.successor_ref(c.key),
            }
        if c.deprecated:
            doc["deprecationNotice"] = self.deprecation_notice
        return doc


def _error(spec: ErrorSpec) -> dict[str, Any]:
    return {
        "code": spec.code,
        "status": spec.status,
        "description": spec.title,
        "retryable": spec.retryable,
    }
