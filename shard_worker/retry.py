"""One retry schedule for the worker: exponential backoff, capped, with optional jitter.

Used by the RPC client (a failed attempt), the start-up checks (an RPC that is not up yet)
and ``sendTransaction``'s ``TRY_AGAIN_LATER``. The caller keeps its own loop (what counts as
a failure and when to give up differ); this module says only how long to wait before retry n::

    for attempt in range(limit):
        if attempt:
            await backoff.wait(attempt - 1)
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import random

__all__ = ["Backoff"]


class Backoff:
    """Delay before retry ``n`` (0-based): ``min(max_s, first_s * factor**n)``, times a
    uniform draw in ``[1 - jitter, 1 + jitter]`` (jitter spreads retries of many callers)."""

    __slots__ = ("_rng", "factor", "first_s", "jitter", "max_s")

    def __init__(
        self,
        first_s: float,
        *,
        max_s: float,
        factor: float = 2.0,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if first_s < 0 or max_s < 0 or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("backoff needs first_s, max_s >= 0, factor >= 1, 0 <= jitter <= 1")
        self.first_s = first_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self._rng = rng

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry ``retry`` (0 for the first retry)."""
        try:
            base = min(self.max_s, self.first_s * self.factor ** max(0, retry))
        except OverflowError:
            base = self.max_s
        if not self.jitter:
            return base
        draw = (self._rng or random).uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return base * draw

    async def wait(self, retry: int, stop: asyncio.Event | None = None) -> None:
        """Sleep :meth:`delay` seconds, or less when ``stop`` is set meanwhile."""
        delay = self.delay(retry)
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
