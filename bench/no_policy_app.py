"""Our server without the policy check: the baseline of the ``policy-ping`` scenario.

The very app ``specops serve`` builds (same settings, database, identity, rate limits,
idempotency, audit, transports), except that the pipeline's authorizer allows everything
without looking at a policy: ``Pipeline.authorize`` still runs its scope and auth-level
checks, but every ``allowed``/``decide`` answers allow at once. Our ``ping`` over this
server's throughput is what the policy stage costs. Served by uvicorn exactly as
``specops serve`` serves our app (factory, one worker, log level warning, no access log),
on a database migrated beforehand (``specops db upgrade``).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette

from bench.serve import serve_factory, server_app
from registry.actor import Actor
from registry.ports import Decision
from specops.app import Server

#: The one answer of AllowAll (a Decision is frozen: sharing it is safe).
ALLOW = Decision(True, "bench: allow all")


class AllowAll:
    """An ``Authorizer`` that grants every action on every resource."""

    async def allowed(self, actor: Actor, resource: str, action: str) -> bool:
        return True

    async def decide(self, actor: Actor, resource: str, action: str) -> Decision:
        return ALLOW


def create_app() -> Starlette:
    """The ASGI app for ``uvicorn --factory bench.no_policy_app:create_app``."""

    def without_policy(server: Server) -> None:
        server.pipeline.authorizer = AllowAll()

    return server_app(without_policy)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve it with the uvicorn settings ``specops serve`` uses."""
    serve_factory("bench.no_policy_app:create_app", __doc__, argv)


if __name__ == "__main__":
    main()
