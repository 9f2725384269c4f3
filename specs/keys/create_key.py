"""keys.createKey: a tenant admin issues an API key in its own tenant."""

from __future__ import annotations

from pydantic import Field

from registry.contract import RateLimit, command
from registry.model import WireModel
from specs.keys.models import ActorId, ApiKeyView, KeyKind, OperationKey, RoleName


class CreateKeyInput(WireModel):
    actor_id: ActorId = Field(description="The actor the key acts as, e.g. a user id")
    roles: list[RoleName] = Field(min_length=1, max_length=20, description="Roles it holds")
    kind: KeyKind = KeyKind.USER
    operations: list[OperationKey] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Limit the key to these operation keys; omit for no limit beyond roles",
    )
    description: str | None = Field(None, max_length=200, pattern=r"^[^\x00]*$")


class CreatedKey(ApiKeyView):
    token: str = Field(
        description="SENSITIVE: the key's secret token, shown in this answer only and "
        "stored nowhere (only its hash is kept). Send it as Authorization: Bearer <token>."
    )


CreateKey = command(
    key="keys.createKey",
    version="1.0.0",
    title="Create API key",
    description="Issue an API key in the caller's tenant and return its token, once. "
    "Idempotency keys are refused: a replay would have to store and show the secret again.",
    goal="Let tenant admins give people, services and agents their own revocable credentials",
    context="Called by a tenant admin, from an admin console or an automation",
    owners=["team-platform"],
    tags=["keys", "identity"],
    stability="beta",
    input=CreateKeyInput,
    output=CreatedKey,
    auth="admin",
    rules=[("api_key", "create")],
    rate_limit=RateLimit(rpm=30),  # per actor; SPECOPS_RATE_LIMITS overrides
)
