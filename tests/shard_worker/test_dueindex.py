"""The due-time index: which ids are due at a close time, moves, lazy deletion, size."""

from __future__ import annotations

import random
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shard_worker.dueindex import NOT_INDEXED, DueIndex

T0 = 1_700_000_000  # a realistic ledger close time


class TestPopDue:
    def test_nothing_is_due_in_an_empty_index(self) -> None:
        index = DueIndex(1, 10)
        assert index.pop_due(T0) == [] and len(index) == 0 and index.next_due() is None

    def test_due_means_due_time_at_or_before_close_time(self) -> None:
        index = DueIndex(1, 3)
        index.set(1, T0)
        index.set(2, T0 + 1)
        index.set(3, T0 - 100)
        assert index.pop_due(T0) == [3, 1]
        assert index.pop_due(T0) == []
        assert index.pop_due(T0 + 1) == [2]

    def test_popped_ids_leave_the_index_until_set_again(self) -> None:
        index = DueIndex(1, 2)
        index.set(1, T0)
        assert index.pop_due(T0) == [1]
        assert 1 not in index and index.due_of(1) is None and len(index) == 0
        index.set(1, T0 + 60)
        assert 1 in index and index.due_of(1) == T0 + 60
        assert index.pop_due(T0 + 59) == [] and index.pop_due(T0 + 60) == [1]

    def test_most_overdue_first_across_coarse_and_fine_buckets(self) -> None:
        index = DueIndex(1, 5, coarse_s=16)
        dues = {1: T0 + 500, 2: T0 + 3, 3: T0 + 40, 4: T0 - 1000, 5: T0 + 17}
        for task_id, due in dues.items():
            index.set(task_id, due)
        assert index.pop_due(T0 + 1000) == [4, 2, 5, 3, 1]

    def test_far_future_and_wrapped_dues(self) -> None:
        index = DueIndex(1, 3)
        index.set(1, 0)  # a wrapped last_run + interval: due at once
        index.set(2, 2**63)
        index.set(3, NOT_INDEXED)  # due only at 2**64 - 1: never
        assert 3 not in index
        assert index.pop_due(T0) == [1]
        assert index.pop_due(2**63 - 1) == [] and index.pop_due(2**63) == [2]

    def test_a_time_jump_far_ahead_pops_everything_without_walking_the_gap(self) -> None:
        index = DueIndex(1, 2, coarse_s=1)
        index.set(1, 5)
        index.set(2, T0)
        t = time.perf_counter()
        assert index.pop_due(T0) == [1, 2]
        assert time.perf_counter() - t < 0.5  # not one step per second of the gap


class TestMoves:
    def test_moving_a_task_later_hides_its_old_due_time(self) -> None:
        index = DueIndex(1, 1)
        index.set(1, T0)
        index.set(1, T0 + 3600)  # another keeper ran it: the re-read moved it
        assert index.pop_due(T0 + 10) == []
        assert index.pop_due(T0 + 3600) == [1]

    def test_moving_a_task_earlier_makes_it_due_sooner(self) -> None:
        index = DueIndex(1, 1)
        index.set(1, T0 + 5000)
        index.set(1, T0 + 5)
        assert index.pop_due(T0 + 5) == [1]
        assert index.pop_due(T0 + 5000) == []

    def test_moving_away_and_back_yields_the_id_once(self) -> None:
        index = DueIndex(1, 1, coarse_s=8)
        for due in (T0, T0 + 100, T0, T0 + 3, T0):
            index.set(1, due)
        assert index.pop_due(T0 + 1000) == [1]
        assert len(index) == 0

    def test_discard_removes_and_is_idempotent(self) -> None:
        index = DueIndex(1, 2)
        index.set(1, T0)
        index.set(2, T0)
        index.discard(1)
        index.discard(1)
        assert len(index) == 1 and index.pop_due(T0) == [2]

    def test_setting_the_same_due_twice_stores_one_copy(self) -> None:
        index = DueIndex(1, 1)
        index.set(1, T0)
        index.set(1, T0)
        assert index.stored == 1 and len(index) == 1

    def test_ids_outside_the_range_raise_and_ensure_grows_it(self) -> None:
        index = DueIndex(10, 2)
        with pytest.raises(IndexError):
            index.set(12, T0)
        with pytest.raises(IndexError):
            index.set(9, T0)
        index.ensure(20)
        index.set(20, T0)
        assert index.pop_due(T0) == [20]

    def test_stale_copies_are_compacted_away(self) -> None:
        index = DueIndex(1, 10)
        for step in range(3000):  # each move leaves a stale copy behind
            for task_id in range(1, 11):
                index.set(task_id, T0 + 10 * step + task_id)
        assert len(index) == 10
        assert index.stored <= 2 * 10 + 4096 + 1
        index.compact()
        assert index.stored == 10
        assert index.pop_due(T0 + 10**6) == list(range(1, 11))


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["set", "discard", "pop"]),
            st.integers(1, 20),
            st.integers(0, 5000),
        ),
        max_size=200,
    ),
    coarse=st.sampled_from([1, 7, 64, 1024]),
)
def test_agrees_with_a_plain_dict_model(ops: list[tuple[str, int, int]], coarse: int) -> None:
    index = DueIndex(1, 20, coarse_s=coarse)
    model: dict[int, int] = {}
    now = 0
    for op, task_id, value in ops:
        if op == "set":
            index.set(task_id, value)
            model[task_id] = value
        elif op == "discard":
            index.discard(task_id)
            model.pop(task_id, None)
        else:
            now = max(now, value)  # close times never go backwards
            got = index.pop_due(now)
            want = sorted((d, i) for i, d in model.items() if d <= now)
            assert [d for d, _ in want] == [model[i] for i in got]
            assert sorted(got) == sorted(i for _, i in want)
            for i in got:
                del model[i]
        assert len(index) == len(model)
        for i in range(1, 21):
            assert index.due_of(i) == model.get(i)


class TestScale:
    def test_250k_tasks_fill_pop_and_stay_compact(self) -> None:
        n = 250_000
        rng = random.Random(12)
        # intervals from a minute to a month: the spread that would make one bucket per task
        dues = [T0 + rng.randrange(60, 30 * 86_400) for _ in range(n)]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            t = time.perf_counter()
            index = DueIndex(1, n)
            for task_id, due in enumerate(dues, 1):
                index.set(task_id, due)
            fill_s = time.perf_counter() - t
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        per_task = (after - before) / n
        # one ledger's worth of pops (5 s), then an hour of ledgers
        t = time.perf_counter()
        first = index.pop_due(T0 + 60 + 5)
        pop_s = time.perf_counter() - t
        popped = len(first)
        for ledger in range(1, 721):
            popped += len(index.pop_due(T0 + 65 + 5 * ledger))
        want = sum(1 for d in dues if d <= T0 + 65 + 5 * 720)
        print(
            f"DueIndex: {per_task:.1f} bytes a task, fill {fill_s:.2f} s, "
            f"first pop {pop_s * 1e3:.2f} ms, {popped} popped in an hour of ledgers"
        )
        assert popped == want
        assert per_task < 24
        assert len(index) == n - popped
