"""An operation no shipped policy line grants but the admin wildcard: for policy lint tests.

    SPECOPS_EXTRA_OPERATIONS=tests.support.policy_ops:install

installs ``testing.neverGranted`` (rule ``("nothing", "never")``).
"""

from __future__ import annotations

from registry.context import Context
from registry.contract import query
from registry.model import WireModel
from registry.registry import Registry, install_op
from specops.settings import Settings
from storage.database import Database


class NothingInput(WireModel):
    note: str | None = None


class NothingOutput(WireModel):
    ok: bool


NeverGranted = query(
    key="testing.neverGranted",
    version="1.0.0",
    title="Never granted",
    description="Needs nothing:never, which only the admin wildcard grants",
    goal="Give the policy lint something to find",
    context="Installed by tests of the policy lint",
    owners=["team-tests"],
    input=NothingInput,
    output=NothingOutput,
    auth="user",
    rules=[("nothing", "never")],
)


async def never_granted(data: NothingInput, ctx: Context) -> NothingOutput:
    return NothingOutput(ok=True)


def install(registry: Registry, db: Database, settings: Settings) -> None:
    install_op(registry, NeverGranted, never_granted)
