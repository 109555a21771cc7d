"""One shard's restart intensity (OTP-style): when to start a worker again, and when to stop.

An unexpected exit restarts the worker, the first time immediately, then with exponential
backoff plus jitter (:class:`shard_worker.retry.Backoff`, the keeper's one schedule); a worker
that stayed up ``stable_after_s`` resets the backoff (the arbiter calls
:meth:`RestartBudget.stable`); more than ``max_restarts`` exits within ``window_s`` is a crash
loop: the shard is given up.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from shard_worker.retry import Backoff
from supervisor.config import RestartPolicy


@dataclass(slots=True)
class RestartBudget:
    #: monotonic times of the recent unexpected exits (within the policy's window)
    exits: deque[float] = field(default_factory=deque)
    #: restarts since the last stable run (the backoff exponent)
    consecutive: int = 0

    def reset(self) -> None:
        """A fresh start (a reload changed the shard): no history."""
        self.exits.clear()
        self.consecutive = 0

    def stable(self) -> None:
        """The worker stayed up long enough: the next restart is immediate again."""
        self.consecutive = 0

    def next_start(
        self, policy: RestartPolicy, now: float, rng: random.Random | None = None
    ) -> float | None:
        """Record an exit at ``now``; the seconds to wait before the next start, or None when
        the exits within the window exceed ``max_restarts`` (a crash loop)."""
        self.exits.append(now)
        while self.exits and self.exits[0] < now - policy.window_s:
            self.exits.popleft()
        if len(self.exits) > policy.max_restarts:
            return None
        delay = 0.0
        if self.consecutive:  # base * 2^(n - 1), capped, +- jitter
            delay = Backoff(
                policy.backoff_base_s, max_s=policy.backoff_max_s, jitter=policy.jitter, rng=rng
            ).delay(self.consecutive - 1)
        self.consecutive += 1
        return delay

    def crash_loop(self, policy: RestartPolicy, why: str) -> str:
        """Why the shard was given up."""
        return (
            f"crash loop: {len(self.exits)} exits within {policy.window_s:g}s "
            f"(max_restarts {policy.max_restarts}); last: {why}"
        )
