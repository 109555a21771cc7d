"""An RPC request budget per shard: a token bucket with priorities (due work first).

Public RPC providers allow roughly 1-30 requests/s per client; ``max_requests_per_s`` caps what
one shard sends, and every read path takes a token before each request:

* :data:`DUE` (0) - reading due tasks, simulating and sending their executions;
* :data:`LEDGER` (1) - a new ledger's getLatestLedger / getEvents and the re-reads it names;
* :data:`SWEEP` (2) - the background sweep (:mod:`shard_worker.sweep`);
* :data:`RESCAN` (3) - a full re-read after a lost events position.

Waiters are served strictly by priority, first come first served within one; a request of
higher priority never waits behind a lower one. Sweep and rescans also leave ``reserve`` tokens
in the bucket, so due work arriving at a ledger's start finds a burst ready instead of waiting
for tokens the sweep just spent.

:class:`TokenBucket` is the arithmetic with the time passed in (unit-tested without clocks);
:class:`RequestBudget` is the asyncio side. ``max_requests_per_s`` None means unlimited (only
counted).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

__all__ = ["DUE", "LEDGER", "PRIORITY_NAMES", "RESCAN", "SWEEP", "RequestBudget", "TokenBucket"]

DUE, LEDGER, SWEEP, RESCAN = 0, 1, 2, 3
PRIORITY_NAMES = ("due", "ledger", "sweep", "rescan")


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; starts full."""

    __slots__ = ("_stamp", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._stamp = now

    def refill(self, now: float) -> None:
        if now > self._stamp:
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = max(self._stamp, now)

    def try_take(self, cost: float, now: float, *, keep: float = 0.0) -> bool:
        """Take ``cost`` tokens if that leaves at least ``keep``."""
        self.refill(now)
        if self.tokens - cost >= keep - 1e-9:
            self.tokens -= cost
            return True
        return False

    def wait_time(self, cost: float, now: float, *, keep: float = 0.0) -> float:
        """Seconds until :meth:`try_take` with the same arguments can succeed."""
        self.refill(now)
        missing = cost + keep - self.tokens
        return max(0.0, missing / self.rate)


class RequestBudget:
    """``await budget.acquire(priority)`` before each RPC request."""

    def __init__(
        self,
        max_requests_per_s: float | None,
        *,
        burst: float | None = None,
        reserve: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``burst`` defaults to one second of requests (at least 1); ``reserve`` (the tokens
        sweep and rescans leave for due work) to half the burst, rounded down."""
        self._clock = clock
        self.rate = max_requests_per_s
        self._bucket: TokenBucket | None = None
        self.reserve = 0.0
        if max_requests_per_s is not None:
            if max_requests_per_s <= 0:
                raise ValueError("max_requests_per_s must be positive (or None: unlimited)")
            b = max(1.0, float(max_requests_per_s) if burst is None else burst)
            self._bucket = TokenBucket(max_requests_per_s, b, self._now())
            self.reserve = float(int(b / 2)) if reserve is None else reserve
            if not 0 <= self.reserve < b:
                raise ValueError("reserve must be in [0, burst)")
        self._waiters: list[tuple[int, int, float, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        #: requests granted and seconds waited, by priority
        self.granted = [0, 0, 0, 0]
        self.waited_s = [0.0, 0.0, 0.0, 0.0]

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time() if _loop_running() else 0.0

    def _keep(self, priority: int) -> float:
        return self.reserve if priority >= SWEEP else 0.0

    # ------------------------------------------------------------------ acquire

    def try_acquire(self, priority: int = DUE, cost: float = 1) -> bool:
        """Take ``cost`` tokens now if nobody of the same or higher priority is waiting."""
        _check(priority, cost)
        bucket = self._bucket
        if bucket is None:
            self.granted[priority] += 1
            return True
        if cost > bucket.burst:
            raise ValueError(f"cost {cost} exceeds the burst {bucket.burst}")
        if any(w[0] <= priority and not w[3].done() for w in self._waiters):
            return False
        if bucket.try_take(cost, self._now(), keep=self._keep(priority)):
            self.granted[priority] += 1
            return True
        return False

    async def acquire(self, priority: int = DUE, cost: float = 1) -> None:
        """Wait for ``cost`` tokens, served by priority then arrival."""
        if self.try_acquire(priority, cost):
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        t0 = self._now()
        heapq.heappush(self._waiters, (priority, next(self._seq), cost, fut))
        self._dispatch()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # granted just as we were cancelled: the token is spent; count it
                self.granted[priority] += 1
            self._dispatch()
            raise
        self.granted[priority] += 1
        self.waited_s[priority] += max(0.0, self._now() - t0)

    def _dispatch(self) -> None:
        """Grant tokens to waiters in order; arm a timer for the first one that must wait."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        bucket = self._bucket
        assert bucket is not None
        waiters = self._waiters
        now = self._now()
        while waiters:
            priority, _, cost, fut = waiters[0]
            if fut.done():
                heapq.heappop(waiters)
                continue
            keep = self._keep(priority)
            if bucket.try_take(cost, now, keep=keep):
                heapq.heappop(waiters)
                fut.set_result(None)
                continue
            delay = bucket.wait_time(cost, now, keep=keep)
            self._timer = asyncio.get_running_loop().call_later(delay, self._dispatch)
            return

    # ------------------------------------------------------------------ state

    def waiting(self, priority: int | None = None) -> int:
        """Requests waiting (of one priority, or all)."""
        return sum(
            1 for w in self._waiters if not w[3].done() and (priority is None or w[0] == priority)
        )

    def drain_stats(self) -> dict[str, dict[str, float]]:
        """``{"granted": {name: n}, "waited_s": {name: s}}`` since the last drain; resets."""
        out = {
            "granted": {n: g for n, g in zip(PRIORITY_NAMES, self.granted, strict=True) if g},
            "waited_s": {
                n: round(w, 6) for n, w in zip(PRIORITY_NAMES, self.waited_s, strict=True) if w
            },
        }
        self.granted = [0, 0, 0, 0]
        self.waited_s = [0.0, 0.0, 0.0, 0.0]
        return out


def _check(priority: int, cost: float) -> None:
    if priority not in (DUE, LEDGER, SWEEP, RESCAN):
        raise ValueError(f"unknown priority {priority}")
    if cost <= 0:
        raise ValueError("cost must be positive")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
