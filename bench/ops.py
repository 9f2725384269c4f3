"""The benchmark's own operation: a command whose handler does no work.

Installed with ``SPECOPS_EXTRA_OPERATIONS=bench.ops:install``. Because its handler only
echoes, the ``audit-command`` scenario measures what the audit trail costs a command (a
durable, hash-chained, group-committed record before each response) and little else.
"""

from __future__ import annotations

from pydantic import Field

from registry.context import Context
from registry.contract import command
from registry.model import WireModel
from registry.registry import Registry, install_op
from specops.settings import Settings
from storage.database import Database

KEY = "bench.record"


class RecordInput(WireModel):
    message: str = Field("hi", max_length=200, pattern=r"^[^\x00]*$")


class RecordOutput(WireModel):
    message: str
    actor_id: str


Record = command(
    key=KEY,
    version="1.0.0",
    title="Record",
    description="Echo a message (benchmarks only)",
    goal="Measure what a command's audit record costs",
    context="Installed by python -m bench",
    owners=["team-platform"],
    tags=["bench"],
    stability="experimental",
    input=RecordInput,
    output=RecordOutput,
    auth="user",
)


async def record(data: RecordInput, ctx: Context) -> RecordOutput:
    """Echo the message with the caller's id."""
    return RecordOutput(message=data.message, actor_id=ctx.actor.id)


def install(registry: Registry, _db: Database, _settings: Settings) -> None:
    install_op(registry, Record, record)
