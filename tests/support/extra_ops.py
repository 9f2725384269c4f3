"""Operations that only end-to-end tests install: they fail, hang or limit on purpose.

A server started with ``SPECOPS_EXTRA_OPERATIONS=tests.support.extra_ops:install`` offers
them in the ``testing`` domain. None has policy rules, so they are granted as resource
``op``, action ``testing.<name>``, which the shipped policy gives to role ``admin`` only.

Handlers count the times they start per ``token`` (in this server process);
``testing.runs`` reads the count, so a test can tell a replay from a second execution.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

from pydantic import Field

from registry.contract import RateLimit, command, query
from registry.errors import ErrorSpec
from registry.model import WireModel
from registry.registry import Registry, install_op
from specops.settings import Settings
from storage.database import Database

#: Text a failing handler puts in its exception; it must never reach a response.
LEAKY_DETAIL = "db password is hunter2 at /srv/secret/config.py line 42"

#: A domain error that no testing contract declares.
WIDGET_MELTED = ErrorSpec("WIDGET_MELTED", 409, "The widget melted")

RUNS: Counter[str] = Counter()


class TokenInput(WireModel):
    token: str = Field(min_length=1, max_length=100)


class SleepInput(WireModel):
    token: str = Field(min_length=1, max_length=100)
    seconds: float = Field(1.5, ge=0, le=10)


class RunOutput(WireModel):
    token: str
    run_id: str
    runs: int


class RunsOutput(WireModel):
    runs: int


def _base(key: str, title: str) -> dict[str, Any]:
    return {
        "key": key,
        "version": "1.0.0",
        "title": title,
        "description": f"{title} (tests only)",
        "goal": "Exercise a failure path of the pipeline end to end",
        "context": "Installed by tests.support.extra_ops for end-to-end tests",
        "owners": ["team-tests"],
        "tags": ["testing"],
        "auth": "user",
    }


def _ran(token: str) -> RunOutput:
    RUNS[token] += 1
    return RunOutput(token=token, run_id=uuid.uuid4().hex, runs=RUNS[token])


async def explode(data: TokenInput, ctx: Any) -> RunOutput:
    RUNS[data.token] += 1
    raise RuntimeError(f"handler exploded: {LEAKY_DETAIL}")


async def undeclared(data: TokenInput, ctx: Any) -> RunOutput:
    RUNS[data.token] += 1
    raise WIDGET_MELTED(f"undeclared domain error: {LEAKY_DETAIL}")


async def bad_output(data: TokenInput, ctx: Any) -> dict[str, Any]:
    RUNS[data.token] += 1
    return {"token": data.token, "runId": 42, "surprise": LEAKY_DETAIL}


async def sleep(data: SleepInput, ctx: Any) -> RunOutput:
    result = _ran(data.token)
    await asyncio.sleep(data.seconds)
    return result


async def flaky(data: TokenInput, ctx: Any) -> RunOutput:
    """Fails the first time it sees a token, succeeds afterwards."""
    if RUNS[f"flaky:{data.token}"] == 0:
        RUNS[f"flaky:{data.token}"] += 1
        RUNS[data.token] += 1
        raise RuntimeError(f"first attempt fails: {LEAKY_DETAIL}")
    return _ran(data.token)


async def limited(data: TokenInput, ctx: Any) -> RunOutput:
    return _ran(data.token)


async def runs(data: TokenInput, ctx: Any) -> RunsOutput:
    return RunsOutput(runs=RUNS[data.token])


Explode = command(
    **_base("testing.explode", "Raise RuntimeError"), input=TokenInput, output=RunOutput
)
Undeclared = command(
    **_base("testing.undeclared", "Raise an undeclared domain error"),
    input=TokenInput,
    output=RunOutput,
)
BadOutput = query(
    **_base("testing.badOutput", "Return output breaking the contract"),
    input=TokenInput,
    output=RunOutput,
)
Slow = command(
    **_base("testing.slow", "Sleep past the timeout"),
    input=SleepInput,
    output=RunOutput,
    timeout_seconds=0.3,
)
SlowCommand = command(
    **_base("testing.slowCommand", "Sleep, then succeed"), input=SleepInput, output=RunOutput
)
Flaky = command(**_base("testing.flaky", "Fail once per token"), input=TokenInput, output=RunOutput)
Limited = command(
    **_base("testing.limited", "Two calls a minute per actor"),
    input=TokenInput,
    output=RunOutput,
    rate_limit=RateLimit(rpm=2),
)
Runs = query(
    **_base("testing.runs", "How often handlers ran for a token"),
    input=TokenInput,
    output=RunsOutput,
)


def install(registry: Registry, db: Database, settings: Settings) -> None:
    install_op(registry, Explode, explode)
    install_op(registry, Undeclared, undeclared)
    install_op(registry, BadOutput, bad_output)
    install_op(registry, Slow, sleep)
    install_op(registry, SlowCommand, sleep)
    install_op(registry, Flaky, flaky)
    install_op(registry, Limited, limited)
    install_op(registry, Runs, runs)
