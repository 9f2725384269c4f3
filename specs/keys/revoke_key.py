"""keys.revokeKey: a tenant admin revokes one of its tenant's API keys."""

from __future__ import annotations

from registry.contract import RateLimit, command
from registry.model import WireModel
from specs.keys.errors import KEY_NOT_FOUND
from specs.keys.models import ApiKeyView, KeyId


class RevokeKeyInput(WireModel):
    key_id: KeyId


RevokeKey = command(
    key="keys.revokeKey",
    version="1.0.0",
    title="Revoke API key",
    description="Revoke an API key of the caller's tenant. It is refused at once by the "
    "server that revoked it, and by every other within the identity cache time. Revoking "
    "a revoked key answers the key as it is.",
    goal="End a credential's access when it leaks or is no longer needed",
    context="Called by a tenant admin rotating or withdrawing credentials",
    owners=["team-platform"],
    tags=["keys", "identity"],
    stability="beta",
    input=RevokeKeyInput,
    output=ApiKeyView,
    errors=[KEY_NOT_FOUND],
    auth="admin",
    rules=[("api_key", "revoke")],
    rate_limit=RateLimit(rpm=60),  # per actor; SPECOPS_RATE_LIMITS overrides
)
