"""Each contract's documentation as a markdown resource, so an agent can read it before a call.

``specops://ops/billing.capturePayment`` documents the version an unversioned call resolves
to; ``specops://ops/billing.capturePayment/v1.0.0`` documents one installed version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import mcp_types as types

from registry.contract import Contract
from registry.docs import ContractDoc, codes
from registry.registry import Operation, Registry
from transports.mcp.names import doc_uri, tool_name
from transports.mcp.tools import describe

MARKDOWN = "text/markdown"


@dataclass(frozen=True, slots=True)
class DocEntry:
    """One documentation resource and the operation it documents."""

    uri: str
    operation: Operation
    resource: types.Resource
    text: str


class DocCatalog:
    """Every documentation resource of a registry, by URI, built once at start-up."""

    def __init__(self, registry: Registry) -> None:
        self._entries: dict[str, DocEntry] = {}
        for operation in registry.operations():
            latest = registry.is_latest(operation)
            text = contract_markdown(operation.contract, latest=latest)
            if latest:
                self._add(operation, text, pinned=False)
            self._add(operation, text, pinned=True)

    def _add(self, operation: Operation, text: str, *, pinned: bool) -> None:
        contract = operation.contract
        uri = doc_uri(contract, pinned=pinned)
        resource = types.Resource(
            name=f"{contract.key}@{contract.version}" if pinned else contract.key,
            title=f"{contract.title} ({contract.key}{f' v{contract.version}' if pinned else ''})",
            uri=uri,
            description=f"Contract of {contract.key} v{contract.version}: {contract.description}",
            mime_type=MARKDOWN,
            size=len(text.encode()),
            meta={
                "operation": {
                    "key": contract.key,
                    "version": contract.version_text,
                    "kind": contract.kind,
                },
                "tool": tool_name(contract, pinned=pinned),
            },
        )
        self._entries[uri] = DocEntry(uri, operation, resource, text)

    def __iter__(self) -> Iterator[DocEntry]:
        return iter(self._entries.values())

    def get(self, uri: str) -> DocEntry | None:
        return self._entries.get(uri)


def _json_block(data: object) -> list[str]:
    return ["```json", json.dumps(data, indent=2, ensure_ascii=False), "```"]


def contract_markdown(contract: Contract, *, latest: bool) -> str:
    """The contract in full: metadata, policy, errors, and the input and output schemas."""
    doc = ContractDoc(contract)
    tools = [tool_name(contract, pinned=True)]
    if latest:
        tools.insert(0, tool_name(contract, pinned=False))
    policy = contract.policy
    rules = (
        ", ".join(
            f"`({r.resource}, {r.action}{f', {r.condition}' if r.condition else ''})`"
            for r in policy.rules
        )
        or f"`(op, {contract.key})`"
    )
    lines = [
        f"# {contract.title} — `{contract.key}` v{contract.version}",
        "",
        describe(contract, pinned=not latest),
        "",
        "| | |",
        "|---|---|",
        f"| key | `{contract.key}` |",
        f"| version | {contract.version}{' (latest)' if latest else ''} |",
        f"| kind | {contract.kind} |",
        f"| stability | {contract.stability} |",
        f"| owners | {', '.join(contract.owners) or '—'} |",
        f"| tags | {', '.join(contract.tags) or '—'} |",
        f"| MCP tools | {', '.join(f'`{t}`' for t in tools)} |",
        f"| auth level | {policy.auth} |",
        f"| policy rules | {rules} |",
        f"| timeout | {contract.timeout_seconds:g}s |",
    ]
    if policy.rate_limit is not None:
        lines.append(f"| rate limit | {policy.rate_limit.rpm}/min per {policy.rate_limit.per} |")
    if doc.deprecation_notice:
        lines.append(f"| deprecated | {doc.deprecation_notice} |")
    lines += ["", "## Declared errors", ""]
    if doc.declared_errors:
        lines += ["| code | status | retryable | meaning |", "|---|---|---|---|"]
        lines += [
            f"| `{e.code}` | {e.status} | {'yes' if e.retryable else 'no'} | {e.title} |"
            for e in doc.declared_errors
        ]
    else:
        lines.append("None beyond the common codes.")
    common = ", ".join(f"`{code}`" for code in codes(doc.common_errors))
    lines += ["", f"Any call may also answer {common}."]
    lines += ["", "## Input (JSON Schema)", "", *_json_block(doc.input_schema())]
    lines += ["", "## Output (JSON Schema)", "", *_json_block(doc.output_schema())]
    return "\n".join(lines) + "\n"
