"""How late the keeper is (issue 15): tasks due now, the oldest overdue in ledgers, and the
``execution_delay_ledgers`` histogram, in the bookkeeping and from a keeper on a real devnet."""

from __future__ import annotations

import asyncio

from devnet.process import DevnetProcess
from shard_worker.lateness import DEFAULT_LEDGER_SECONDS, Lateness, reported_due
from sorotask_core.exitcodes import ExitCode
from sorotask_core.stats import FIELDS_BY_NAME, cumulative
from tests.support.keeper import Keys, RecordingReporter, make_spec, run_until

DELAY = FIELDS_BY_NAME["execution_delay_ledgers"]
LONG = 10**7


class TestBookkeeping:
    def test_due_now_and_oldest_overdue_from_one_read(self) -> None:
        lt = Lateness()
        # ledger 100 closes at t=1000 (5 s ledgers assumed): due at 1000 -> ledger 100,
        # due at 980 -> ledger 96, due at 983 -> ledger 97 (the first closing at or after)
        lt.read(100, 1000, [(1000, 1), (980, 2), (983, 3)], busy=())
        assert (lt.due_now, lt.oldest_overdue_ledgers) == (3, 4)
        assert lt.due_ledger(983) == 97 and lt.due_ledger(985) == 97
        lt.read(101, 1005, [], busy=())
        assert (lt.due_now, lt.oldest_overdue_ledgers) == (0, 0)

    def test_the_ledger_period_is_learnt(self) -> None:
        lt = Lateness()
        assert lt.ledger_seconds == DEFAULT_LEDGER_SECONDS
        lt.read(10, 100, [], busy=())
        lt.read(20, 160, [(100, 7)], busy=())  # 6 s ledgers
        assert lt.ledger_seconds == 6.0
        assert lt.oldest_overdue_ledgers == 10

    def test_execution_delay_is_observed_once_for_a_known_due_time(self) -> None:
        lt = Lateness()
        lt.read(100, 1000, [(990, 5), (1000, 6)], busy=())
        hist: dict[str, int] = {}
        lt.read(101, 1005, [], busy={5})  # 5 in flight keeps its due time; 6 is gone
        assert lt.executed(5, 103, hist) == 5  # due at ledger 98, executed in 103
        assert lt.executed(5, 104, hist) is None  # counted once
        assert lt.executed(6, 103, hist) is None  # due time no longer known
        assert lt.executed(7, "x", hist) is None
        assert hist == {"5": 1, "sum": 5}


class TestNeverRunTasks:
    """A task registered with last_run 0 is due since 1970 by the contract's rule: its
    lateness counts from the read that first found it due, not from 1970 (which made
    "oldest overdue" 359 million ledgers in the demo and put every first execution past the
    delay histogram's last bucket)."""

    def test_a_never_run_task_is_due_from_the_ledger_that_found_it(self) -> None:
        assert reported_due(60, 60, 1_000_000) == 1_000_000  # last_run 0
        assert reported_due(999_060, 60, 1_000_000) == 999_060  # ran at 999_000
        assert reported_due(5, 60, 1_000_000) == 1_000_000  # last_run + interval wrapped

    def test_its_first_due_time_is_kept_while_it_stays_due(self) -> None:
        lt = Lateness()
        lt.read(100, 1000, [(reported_due(60, 60, 1000), 9)], busy=())
        assert lt.oldest_overdue_ledgers == 0
        lt.read(102, 1010, [(reported_due(60, 60, 1010), 9)], busy=())  # still waiting
        assert lt.oldest_overdue_ledgers == 2
        hist: dict[str, int] = {}
        assert lt.executed(9, 103, hist) == 3

    def test_a_task_that_ran_keeps_its_own_due_time(self) -> None:
        lt = Lateness()
        lt.read(100, 1000, [(990, 4)], busy=())
        lt.read(101, 1005, [(990, 4)], busy=())
        assert lt.oldest_overdue_ledgers == 3  # due at ledger 98


class TestKeeperOnDevnet:
    def test_reports_due_now_oldest_overdue_and_each_executions_delay(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        """Tasks seeded 20 ledgers overdue: the first cycle says so; each execution's delay
        matches the devnet's own record of the ledger it landed in."""
        _keeper, ref = keys.new()
        latest = devnet.rpc("getLatestLedger")  # one answer: sequence and close time agree
        seq0, close0 = int(latest["sequence"]), int(latest["closeTime"])
        interval = 3600
        due_time = close0 - 20 * 5  # due since ledger seq0 - 20
        first, last = devnet.seed_tasks(count=4, interval=interval, last_run=due_time - interval)
        ids = list(range(first, last + 1))
        spec = make_spec(devnet, ref, range_first=first, range_last=last)
        rep = RecordingReporter()

        def done() -> bool:
            return len(devnet.executions(ids)) >= len(ids)

        code = asyncio.run(run_until(spec, rep, done, limit_s=30, settle=1.0))
        assert code == ExitCode.OK
        first_read = next(c for c in rep.cycles if c.new_ledger and not c.cycle_error)
        assert first_read.due_now == 4
        overdue = first_read.ledger - (seq0 - 20)
        assert first_read.oldest_overdue_ledgers == overdue
        last_read = [c for c in rep.cycles if c.new_ledger and not c.cycle_error][-1]
        assert last_read.due_now == 0 and last_read.oldest_overdue_ledgers == 0
        # the cycle counters summed over cycles would say more than 4
        assert sum(c.due for c in rep.cycles) >= 4

        hist: dict[str, int] = {}
        for c in rep.cycles:
            for k, v in c.execution_delay_ledgers.items():
                hist[k] = hist.get(k, 0) + v
        record = devnet.executions(ids)
        assert {e["effect"] for e in record} == {"executed"}
        expected = [e["ledger"] - (seq0 - 20) for e in record]
        assert hist["sum"] == sum(expected) and min(expected) >= 20
        buckets, _ = cumulative(DELAY, hist)
        assert buckets[-1] == ("+Inf", 4)
        assert dict(buckets)["10.0"] == 0 and dict(buckets)["50.0"] == 4  # all >= 20
