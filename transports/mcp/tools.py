"""The MCP tool list, generated from the registry: one tool per contract, no per-operation code.

Every installed version gets a pinned tool (``billing_capturePayment_v1_0_0``); the version
an unversioned call resolves to also gets the unpinned name (``billing_capturePayment``).
Schemas come from the contract's models (camelCase, ``$defs`` kept inside each schema so it
is self-contained); the description tells an agent what the contract declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from registry.contract import Contract, ContractError
from registry.docs import ContractDoc, codes, sentence
from registry.registry import Operation, Registry
from transports.mcp.names import doc_uri, tool_name


@dataclass(frozen=True, slots=True)
class ToolEntry:
    """One tool: its name, the operation it invokes, and whether the version is pinned."""

    name: str
    operation: Operation
    pinned: bool
    tool: types.Tool

    @property
    def key(self) -> str:
        return self.operation.contract.key

    @property
    def version(self) -> str | None:
        """The version an invocation pins, or None to resolve the latest at call time."""
        return self.operation.contract.version_text if self.pinned else None


class ToolCatalog:
    """Every tool of a registry, by name, built once at start-up."""

    def __init__(self, registry: Registry) -> None:
        self._entries: dict[str, ToolEntry] = {}
        for operation in registry.operations():
            if registry.is_latest(operation):
                self._add(operation, pinned=False)
            self._add(operation, pinned=True)

    def _add(self, operation: Operation, *, pinned: bool) -> None:
        contract = operation.contract
        name = tool_name(contract, pinned=pinned)
        if name in self._entries:
            other = self._entries[name].operation.contract
            raise ContractError(f"{contract.ref} and {other.ref} share the MCP tool name {name!r}")
        tool = build_tool(contract, pinned=pinned)
        self._entries[name] = ToolEntry(name, operation, pinned, tool)

    def __iter__(self) -> Iterator[ToolEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> ToolEntry | None:
        return self._entries.get(name)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        entry = self._entries.get(name)
        return entry.tool.input_schema if entry else None


def input_schema(contract: Contract) -> dict[str, Any]:
    return ContractDoc(contract).input_schema()


def output_schema(contract: Contract) -> dict[str, Any]:
    return ContractDoc(contract).output_schema()


def tool_annotations(contract: Contract) -> types.ToolAnnotations:
    """Hints from the contract's kind. Queries are read-only and idempotent. Commands are
    not read-only and not idempotent without a key; contracts declare no ``destructive``
    flag yet, so ``destructiveHint`` is left unset (clients then assume it may be)."""
    query = contract.kind == "query"
    return types.ToolAnnotations(
        title=contract.title,
        read_only_hint=query,
        idempotent_hint=query,
    )


def build_tool(contract: Contract, *, pinned: bool) -> types.Tool:
    where = f"{contract.key} v{contract.version}" if pinned else contract.key
    return types.Tool(
        name=tool_name(contract, pinned=pinned),
        title=f"{contract.title} ({where})",
        description=describe(contract, pinned=pinned),
        input_schema=input_schema(contract),
        output_schema=output_schema(contract),
        annotations=tool_annotations(contract),
        meta={
            "operation": {
                "key": contract.key,
                "version": contract.version_text,
                "kind": contract.kind,
            },
            "pinned": pinned,
            "stability": contract.stability,
            "documentation": doc_uri(contract, pinned=pinned),
        },
    )


#: What an agent does about an INVALID_INPUT answer.
INVALID_INPUT_HINT = "fix the fields listed in structuredContent.issues and call again"


def describe(contract: Contract, *, pinned: bool) -> str:
    """What an agent needs to call the tool well: purpose, policy, errors, idempotency."""
    doc = ContractDoc(contract)
    lines = ["\n\n".join(doc.summary), ""]
    version = (
        f"pinned to v{contract.version}"
        if pinned
        else f"latest version, now v{contract.version}; {tool_name(contract, pinned=True)} pins it"
    )
    lines.append(f"Operation {contract.key} ({contract.kind}, {contract.stability}; {version}).")
    if contract.kind == "query":
        lines.append("Reads only; safe to retry.")
    else:
        lines.append(
            "Changes state. To retry safely, send the same _meta.idempotencyKey with each "
            "attempt: a repeat returns the first result instead of acting twice."
        )
    lines.append(doc.caller)
    if doc.rate_limit:
        lines.append(doc.rate_limit)
    if doc.deprecation_notice:
        lines.append(doc.deprecation_notice)
    lines.append("")
    lines.append(
        "Failures come back as a tool result with isError: true and a problem document "
        "(code, detail, retryable, issues) as structuredContent."
    )
    if doc.declared_errors:
        lines.append("Declared errors:")
        for spec in doc.declared_errors:
            retry = ", retryable" if spec.retryable else ""
            lines.append(f"- {spec.code} ({spec.status}{retry}): {spec.title}")
    common = [
        f"{code} ({INVALID_INPUT_HINT})" if code == "INVALID_INPUT" else code
        for code in codes(doc.common_errors)
    ]
    lines.append(sentence(f"Any call may also answer {', '.join(common)}"))
    lines.append(f"Documentation: {doc_uri(contract, pinned=pinned)}")
    return "\n".join(lines)
