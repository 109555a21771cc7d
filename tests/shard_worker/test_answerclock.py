"""The newest ledger as the submitter's answers tell it, beside the read loop's clock (pure)."""

from __future__ import annotations

import time

from shard_worker.answerclock import AnswerClock, answer_ledger
from shard_worker.context import Tally
from shard_worker.ledger import Latest, LedgerClock
from tests.support.fake_rpc import FakeRpc


def clock_at(sequence: int, close: int) -> LedgerClock:
    clock = LedgerClock(FakeRpc({}), Tally())  # type: ignore[arg-type]
    clock.newest, clock.newest_seen_at = Latest(sequence, close), 1.0
    return clock


def answer(sequence: object, close: object) -> dict[str, object]:
    return {"status": "NOT_FOUND", "latestLedger": sequence, "latestLedgerCloseTime": close}


class TestAnswerClock:
    def test_an_answer_ahead_of_the_read_loop_is_the_newest(self) -> None:
        a = AnswerClock(clock_at(10, 1_000))
        a.saw(answer(11, "1005"))
        newest, seen_at = a.newest_seen()
        assert newest is not None and (newest.sequence, newest.close_time) == (11, 1_005)
        assert seen_at > 1.0
        assert a.clock.newest is not None and a.clock.newest.sequence == 10  # left alone

    def test_the_read_loop_ahead_wins_and_a_lagging_answer_teaches_nothing(self) -> None:
        a = AnswerClock(clock_at(12, 1_010))
        a.saw(answer(11, 1_005))
        assert a.newest() is a.clock.newest
        a.saw(answer(13, 1_015))
        a.saw(answer(12, 1_010))  # behind the newest answer: ignored
        newest = a.newest()
        assert newest is not None and newest.sequence == 13

    def test_the_same_ledger_counts_as_seen_at_the_later_report(self) -> None:
        a = AnswerClock(clock_at(10, 1_000))
        a.saw(answer(10, 1_000))
        _, seen_at = a.newest_seen()
        assert seen_at >= time.monotonic() - 5 and seen_at > 1.0

    def test_missing_or_garbled_fields_are_ignored(self) -> None:
        a = AnswerClock(clock_at(10, 1_000))
        for bad in (answer(None, 1_005), answer(11, "soon"), answer(True, 1_005), {}):
            a.saw(bad)
        assert a.seen is None
        assert answer_ledger({"latestLedger": "12"}) == 12
        assert answer_ledger({"latestLedger": [12]}) == 0
