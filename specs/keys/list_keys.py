"""keys.listKeys: the API keys of the caller's tenant, without secrets."""

from __future__ import annotations

from pydantic import Field

from registry.contract import query
from registry.model import WireModel
from specs.keys.models import ApiKeyView


class ListKeysInput(WireModel):
    include_revoked: bool = Field(False, description="Also list revoked keys")


class KeyList(WireModel):
    items: list[ApiKeyView] = Field(description="Oldest first")


ListKeys = query(
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
)
