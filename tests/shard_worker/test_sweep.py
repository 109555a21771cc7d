"""The background sweep plan: every id once per round, spread evenly, in whole batches."""

from __future__ import annotations

import pytest

from shard_worker.entrybatches import spare_room
from shard_worker.sweep import SweepPlan


def run_round(plan: SweepPlan, first_ledger: int, ledgers: int) -> dict[int, range]:
    """Read everything the plan hands out at each ledger; returns what was read when."""
    read: dict[int, range] = {}
    for ledger in range(first_ledger, first_ledger + ledgers):
        r = plan.next_slice(ledger)
        if r:
            read[ledger] = r
            plan.done(r.stop)
    return read


class TestOneRound:
    def test_every_id_once_per_round_in_full_batches_about_one_request_a_ledger(self) -> None:
        n, every = 125_000, 720
        plan = SweepPlan(every, batch=200)
        plan.start(1000, n)
        read = run_round(plan, 1000, every)
        positions = [p for r in read.values() for p in r]
        assert sorted(positions) == list(range(n))  # each exactly once
        sizes = [len(r) for r in read.values()]
        assert all(s == 200 for s in sizes[:-1]) and 0 < sizes[-1] <= 200
        assert len(read) == 625  # ceil(125000 / 200) requests in the round
        assert max(read) == 1000 + every - 1  # the round ends on its last ledger
        # evenly spread: never more than one request in a ledger, no long silence
        gaps = [b - a for a, b in zip(sorted(read), sorted(read)[1:], strict=False)]
        assert max(gaps) <= 2

    def test_a_small_shard_reads_once_within_the_round(self) -> None:
        plan = SweepPlan(720, batch=200)
        plan.start(1, 50)
        read = run_round(plan, 1, 720)
        assert list(read.values()) == [range(0, 50)]

    def test_nothing_before_start_or_with_no_ids(self) -> None:
        plan = SweepPlan(10)
        assert plan.next_slice(5) == range(0)
        plan.start(5, 0)
        assert all(not plan.next_slice(ledger) for ledger in range(5, 40))


class TestFallingBehind:
    def test_unread_positions_stay_pending_and_are_read_later_in_batches(self) -> None:
        plan = SweepPlan(100, batch=10)
        plan.start(0, 1000)
        assert plan.next_slice(0) == range(0, 10)  # not done: the budget said no
        assert plan.behind(5) == 60
        r = plan.next_slice(5)
        assert r == range(0, 60)
        plan.done(30)  # only part of it could be read
        assert plan.next_slice(5) == range(30, 60)

    def test_max_items_caps_one_call_to_whole_batches(self) -> None:
        plan = SweepPlan(100, batch=10)
        plan.start(0, 1000)
        assert plan.next_slice(49, max_items=25) == range(0, 20)
        assert plan.next_slice(49, max_items=5) == range(0, 5)

    def test_a_round_does_not_restart_before_its_ledgers_passed(self) -> None:
        plan = SweepPlan(10, batch=1)
        plan.start(0, 5)
        plan.done(5)  # everything read early
        assert plan.next_slice(9) == range(0) and plan.rounds == 0
        assert plan.next_slice(10) == range(0, 1) and plan.rounds == 1
        assert plan.round_start == 10

    def test_a_round_not_finished_does_not_restart(self) -> None:
        plan = SweepPlan(10, batch=1)
        plan.start(0, 5)
        plan.done(3)
        assert plan.next_slice(50) == range(3, 5) and plan.rounds == 0

    def test_a_stalled_keeper_starts_the_next_round_now_instead_of_catching_up(self) -> None:
        plan = SweepPlan(100, batch=10)
        plan.start(0, 1000)
        plan.done(1000)
        r = plan.next_slice(5_000)  # forty rounds later
        assert plan.round_start == 5_000 and plan.rounds == 1
        assert r == range(0, 10)  # one ledger's share, not the whole list


class TestIds:
    def test_new_ids_join_the_current_round(self) -> None:
        plan = SweepPlan(10, batch=1)
        plan.start(0, 10)
        read = run_round(plan, 0, 5)
        assert max(r.stop for r in read.values()) == 5
        plan.set_count(20)
        read = run_round(plan, 5, 5)
        assert max(r.stop for r in read.values()) == 20

    def test_a_shorter_list_clamps_the_position(self) -> None:
        plan = SweepPlan(10, batch=1)
        plan.start(0, 10)
        plan.done(8)
        plan.set_count(5)
        assert plan.position == 5
        with pytest.raises(ValueError):
            plan.done(6)

    @pytest.mark.parametrize("kw", [{"every_ledgers": 0}, {"batch": 0}])
    def test_bad_settings(self, kw: dict) -> None:
        with pytest.raises(ValueError):
            SweepPlan(**kw)


class TestSpare:
    """Sweep positions riding in the room a ledger's due read leaves (no request of their
    own while due work comes every ledger)."""

    def test_rides_along_every_ledger_and_covers_the_round_with_no_call_of_its_own(
        self,
    ) -> None:
        n, every = 125_000, 720  # 1M tasks over 8 shards: 174 positions a ledger
        plan = SweepPlan(every, batch=200)
        plan.start(1000, n)
        own_calls = 0
        for ledger in range(1000, 1000 + every):  # bounded: one round
            span = plan.spare(ledger, 200 - 20)  # a due read of 20 keys and the Counter
            if span:
                plan.done(span.stop)
            own = plan.next_slice(ledger)
            if own:
                own_calls += 1
                plan.done(own.stop)
        assert plan.position == n
        assert own_calls == 0

    def test_never_ahead_of_the_target_and_nothing_without_room(self) -> None:
        plan = SweepPlan(100, batch=200)
        plan.start(1, 1000)  # 10 positions a ledger
        assert plan.spare(1, 0) == range(0)
        assert plan.spare(1, 199) == range(0, 10)
        assert plan.spare(1, 4) == range(0, 4)  # no whole batch needed
        plan.done(4)
        assert plan.spare(2, 199) == range(4, 20)

    def test_too_little_room_leaves_a_backlog_for_whole_batches(self) -> None:
        plan = SweepPlan(10, batch=200)
        plan.start(1, 2000)  # 200 positions a ledger, room for 50
        calls = 0
        for ledger in range(1, 12):  # bounded: one round and a ledger for its last batch
            span = plan.spare(ledger, 50)
            plan.done(span.stop)
            own = plan.next_slice(ledger)
            if own:
                calls += 1
                plan.done(own.stop)
        assert plan.position == 2000
        assert calls >= 7  # the sweep's own requests carry what did not fit


class TestSpareRoom:
    @pytest.mark.parametrize(
        ("n", "counter", "room"),
        [
            (0, True, 0),
            (1, True, 198),
            (20, True, 179),
            (199, True, 0),
            (200, True, 199),
            (20, False, 180),
            (200, False, 0),
            (250, False, 150),
            (398, True, 1),
        ],
    )
    def test_keys_left_in_the_last_call(self, n: int, counter: bool, room: int) -> None:
        assert spare_room(n, counter=counter) == room
