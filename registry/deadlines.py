"""Handler deadlines, enforced by one periodic sweep rather than a timer per call.

``asyncio.timeout`` schedules a timer and cancels it again on every call, which costs a
busy server more than most handlers do. Here a call registers its deadline in a dict,
and one task per event loop looks at the registered calls every ``resolution`` seconds,
cancelling the task of each call that has overrun; the call then raises ``TimeoutError``.
A deadline is thus honoured up to ``resolution`` late, which is nothing beside handler
timeouts counted in seconds. The sweeping task ends when no call is registered.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

DEFAULT_RESOLUTION = 0.02

#: Forks of this process so far, as its children count them: a child must not trust a
#: loop its parent was running (``Deadlines._task``).
_forks = [0]


def _count_fork() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_count_fork)


@dataclass(slots=True)
class _Call:
    deadline: float
    task: asyncio.Task[object]
    #: The task's pending cancellation requests when the call began.
    cancelling: int
    expired: bool = False


class Deadlines:
    """Runs awaitables under deadlines (``run``), one sweeping task per event loop."""

    def __init__(self, resolution: float = DEFAULT_RESOLUTION) -> None:
        self.resolution = resolution
        self._calls: dict[int, _Call] = {}
        self._sweeper: asyncio.Task[None] | None = None
        #: The loop the last call ran on, its thread, and the fork count then.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._fork = -1

    def _task(self) -> asyncio.Task[object] | None:
        """The current task. ``asyncio.current_task()`` asks for the running loop, which
        on 3.11 is a ``getpid()`` system call each time; a server's calls all run on one
        loop, so the last call's loop is asked directly while it is still the running
        loop of this thread: it runs, in the same thread (a thread runs one loop at a
        time) of the same process."""
        loop = self._loop
        if (
            loop is not None
            and self._loop_thread == threading.get_ident()
            and self._fork == _forks[0]
            and loop.is_running()
        ):
            task = asyncio.current_task(loop)
            if task is not None:
                return task
        task = asyncio.current_task()
        if task is not None:
            self._loop = task.get_loop()
            self._loop_thread = threading.get_ident()
            self._fork = _forks[0]
        return task

    async def run(self, awaitable: Awaitable[T], seconds: float | None) -> T:
        """Await ``awaitable`` from within a task; ``TimeoutError`` once it has run for
        more than ``seconds`` (None: no deadline)."""
        if seconds is None:
            return await awaitable
        task = self._task()
        if task is None:  # not within a task: nothing to cancel, so the classic way
            async with asyncio.timeout(seconds):
                return await awaitable
        loop = task.get_loop()
        call = _Call(loop.time() + seconds, task, task.cancelling())
        token = id(call)
        self._calls[token] = call
        self._ensure_sweeper(loop)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if call.expired:
                call.expired = False  # our cancellation is taken back here
                if task.uncancel() <= call.cancelling:
                    raise TimeoutError() from None
            raise
        finally:
            del self._calls[token]
            if call.expired:  # the awaitable swallowed our cancellation: take it back
                task.uncancel()

    def _ensure_sweeper(self, loop: asyncio.AbstractEventLoop) -> None:
        sweeper = self._sweeper
        if sweeper is None or sweeper.done() or sweeper.get_loop() is not loop:
            self._sweeper = loop.create_task(self._sweep(loop), name="handler-deadlines")

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._calls:
            await asyncio.sleep(self.resolution)
            now = loop.time()
            for call in list(self._calls.values()):
                if not call.expired and call.deadline <= now and call.task.get_loop() is loop:
                    call.expired = True
                    call.task.cancel()
