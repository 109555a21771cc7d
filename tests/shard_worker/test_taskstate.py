"""The compact per-task state: due times as the contract computes them, flags, snapshots, size."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import pytest

from shard_worker.taskstate import (
    ALLOWED,
    GAS,
    KNOWN,
    MISSING,
    READ_ERROR,
    RESOLVER,
    U64_MASK,
    TaskState,
    due_time,
    entry_hash,
)
from sorotask_core.contract import TaskInfo

ME = b"\x00\x00\x00\x00" + b"\x01" * 32
OTHER = b"\x00\x00\x00\x00" + b"\x02" * 32


def record(state: TaskState, task_id: int, **kw: object) -> int:
    base: dict = {
        "interval": 60,
        "last_run": 1000,
        "gas_positive": True,
        "allowed": True,
        "has_resolver": False,
        "live_until": 10_000,
        "entry_hash": 7,
    }
    base.update(kw)
    return state.record(task_id, **base)


class TestDueTime:
    def test_due_is_last_run_plus_interval(self) -> None:
        assert due_time(1000, 60) == 1060

    def test_the_addition_wraps_at_64_bits_like_the_release_contract(self) -> None:
        assert due_time(U64_MASK, 1) == 0
        assert due_time(U64_MASK - 5, 10) == 4

    def test_a_wrapped_due_time_makes_the_task_due_at_once(self) -> None:
        state = TaskState(1, 1)
        due = record(state, 1, last_run=U64_MASK - 5, interval=10)
        assert due == 4
        assert state.skip_reason(1, ledger_time=100, ledger_seq=50) is None


class TestRecord:
    def test_a_new_state_knows_nothing(self) -> None:
        state = TaskState(10, 3)
        assert len(state) == 3 and state.last == 12
        assert [state.known(i) for i in (10, 11, 12)] == [False, False, False]
        assert state.skip_reason(11, 5000, 1) == "missing"

    def test_record_sets_due_interval_flags_and_hash(self) -> None:
        state = TaskState(1, 2)
        assert record(state, 2, has_resolver=True, entry_hash=-42) == 1060
        assert state.due(2) == 1060 and state.interval(2) == 60
        assert state.flags(2) == KNOWN | GAS | ALLOWED | RESOLVER
        assert state.same_entry(2, -42) and not state.same_entry(2, 41)
        assert not state.known(1)

    def test_record_info_derives_gas_and_whitelist_from_the_decoded_task(self) -> None:
        state = TaskState(1, 3)
        state.record_info(1, TaskInfo(60, 0, 5, (), False), ME, live_until=99, entry_hash=1)
        state.record_info(2, TaskInfo(60, 0, 0, (OTHER, ME), True), ME, live_until=99, entry_hash=2)
        state.record_info(3, TaskInfo(60, 0, -3, (OTHER,), False), ME, live_until=99, entry_hash=3)
        assert state.flags(1) == KNOWN | GAS | ALLOWED
        assert state.flags(2) == KNOWN | ALLOWED | RESOLVER
        assert state.flags(3) == KNOWN

    def test_values_outside_u64_are_refused(self) -> None:
        state = TaskState(1, 1)
        with pytest.raises(ValueError):
            record(state, 1, interval=U64_MASK + 1)
        with pytest.raises(ValueError):
            record(state, 1, last_run=-1)

    def test_ids_outside_the_range_raise(self) -> None:
        state = TaskState(5, 2)
        with pytest.raises(IndexError):
            state.due(4)
        with pytest.raises(IndexError):
            state.due(7)
        assert 5 in state and 6 in state and 7 not in state and 4 not in state

    def test_missing_and_read_error_forget_what_was_known(self) -> None:
        state = TaskState(1, 2)
        record(state, 1)
        record(state, 2)
        state.record_missing(1)
        state.record_error(2)
        assert state.flags(1) == MISSING and state.flags(2) == READ_ERROR
        assert state.skip_reason(1, 5000, 1) == "missing"
        assert state.skip_reason(2, 5000, 1) == "read_error"
        assert not state.same_entry(1, 7) and not state.same_entry(2, 7)
        assert not state.indexable(1) and not state.indexable(2)

    def test_our_execution_moves_due_to_close_time_plus_interval(self) -> None:
        state = TaskState(1, 1)
        record(state, 1)
        assert state.executed(1, 2000) == 2060
        assert state.due(1) == 2060
        assert not state.same_entry(1, 7)  # the entry changed: decode the next read

    def test_executing_an_unknown_task_is_refused(self) -> None:
        with pytest.raises(ValueError):
            TaskState(1, 1).executed(1, 2000)

    def test_gas_events_flip_the_gas_flag_only(self) -> None:
        state = TaskState(1, 1)
        record(state, 1, gas_positive=False)
        assert not state.indexable(1)
        state.set_gas(1, True)
        assert state.indexable(1) and state.flags(1) == KNOWN | GAS | ALLOWED
        state.set_gas(1, False)
        assert state.flags(1) == KNOWN | ALLOWED


class TestSkipReason:
    """The same order and meaning as shard_worker.due.skip_reason, plus archival."""

    def test_due_exactly_at_due_time(self) -> None:
        state = TaskState(1, 1)
        record(state, 1)
        assert state.skip_reason(1, 1060, 50) is None
        assert state.skip_reason(1, 1059, 50) == "not_due"

    def test_no_gas_comes_before_not_due(self) -> None:
        state = TaskState(1, 1)
        record(state, 1, gas_positive=False)
        assert state.skip_reason(1, 0, 50) == "no_gas"

    def test_not_whitelisted_only_once_due(self) -> None:
        state = TaskState(1, 1)
        record(state, 1, allowed=False)
        assert state.skip_reason(1, 0, 50) == "not_due"
        assert state.skip_reason(1, 5000, 50) == "not_whitelisted"

    def test_an_entry_whose_ttl_passed_is_archived_unless_executing_archived(self) -> None:
        state = TaskState(1, 1)
        record(state, 1, live_until=49)
        assert state.skip_reason(1, 5000, 50) == "archived"
        assert state.skip_reason(1, 5000, 50, execute_archived=True) is None
        state.set_live_until(1, 50)
        assert state.skip_reason(1, 5000, 50) is None

    def test_an_answer_without_live_until_counts_as_live_and_zero_as_archived(self) -> None:
        state = TaskState(1, 2)
        record(state, 1, live_until=None)
        record(state, 2, live_until=0)
        assert state.skip_reason(1, 5000, 10**6) is None
        assert state.skip_reason(2, 5000, 1) == "archived"


class TestGrowth:
    def test_ensure_adds_unknown_ids_and_keeps_the_old_ones(self) -> None:
        state = TaskState(1, 2)
        record(state, 2, entry_hash=99)
        assert state.ensure(5) == 3
        assert state.ensure(4) == 0
        assert len(state) == 5 and state.same_entry(2, 99)
        assert not state.known(5)

    def test_ids_with_selects_by_flags(self) -> None:
        state = TaskState(1, 4)
        record(state, 1)
        record(state, 2, gas_positive=False)
        state.record_missing(3)
        assert list(state.ids_with(KNOWN | GAS)) == [1]
        assert list(state.ids_with(KNOWN | GAS, KNOWN)) == [2]
        assert list(state.ids_with(0xFF, 0)) == [4]


class TestSnapshot:
    def test_dump_and_load_round_trip_every_field(self) -> None:
        state = TaskState(100, 4)
        record(state, 100, last_run=U64_MASK - 1, interval=U64_MASK, entry_hash=-(2**63))
        record(state, 101, allowed=False, has_resolver=True, live_until=None, entry_hash=2**63 - 1)
        state.record_missing(102)
        back = TaskState.load(state.dump())
        assert back.first == 100 and len(back) == 4
        for task_id in range(100, 104):
            assert back.flags(task_id) == state.flags(task_id)
            assert back.due(task_id) == state.due(task_id)
            assert back.interval(task_id) == state.interval(task_id)
            assert back.live_until(task_id) == state.live_until(task_id)
        assert back.same_entry(100, -(2**63)) and back.same_entry(101, 2**63 - 1)

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda b: b[:10],
            lambda b: b[:-1],
            lambda b: b + b"\0",
            lambda b: b"XXXX" + b[4:],
            lambda b: b[:-1] + b"\x80",  # an unknown flag in the last task
        ],
        ids=["no_header", "short", "long", "magic", "flags"],
    )
    def test_a_damaged_snapshot_is_refused(self, mangle: object) -> None:
        state = TaskState(1, 3)
        record(state, 1)
        with pytest.raises(ValueError):
            TaskState.load(mangle(state.dump()))  # type: ignore[operator]

    def test_a_snapshot_from_the_other_byte_order_loads(self) -> None:
        state = TaskState(1, 1)
        record(state, 1, last_run=0x0102030405060708, interval=1, entry_hash=-3, live_until=77)
        data = bytearray(state.dump())
        # rewrite it as the other byte order would have written it
        other = 1 if sys.byteorder == "little" else 0
        data[4] = other
        off = 24
        for size in (8, 8, 8, 4, 1):
            data[off : off + size] = bytes(reversed(data[off : off + size]))
            off += size
        back = TaskState.load(bytes(data))
        assert back.due(1) == 0x0102030405060709
        assert back.same_entry(1, -3) and back.live_until(1) == 77


class TestEntryHash:
    def test_stable_and_distinguishes_entries(self) -> None:
        assert entry_hash("AAAABgAAAAA=") == entry_hash("AAAABgAAAAA=")
        assert entry_hash("AAAABgAAAAA=") != entry_hash("AAAABgAAAAE=")
        assert -(2**63) <= entry_hash("x") < 2**63

    def test_same_value_in_every_process(self) -> None:
        # not the per-process salted str hash: another interpreter with another hash seed
        # computes the same values, so a saved snapshot's hashes stay valid after a restart
        code = (
            "from shard_worker.taskstate import entry_hash; "
            "print(entry_hash('AAAABgAAAAA='), hash('AAAABgAAAAA='))"
        )
        outs = [
            subprocess.run(
                [sys.executable, "-c", code],
                env={**os.environ, "PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout.split()
            for seed in ("1", "2")
        ]
        assert outs[0][1] != outs[1][1]  # the salted hash differs...
        assert outs[0][0] == outs[1][0] == str(entry_hash("AAAABgAAAAA="))  # ...ours does not


def _bytes_per_task(n: int) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        state = TaskState(1, n)
        for task_id in range(1, n + 1, 97):  # touch some slots: no lazy allocation tricks
            record(state, task_id)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert state.nbytes() == 29 * n
    return (after - before) / n


class TestFootprint:
    @pytest.mark.parametrize("n", [250_000, 1_000_000])
    def test_under_32_bytes_a_task(self, n: int) -> None:
        per_task = _bytes_per_task(n)
        print(f"TaskState: {per_task:.1f} bytes a task at {n} tasks")
        assert per_task < 32

    def test_growing_a_little_at_a_time_stays_compact(self) -> None:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            state = TaskState(1, 0)
            for last in range(1000, 200_001, 1000):  # the Counter rising a little at a time
                state.ensure(last)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(state) == 200_000
        assert (after - before) / 200_000 < 32
