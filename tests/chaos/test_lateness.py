"""``--hostile``'s figures (pure logic): lateness of repeat executions in ledgers from the
devnet's record, percentiles, never-executed windows, and the targets."""

from __future__ import annotations

from typing import Any

from sorotask.chaos.analysis import LedgerClock, TaskSeed
from sorotask.chaos.lateness import lateness, percentile, target_figures, target_violations
from sorotask.chaos.params import HOSTILE_MIX, hostile_params

CLOCK = LedgerClock(seq0=1000, t0=1_000_000, ledger_seconds=5)
INTERVAL = 12 * 5


def ex(task_id: int, ledger: int, effect: str = "executed") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "ledger": ledger,
        "timestamp": CLOCK.close_time(ledger),
        "keeper": "G",
        "tx_hash": f"{task_id:02x}{ledger:062x}",
        "effect": effect,
    }


def seed(task_id: int, due_ledger: int) -> TaskSeed:
    return TaskSeed(task_id, "shard-1", INTERVAL, CLOCK.close_time(due_ledger) - INTERVAL)


def figures(seeds: list[TaskSeed], execs: list[dict[str, Any]], window=(1000, 1100), end=1110):
    return lateness(
        seeds=seeds, executions=execs, clock=CLOCK, window=window, end_ledger=end, open_after=10
    )


class TestPercentile:
    def test_nearest_rank(self) -> None:
        values = list(range(1, 101))
        assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50, 95, 99, 100]
        assert percentile([7], 99) == 7
        assert percentile([], 50) is None

    def test_one_outlier_in_a_hundred_is_the_max_not_the_p99(self) -> None:
        values = [1] * 99 + [30]
        assert (percentile(values, 99), percentile(values, 100)) == (1, 30)


class TestLateness:
    def test_repeat_lateness_counts_from_the_previous_execution_plus_interval(self) -> None:
        # first due 1010, executed 1011 (first: 1); next due 1011 + 12 = 1023, executed 1026 (3)
        out = figures([seed(1, 1010)], [ex(1, 1011), ex(1, 1026)])
        assert out["first"]["samples"] == 1 and out["first"]["max"] == 1
        assert out["repeat"]["samples"] == 1 and out["repeat"]["max"] == 3

    def test_only_windows_opening_inside_the_window_count(self) -> None:
        # due 1023 and 1035: the window ends at 1030, so only the first repeat counts
        out = figures([seed(1, 1010)], [ex(1, 1011), ex(1, 1024), ex(1, 1036)], window=(1000, 1030))
        assert out["repeat"]["samples"] == 1 and out["repeat"]["histogram"] == {"1": 1}

    def test_wasted_effects_are_not_executions(self) -> None:
        out = figures([seed(1, 1010)], [ex(1, 1011), ex(1, 1015, "noop_not_due"), ex(1, 1024)])
        assert out["repeat"]["histogram"] == {"1": 1}

    def test_window_left_open_past_the_bound_is_never_executed(self) -> None:
        # executed at 1011, next due 1023, nothing until the end at 1110
        out = figures([seed(1, 1010), seed(2, 1010)], [ex(1, 1011), ex(2, 1011), ex(2, 1024)])
        assert out["never_executed"] == 2  # task 1 from 1023, task 2 from 1036
        assert {w["task_id"] for w in out["never_executed_windows"]} == {1, 2}

    def test_window_opened_just_before_the_end_is_not_yet_missed(self) -> None:
        out = figures([seed(1, 1095)], [ex(1, 1096)], end=1110)  # next due 1108
        assert out["never_executed"] == 0

    def test_task_never_executed_at_all_is_listed(self) -> None:
        out = figures([seed(1, 1010), seed(2, 1010)], [ex(1, 1011)], window=(1000, 1010), end=1030)
        assert out["tasks_without_execution"] == [2]
        assert out["never_executed"] == 1  # task 2's first window; task 1's next is past 1010


class TestTargets:
    def test_all_met(self) -> None:
        out = figures([seed(1, 1010)], [ex(1, 1011), ex(1, 1024), ex(1, 1037)], end=1040)
        figs = target_figures(out, wasted=0, doubled=0, targets={"p99": 5, "max": 10})
        assert all(f["met"] for f in figs.values())
        assert target_violations(figs) == []

    def test_each_miss_is_a_line(self) -> None:
        out = figures([seed(1, 1010)], [ex(1, 1011), ex(1, 1040)], end=1045)  # 17 late
        figs = target_figures(out, wasted=2, doubled=1, targets={"p99": 5, "max": 10})
        assert target_violations(figs) == [
            "lateness_p99 17 (target <= 5)",
            "lateness_max 17 (target <= 10)",
            "wasted 2 (target <= 0)",
            "doubled 1 (target <= 0)",
        ]

    def test_no_repeat_execution_at_all_misses_the_lateness_targets(self) -> None:
        out = figures([seed(1, 1010)], [], window=(1000, 1005), end=1006)
        figs = target_figures(out, wasted=0, doubled=0, targets={"p99": 5, "max": 10})
        assert not figs["lateness_p99"]["met"] and not figs["lateness_max"]["met"]


class TestHostileParams:
    def test_the_issue_figures(self) -> None:
        p = hostile_params()
        # 4 shards x 5 source accounts (the keeper's and 4 channels); 120 tasks every 12 ledgers
        assert (p.shards, p.channels + 1, p.tasks, p.hot, p.hot_interval) == (4, 5, 120, 120, 12)
        assert p.mix == HOSTILE_MIX and p.mix is not HOSTILE_MIX
        assert (p.kill_every, p.stop_every, p.faults) == (0, 0, False)

    def test_overrides_and_none_keeps_the_preset(self) -> None:
        p = hostile_params(kill_every=5.0, shards=None, duration=30.0)
        assert (p.kill_every, p.shards, p.duration) == (5.0, 4, 30.0)
