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


def _overrun_in_a_new_loop(deadlines: Deadlines) -> tuple[bool, int]:
    """In a loop of its own: whether a call overrunning its 0.05 s deadline timed out
    (within a second), and how many cancellations its task was left with."""

    async def overrun() -> tuple[bool, int]:
        try:
            await deadlines.run(asyncio.sleep(10), 0.05)
        except TimeoutError:
            task = asyncio.current_task()
            assert task is not None
            return True, task.cancelling()
        return False, 0

    async def main() -> tuple[bool, int]:
        call = asyncio.create_task(overrun())
        done, _ = await asyncio.wait({call}, timeout=1.0)
        if not done:  # the deadline was not enforced on this loop
            call.cancel()
            return False, 0
        return call.result()

    return asyncio.run(main())


def test_a_later_loop_gets_its_own_tasks_cancelled() -> None:
    """The loop of the last call is remembered: a call on another loop, once that one
    has stopped, must still cancel its own task, not the stopped loop's."""
    deadlines = Deadlines(resolution=0.01)
    assert _overrun_in_a_new_loop(deadlines) == (True, 0)
    assert _overrun_in_a_new_loop(deadlines) == (True, 0)


def test_a_call_in_another_thread_never_takes_that_threads_task() -> None:
    """Thread A's loop is remembered and stays busy inside a task; a call on thread B's
    own loop must still find (and cancel) B's task, not A's."""
    import threading

    deadlines = Deadlines(resolution=0.01)
    remembered = threading.Event()
    finished = threading.Event()
    results: list[tuple[bool, int]] = []

    async def busy() -> None:
        async def quick() -> None:
            await asyncio.sleep(0)

        await deadlines.run(quick(), 1.0)  # remembers A's loop
        remembered.set()
        finished.wait(5)  # blocks inside a task step: A's loop runs, this is its task

    def thread_a() -> None:
        asyncio.run(busy())

    def thread_b() -> None:
        remembered.wait(5)
        try:
            results.append(_overrun_in_a_new_loop(deadlines))
        finally:
            finished.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [(True, 0)]


async def test_a_forked_child_does_not_take_its_parents_loop_for_its_own() -> None:
    """A child forked from a running loop inherits that loop's state, running in the
    same thread id; its own calls must still find their own task."""
    import os

    deadlines = Deadlines(resolution=0.01)

    async def quick() -> None:
        await asyncio.sleep(0)

    await deadlines.run(quick(), 1.0)  # remembers this (running) loop
    pid = os.fork()
    if pid == 0:  # the child: a loop of its own, in the same thread id
        code = 1
        try:
            code = 0 if _overrun_in_a_new_loop(deadlines) == (True, 0) else 3
        finally:
            os._exit(code)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
