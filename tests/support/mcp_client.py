"""MCP client helpers for tests: the SDK's own client over streamable HTTP, results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


@asynccontextmanager
async def http_client(
    url: str,
    token: str | None,
    *,
    mode: str = "auto",
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Client]:
    """``mcp.Client`` on ``url`` (an MCP endpoint), with a bearer token and extra headers."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with (
        httpx2.AsyncClient(headers=sent, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def meta(**items: Any) -> types.RequestParamsMeta:
    """A request ``_meta`` with our keys (``idempotencyKey``, ``requestId``)."""
    return cast(types.RequestParamsMeta, items)


def text_of(result: types.CallToolResult) -> str:
    """The text rendering of a tool result (its one text block)."""
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]
