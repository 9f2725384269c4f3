"""Rate limits declared by contracts, counted with the ``limits`` library.

In-process (moving window, in memory) by default; any ``limits`` async storage URI
(e.g. ``async+redis://127.0.0.1:6379``) shares the counts between server processes.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from registry.contract import RateLimit


class LimitsRateLimiter:
    """A moving-window limiter over a ``limits`` storage."""

    def __init__(self, storage_uri: str = "async+memory://") -> None:
        storage = storage_from_string(storage_uri)
        if not isinstance(storage, Storage):
            raise ValueError(f"rate limit storage {storage_uri!r} must be an async+ URI")
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(self.storage)
        self._items: dict[int, RateLimitItemPerMinute] = {}

    async def hit(self, bucket: str, limit: RateLimit) -> float | None:
        item = self._items.get(limit.rpm)
        if item is None:
            item = self._items[limit.rpm] = RateLimitItemPerMinute(limit.rpm)
        if await self.limiter.hit(item, bucket):
            return None
        stats = await self.limiter.get_window_stats(item, bucket)
        return max(1.0, math.ceil(stats.reset_time - time.time()))
