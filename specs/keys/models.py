"""API key models shared by the key contracts. A key's secret is never among them, except
once, in the answer to keys.createKey."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from registry.fields import Timestamp
from registry.model import WireModel

KEY_ID_PATTERN = r"^[a-z0-9]{12}$"

KeyId = Annotated[
    str,
    StringConstraints(pattern=KEY_ID_PATTERN),
    Field(description="A key's id: the 12 characters after sk_live_", examples=["a1b2c3d4e5f6"]),
]
ActorId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@+-]+$")
]
RoleName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
OperationKey = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=200, pattern=r"^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)+$"
    ),
    Field(examples=["billing.getInvoice"]),
]


class KeyKind(StrEnum):
    """Who holds a key: a person, a machine client, or an agent acting for a person."""

    USER = "user"
    SERVICE = "service"
    AGENT = "agent"


class ApiKeyView(WireModel):
    """A key as admins see it: who it acts as and what it may do, never its secret."""

    id: str = Field(description="The key's id, as it appears in the token and audit records")
    actor_id: str = Field(description="The actor the key acts as")
    kind: KeyKind
    roles: list[str]
    operations: list[str] | None = Field(
        None, description="The only operations the key may call; null: any its roles allow"
    )
    description: str | None = None
    created_at: Timestamp
    revoked_at: Timestamp | None = None
