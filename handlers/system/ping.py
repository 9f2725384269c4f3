"""Handler for system.ping."""

from registry.context import Context
from specs.system.ping import PingInput, PingOutput


async def ping(data: PingInput, ctx: Context) -> PingOutput:
    return PingOutput(message=data.message, actor_id=ctx.actor.id, tenant_id=ctx.actor.tenant_id)
