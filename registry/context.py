"""The invocation context a handler receives beside its validated input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from registry.actor import Actor

if TYPE_CHECKING:
    from registry.registry import ResourceAttrs


@dataclass(frozen=True, slots=True)
class Context:
    """Who is calling, how, and what policy already loaded.

    ``allowed(resource, action)`` asks the policy about a further permission (for
    example whether a caller may list every invoice of the tenant rather than its own).
    """

    actor: Actor
    request_id: str
    transport: str
    operation_key: str
    idempotency_key: str | None
    allowed: Callable[[str, str], Awaitable[bool]]
    resources: dict[str, ResourceAttrs] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str:
        """The caller's tenant; handlers of non-anonymous contracts can rely on it."""
        if self.actor.tenant_id is None:
            raise RuntimeError("anonymous caller has no tenant")
        return self.actor.tenant_id
