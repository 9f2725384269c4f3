"""MCP names for contracts (DESIGN.md section 4): tool names and documentation URIs.

Tool names must match ``^[a-zA-Z0-9_-]{1,64}$`` (Claude Desktop and the OpenAI API reject
the whole tool list when one name has a dot), so ``billing.capturePayment`` becomes
``billing_capturePayment`` and version 1.0.0 of it ``billing_capturePayment_v1_0_0``.
"""

from __future__ import annotations

import re

from registry.contract import Contract, ContractError

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NOT_IN_NAMES = re.compile(r"[^a-zA-Z0-9_-]")
DOC_SCHEME = "specops"
DOC_PREFIX = f"{DOC_SCHEME}://ops/"


def tool_name(contract: Contract, *, pinned: bool) -> str:
    """``billing_capturePayment`` (latest), or ``billing_capturePayment_v1_0_0`` (pinned)."""
    name = contract.key.replace(".", "_")
    if pinned:
        name = f"{name}_v{_NOT_IN_NAMES.sub('_', contract.version_text)}"
    if not TOOL_NAME.fullmatch(name):
        raise ContractError(
            f"{contract.ref}: MCP tool name {name!r} must match {TOOL_NAME.pattern} "
            "(shorten the key or the version)"
        )
    return name


def doc_uri(contract: Contract, *, pinned: bool) -> str:
    """``specops://ops/billing.capturePayment`` (latest), or ``.../v1.0.0`` appended (pinned)."""
    uri = f"{DOC_PREFIX}{contract.key}"
    return f"{uri}/v{contract.version}" if pinned else uri
