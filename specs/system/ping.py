"""system.ping: the smallest query, for checks and benchmarks."""

from __future__ import annotations

from pydantic import Field

from registry.contract import query
from registry.model import WireModel


class PingInput(WireModel):
    message: str = Field("ping", max_length=200, pattern=r"^[^\x00]*$")


class PingOutput(WireModel):
    message: str
    actor_id: str
    tenant_id: str | None


Ping = query(
    key="system.ping",
    version="1.0.0",
    title="Ping",
    description="Echo a message with the caller's identity",
    goal="Check that the server, credentials and policy work end to end",
    context="Called by monitors and by benchmarks",
    owners=["team-platform"],
    tags=["system"],
    stability="stable",
    input=PingInput,
    output=PingOutput,
    auth="user",
)
