"""The soak's bookkeeping (pure logic): the ledger clock, the workload plan, late-window
attribution, wasted/double executions, and the recovery invariants."""

from __future__ import annotations

from typing import Any

from sorotask.chaos.analysis import Cause, LedgerClock, TaskSeed, analyze
from sorotask.chaos.monkey import recovery_violations
from sorotask.chaos.params import ChaosParams, plan_tasks

CLOCK = LedgerClock(seq0=1000, t0=1_000_000, ledger_seconds=5)


def ex(task_id: int, ledger: int, effect: str = "executed") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "ledger": ledger,
        "timestamp": CLOCK.close_time(ledger),
        "keeper": "G",
        "tx_hash": f"{task_id:02x}{ledger:062x}",
        "effect": effect,
    }


def seed(task_id: int = 1, due_ledger: int = 1010, interval: int = 100, shard: str = "a"):
    return TaskSeed(task_id, shard, interval, CLOCK.close_time(due_ledger) - interval)


def run(seeds: list[TaskSeed], execs: list[dict[str, Any]], causes=(), end: int = 1030):
    return analyze(
        seeds=seeds,
        executions=execs,
        clock=CLOCK,
        causes=list(causes),
        end_ledger=end,
        late_ledgers=3,
        hold_ledgers=5,
    )


class TestLedgerClock:
    def test_due_time_maps_to_the_first_ledger_closing_at_or_after_it(self) -> None:
        assert CLOCK.first_ledger_at_or_after(1_000_000) == 1000
        assert CLOCK.first_ledger_at_or_after(1_000_001) == 1001
        assert CLOCK.first_ledger_at_or_after(1_000_005) == 1001
        assert CLOCK.first_ledger_at_or_after(0) == 1000
        assert CLOCK.close_time(1002) == 1_000_010


class TestAnalyzeDelays:
    def test_on_time_execution_has_no_late_window(self) -> None:
        a = run([seed()], [ex(1, 1011)], end=1012)
        assert a["executions"] == 1 and a["late_windows"] == []
        assert a["delay_ledgers"]["max"] == 1

    def test_undisturbed_late_execution_is_an_unexplained_violation(self) -> None:
        a = run([seed()], [ex(1, 1015)], end=1016)
        (w,) = a["late_violations"]
        assert w["verdict"] == "unexplained" and w["waited_ledgers"] == 5

    def test_late_window_during_its_shards_restart_is_attributed(self) -> None:
        kill = Cause("kill", "a", 1009, 1012, "pid 1")
        a = run([seed()], [ex(1, 1016)], [kill], end=1017)
        (w,) = a["late_windows"]
        assert w["verdict"] == "attributed" and w["causes"] == ["kill(pid 1)"]
        assert a["late_violations"] == []

    def test_restart_of_another_shard_does_not_excuse_it(self) -> None:
        kill = Cause("kill", "b", 1009, 1012)
        a = run([seed(shard="a")], [ex(1, 1016)], [kill], end=1017)
        assert a["late_violations"][0]["verdict"] == "unexplained"

    def test_fault_phase_excuses_every_shard_but_only_up_to_hold_plus_bound(self) -> None:
        fault = Cause("fault", None, 1008, 1011, "never_apply")
        ok = run([seed()], [ex(1, 1011 + 5 + 3)], [fault], end=1020)
        assert ok["late_violations"] == []
        too_late = run([seed()], [ex(1, 1011 + 5 + 4)], [fault], end=1021)
        assert too_late["late_violations"][0]["verdict"] == "beyond accounted window"

    def test_due_task_never_executed_is_a_late_window_at_the_end(self) -> None:
        a = run([seed()], [], end=1020)
        (w,) = a["late_violations"]
        assert w["executed_ledger"] is None and w["waited_ledgers"] == 10

    def test_task_due_just_before_the_end_is_not_judged(self) -> None:
        a = run([seed(due_ledger=1018)], [], end=1020)
        assert a["late_windows"] == []

    def test_next_window_starts_one_interval_after_the_execution(self) -> None:
        s = seed(interval=50)  # 10 ledgers
        a = run([s], [ex(1, 1011), ex(1, 1022)], end=1023)
        assert a["delay_ledgers"]["histogram"] == {"1": 2}


class TestAnalyzeWaste:
    def test_non_executed_effects_are_wasted(self) -> None:
        execs = [ex(1, 1011), ex(1, 1012, "noop_not_due"), ex(2, 1011, "unauthorized")]
        a = run([seed(1), seed(2)], execs, end=1013)
        assert a["wasted"]["noop_not_due"] == 1 and a["wasted"]["unauthorized"] == 1
        assert a["wasted_total"] == 2 and a["executions"] == 1

    def test_two_executions_within_one_interval_are_flagged(self) -> None:
        a = run([seed(interval=100)], [ex(1, 1011), ex(1, 1013)], end=1014)
        assert len(a["executed_twice_in_one_window"]) == 1

    def test_execution_of_an_unknown_task_is_reported(self) -> None:
        a = run([seed(1)], [ex(1, 1011), ex(99, 1011)], end=1012)
        assert a["foreign_task_ids"] == [99]

    def test_execution_off_the_ledger_clock_is_counted(self) -> None:
        bad = dict(ex(1, 1011), timestamp=CLOCK.close_time(1011) + 1)
        assert run([seed()], [bad], end=1012)["clock_mismatches"] == 1


class TestPlanTasks:
    def test_hot_tasks_recur_and_cold_ones_stream_at_the_rate(self) -> None:
        p = ChaosParams(tasks=200, hot=8, hot_interval=40, cold_rate=2.0, seed=1)
        calls = plan_tasks(p, now_ts=1_000_000, start_ledger_offset=10)
        assert len(calls) == 200 and all(c["count"] == 1 for c in calls)
        hot = [c for c in calls if c["interval"] == 40 * 5]
        assert len(hot) == 8
        due = sorted(c["last_run"] + c["interval"] for c in calls if c["interval"] != 200)
        assert due[0] == 1_000_000 + 10 * 5
        per_ledger: dict[int, int] = {}
        for d in due:
            per_ledger[d] = per_ledger.get(d, 0) + 1
        assert max(per_ledger.values()) == 2  # two cold tasks come due per ledger
        assert len({c["interval"] for c in calls}) == 2


class TestRecoveryViolations:
    def fig(self, **shard: Any) -> dict[str, Any]:
        s = {"kills": 2, "hung_stops": 1, "expected_restarts": 3, "restarts": 3, "state": "running"}
        s.update(shard)
        return {"not_recovered": [], "per_shard": {"a": s}}

    def test_matching_restarts_and_running_state_pass(self) -> None:
        assert recovery_violations(self.fig()) == []

    def test_extra_restart_is_a_violation(self) -> None:
        (v,) = recovery_violations(self.fig(restarts=4))
        assert "4 restarts, expected 3" in v

    def test_shard_not_running_at_the_end_is_a_violation(self) -> None:
        assert "ends in state failed" in recovery_violations(self.fig(state="failed"))[0]

    def test_unrecovered_action_is_a_violation(self) -> None:
        f = self.fig()
        f["not_recovered"] = [{"shard": "a", "kind": "kill", "pid": 5}]
        assert "did not recover" in recovery_violations(f)[0]
