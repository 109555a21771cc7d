"""Following the contract's events from call to call: the position, deduplication, and when
a full re-read is needed (with the reason)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shard_worker.errors import RpcMalformedError, RpcResponseError, RpcTransportError
from shard_worker.eventsync import EventSync, Position, window_reason
from tests.support.getevents import CONTRACT, answer, event, window_end


def range_error(oldest: int, latest: int) -> RpcResponseError:
    return RpcResponseError(
        "getEvents", -32600, f"startLedger must be within the ledger range: {oldest} - {latest}"
    )


class TestEventSync:
    def test_a_new_follower_needs_a_full_read(self) -> None:
        sync = EventSync(CONTRACT)
        assert sync.rescan_reason and "first start" in sync.rescan_reason
        with pytest.raises(RuntimeError):
            sync.request()

    def test_after_a_scan_it_starts_at_the_scan_ledger_then_carries_the_cursor(self) -> None:
        sync = EventSync(CONTRACT, limit=50)
        sync.start_at(100)
        assert sync.rescan_reason is None
        assert sync.request()["startLedger"] == 100
        batch = sync.accept(answer([event(100, 1, "TaskRegistered", 9)], 101))
        assert batch.ids == {9}
        assert sync.position == Position(101, window_end(101))
        params = sync.request()
        assert "startLedger" not in params and params["pagination"]["cursor"] == window_end(101)
        # the next answer repeats an event (a client retry, say): deduplicated
        again = sync.accept(
            answer([event(100, 1, "TaskRegistered", 9), event(102, 1, "GasDeposited", 9)], 102)
        )
        assert again.ids == {9} and again.duplicates == 1 and again.events == 1

    def test_only_recent_event_ids_are_remembered(self) -> None:
        sync = EventSync(CONTRACT, recent_ids=2)
        sync.start_at(1)
        evs = [event(5, i, "GasDeposited", i) for i in range(1, 5)]
        sync.accept(answer(evs, 5))
        assert sync.accept(answer(evs[2:], 5)).duplicates == 2
        assert sync.accept(answer(evs[:1], 5)).duplicates == 0  # forgotten: behind the cursor

    def test_a_range_error_below_the_range_drops_the_position(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        reason = sync.fail(range_error(500, 1000))
        assert reason == sync.rescan_reason
        assert "older than the RPC's oldest ledger 500" in reason and "retention 501" in reason
        assert sync.position is None

    def test_a_lagging_node_is_not_a_failure(self) -> None:
        sync = EventSync(CONTRACT, lag_tolerance=10)
        sync.start_at(1005)
        assert sync.fail(range_error(500, 1000)) is None
        assert sync.position == Position(1005) and sync.rescan_reason is None

    def test_far_ahead_of_the_node_is_a_reset_network(self) -> None:
        sync = EventSync(CONTRACT, lag_tolerance=10)
        sync.start_at(5000)
        reason = sync.fail(range_error(1, 20))
        assert reason and "ahead of the RPC's latest ledger 20" in reason

    def test_any_other_failure_drops_the_position_by_default(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        reason = sync.fail(RpcTransportError("getEvents", "timed out after 4 attempts"))
        assert reason == "getEvents failed: getEvents: timed out after 4 attempts"
        assert sync.position is None

    def test_failures_can_be_tolerated_a_few_times_in_a_row(self) -> None:
        sync = EventSync(CONTRACT, rescan_after_failures=3)
        sync.start_at(100)
        err = RpcResponseError("getEvents", -32098, "request queue full")
        assert sync.fail(err) is None and sync.fail(err) is None
        sync.accept(answer([], 101))  # a success resets the count
        assert sync.fail(err) is None and sync.fail(err) is None
        reason = sync.fail(err)
        assert reason and reason.startswith("getEvents failed 3 times in a row")

    def test_a_malformed_answer_is_a_failure(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        with pytest.raises(RpcMalformedError):
            sync.accept({"events": "nope", "cursor": "x", "latestLedger": 3})
        assert sync.rescan_reason and "events is not a list" in sync.rescan_reason

    def test_an_answer_older_than_the_position_start_is_not_trusted(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        sync.accept(answer([], 300, oldest=200))
        assert sync.position is None and "older than the RPC's oldest ledger 200" in str(
            sync.rescan_reason
        )

    def test_resume_within_retention(self) -> None:
        sync = EventSync(CONTRACT)
        pos = Position(900, window_end(900))
        assert sync.resume(pos, oldest_ledger=500, latest_ledger=1000) is None
        assert sync.request()["pagination"]["cursor"] == window_end(900)

    def test_resume_after_a_gap_longer_than_retention(self) -> None:
        sync = EventSync(CONTRACT)
        reason = sync.resume(Position(100, window_end(100)), oldest_ledger=500, latest_ledger=1000)
        assert reason and reason.startswith("restart: the events position (ledger 100)")
        assert sync.position is None

    def test_resume_on_a_network_behind_the_position(self) -> None:
        sync = EventSync(CONTRACT, lag_tolerance=2)
        assert sync.resume(Position(1002), oldest_ledger=1, latest_ledger=1000) is None
        sync2 = EventSync(CONTRACT, lag_tolerance=2)
        reason = sync2.resume(Position(1003), oldest_ledger=1, latest_ledger=1000)
        assert reason and "reset network" in reason

    def test_check_window_drops_a_position_that_fell_out_of_retention(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        assert sync.check_window(50, 200) is None
        reason = sync.check_window(101, 17_380)
        assert reason and "retention 17280 ledgers" in reason


def test_window_reason_inside_the_range_is_none() -> None:
    assert window_reason(500, 500, 1000) is None
    assert window_reason(1000, 500, 1000) is None


def test_the_sync_modules_load_without_stellar_sdk_or_pydantic() -> None:
    """They run in the worker process: stellar-sdk costs ~50 MB of RSS there, pydantic 19."""
    code = (
        "import sys\n"
        "import shard_worker.taskstate, shard_worker.dueindex, shard_worker.eventsync\n"
        "import shard_worker.eventwire\n"
        "import shard_worker.cursorstore, shard_worker.budget, shard_worker.sweep\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('stellar_sdk', 'pydantic'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
