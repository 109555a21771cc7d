"""supervisor.restarts: immediate first restart, exponential backoff, crash-loop limit."""

from __future__ import annotations

import random

import pytest

from shard_worker.retry import Backoff
from supervisor.config import RestartPolicy
from supervisor.restarts import RestartBudget

POLICY = RestartPolicy(
    max_restarts=4, window_s=60, backoff_base_s=0.5, backoff_max_s=3, jitter=0, stable_after_s=30
)


class TestBackoff:
    def test_first_restart_is_immediate_then_doubling_up_to_the_cap(self) -> None:
        b = RestartBudget()
        delays = [b.next_start(POLICY, float(t)) for t in range(4)]
        assert delays == [0.0, 0.5, 1.0, 2.0]
        b2 = RestartBudget(consecutive=10)
        assert b2.next_start(POLICY, 0.0) == 3.0

    def test_the_schedule_is_the_keepers_one_backoff(self) -> None:
        policy = RestartPolicy(
            max_restarts=100, window_s=1, backoff_base_s=0.5, backoff_max_s=30, jitter=0.2
        )
        b = RestartBudget()
        got = [b.next_start(policy, 10.0 * t, random.Random(t)) for t in range(12)]
        want = [0.0] + [
            Backoff(0.5, max_s=30, jitter=0.2, rng=random.Random(n + 1)).delay(n) for n in range(11)
        ]
        assert got == want

    def test_a_shard_that_restarts_for_hours_waits_the_cap_and_never_overflows(self) -> None:
        # exits spaced wider than the window: never a crash loop, never stable either; after
        # 1,100 restarts base * 2^n is far beyond a float
        policy = RestartPolicy(
            max_restarts=3,
            window_s=1,
            backoff_base_s=0.5,
            backoff_max_s=5,
            jitter=0,
            stable_after_s=3600,
        )
        b = RestartBudget()
        delays = [b.next_start(policy, 10.0 * t) for t in range(1100)]
        assert delays[:3] == [0.0, 0.5, 1.0] and set(delays[5:]) == {5.0}

    def test_jitter_stays_within_its_fraction(self) -> None:
        policy = RestartPolicy(
            max_restarts=100, window_s=60, backoff_base_s=1, backoff_max_s=1, jitter=0.2
        )
        rng = random.Random(7)
        b = RestartBudget(consecutive=1)
        delays = [b.next_start(policy, 0.0, rng) for _ in range(50)]
        assert all(0.8 <= d <= 1.2 for d in delays)  # type: ignore[operator]
        assert len(set(delays)) > 1

    def test_a_stable_run_makes_the_next_restart_immediate(self) -> None:
        b = RestartBudget()
        b.next_start(POLICY, 0.0)
        b.next_start(POLICY, 1.0)
        b.stable()
        assert b.next_start(POLICY, 40.0) == 0.0


class TestCrashLoop:
    def test_more_exits_than_max_restarts_within_the_window_gives_up(self) -> None:
        b = RestartBudget()
        assert all(b.next_start(POLICY, float(t)) is not None for t in range(4))
        assert b.next_start(POLICY, 4.0) is None
        why = b.crash_loop(POLICY, "exit code 1")
        assert why == "crash loop: 5 exits within 60s (max_restarts 4); last: exit code 1"

    def test_exits_older_than_the_window_are_forgotten(self) -> None:
        b = RestartBudget()
        for t in (0.0, 1.0, 2.0, 3.0):
            b.next_start(POLICY, t)
        assert b.next_start(POLICY, 62.5) is not None
        assert list(b.exits) == [3.0, 62.5]

    @pytest.mark.parametrize("n", [0, 3])
    def test_reset_forgets_everything(self, n: int) -> None:
        b = RestartBudget()
        for t in range(n):
            b.next_start(POLICY, float(t))
        b.reset()
        assert (list(b.exits), b.consecutive) == ([], 0)
        assert b.next_start(POLICY, 9.0) == 0.0
