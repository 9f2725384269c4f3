"""keys.listKeys: the API keys of the caller's tenant, without secrets.

1.1.0 pages them (``limit``, ``cursor``); 1.0.0, retired, answers every key at once."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from registry.contract import Deprecation, query, revision
from registry.fields import page_cursor
from registry.model import WireModel
from specs.keys.models import ApiKeyView


class ListKeysInput(WireModel):
    include_revoked: bool = Field(False, description="Also list revoked keys")


class KeyList(WireModel):
    items: list[ApiKeyView] = Field(description="Oldest first")


ListKeysV1 = query(
    key="keys.listKeys",
    version="1.0.0",
    title="List API keys",
    description="List the API keys of the caller's tenant (ids and scopes, never secrets)",
    goal="Let tenant admins see which credentials exist and what each may do",
    context="Called by a tenant admin reviewing or rotating credentials",
    owners=["team-platform"],
    tags=["keys", "identity"],
    stability="beta",
    input=ListKeysInput,
    output=KeyList,
    auth="admin",
    rules=[("api_key", "list")],
    deprecation=Deprecation(
        reason="Answers every key of the tenant at once; 1.1.0 answers them in pages",
        replaced_by="1.1.0",
        since=date(2026, 11, 24),
    ),
)


class ListKeysPageInput(ListKeysInput):
    limit: int = Field(50, ge=1, le=200, description="Page size")
    cursor: str | None = page_cursor()


class KeyPage(KeyList):
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page")


ListKeys = revision(
    ListKeysV1,
    version="1.1.0",
    description="List the API keys of the caller's tenant (ids and scopes, never secrets), "
    "a page at a time",
    input=ListKeysPageInput,
    output=KeyPage,
)
