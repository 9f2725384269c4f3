"""Who is calling: the actor every invocation is attributed to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["anonymous", "user", "service", "agent"]


@dataclass(frozen=True, slots=True)
class Actor:
    """A resolved caller. ``credential_id`` names the key used, never its secret."""

    id: str
    tenant_id: str | None
    roles: frozenset[str]
    kind: ActorKind
    credential_id: str | None = None
    #: Operation keys the credential is limited to; None: no limit beyond policy.
    operations: frozenset[str] | None = None

    @property
    def authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


ANONYMOUS = Actor(id="anonymous", tenant_id=None, roles=frozenset(), kind="anonymous")
