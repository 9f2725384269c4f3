"""Handler deadlines: one sweeping task instead of a timer per call."""

from __future__ import annotations

import asyncio

import pytest

from registry.deadlines import Deadlines


async def test_a_call_within_its_deadline_returns_its_result() -> None:
    deadlines = Deadlines(resolution=0.01)

    async def quick() -> str:
        await asyncio.sleep(0)
        return "done"

    assert await deadlines.run(quick(), 1.0) == "done"
    assert await deadlines.run(quick(), None) == "done"


async def test_an_overrunning_call_times_out_and_its_task_is_not_left_cancelled() -> None:
    deadlines = Deadlines(resolution=0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await deadlines.run(asyncio.sleep(10), 0.05)
    elapsed = loop.time() - started
    assert 0.05 <= elapsed < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation is pending either


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    deadlines = Deadlines(resolution=0.01)
    task = asyncio.create_task(deadlines.run(asyncio.sleep(10), 5.0))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_call_that_swallows_the_cancellation_finishes_uncancelled() -> None:
    deadlines = Deadlines(resolution=0.01)

    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "kept going"
        return "slept"

    assert await deadlines.run(stubborn(), 0.02) == "kept going"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.03)  # would raise if a cancellation were still pending


async def test_concurrent_calls_each_get_their_own_deadline() -> None:
    deadlines = Deadlines(resolution=0.01)

    async def slow(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    results = await asyncio.gather(
        deadlines.run(slow(0.01), 1.0),
        deadlines.run(slow(5), 0.05),
        deadlines.run(slow(0.02), 1.0),
        return_exceptions=True,
    )
    assert results[0] == 0.01 and results[2] == 0.02
    assert isinstance(results[1], TimeoutError)


async def test_the_sweeper_stops_when_no_call_is_registered() -> None:
    deadlines = Deadlines(resolution=0.01)
    await deadlines.run(asyncio.sleep(0), 1.0)
    sweeper = deadlines._sweeper
    assert sweeper is not None
    await asyncio.wait_for(sweeper, 1.0)
    assert sweeper.done()
    assert await deadlines.run(asyncio.sleep(0, "again"), 1.0) == "again"
