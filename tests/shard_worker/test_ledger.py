"""The keeper's clock (shard_worker.ledger): a stale latest ledger never sets a transaction's
time bound; scripted fake RPC answers, no network."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shard_worker.context import Tally
from shard_worker.errors import RpcMalformedError
from shard_worker.ledger import Latest, LedgerClock
from tests.support.fake_rpc import FakeRpc


def latest(seq: int, close: int) -> dict[str, Any]:
    return {"sequence": seq, "closeTime": str(close)}


def make_clock(rpc: FakeRpc) -> tuple[LedgerClock, Tally]:
    tally = Tally()
    return LedgerClock(rpc, tally), tally  # type: ignore[arg-type]


class TestStaleLedger:
    def test_a_stale_answer_never_sets_the_time_bound_and_is_counted(self) -> None:
        rpc = FakeRpc(
            {
                "getLatestLedger": [
                    latest(100, 5_000),
                    latest(60, 4_800),  # a lagging node
                    latest(101, 5_005),
                    latest(101, 4_000),  # same sequence, older close time: also stale
                ]
            }
        )
        clock, tally = make_clock(rpc)

        async def go() -> list[tuple[int, int]]:
            out = []
            for _ in range(4):
                got = await clock.for_tx()
                out.append((got.sequence, got.close_time))
            return out

        assert asyncio.run(go()) == [(100, 5_000), (100, 5_000), (101, 5_005), (101, 5_005)]
        assert tally.totals["stale_ledger_answers"] == 2
        assert rpc.noted == ["getLatestLedger", "getLatestLedger"]

    def test_latest_reports_the_answer_but_keeps_the_newest(self) -> None:
        rpc = FakeRpc({"getLatestLedger": [latest(100, 5_000), latest(60, 4_800)]})
        clock, tally = make_clock(rpc)
        first = asyncio.run(clock.latest())
        second = asyncio.run(clock.latest())
        assert (second.sequence, second.close_time) == (60, 4_800)  # as answered
        assert clock.newest is first
        assert clock.is_stale(second) and not clock.is_stale(first)
        assert tally.totals["stale_ledger_answers"] == 1

    @pytest.mark.parametrize(
        "answer", [latest(0, 5), latest(5, 0), {"sequence": 5}, {"closeTime": 5}, [1], "x"]
    )
    def test_garbled_answers_raise(self, answer: Any) -> None:
        clock, _ = make_clock(FakeRpc({"getLatestLedger": [answer]}))
        with pytest.raises(RpcMalformedError):
            asyncio.run(clock.latest())
        assert clock.newest is None


class TestLatest:
    def test_older_than(self) -> None:
        assert Latest(5, 100).older_than(Latest(6, 100))
        assert Latest(6, 99).older_than(Latest(6, 100))
        assert not Latest(6, 100).older_than(Latest(6, 100))
        assert not Latest(7, 101).older_than(Latest(6, 100))
        assert not Latest(1, 1).older_than(None)

    def test_last_read_sequence(self) -> None:
        clock, _ = make_clock(FakeRpc({}))
        assert clock.last_read_sequence == -1
        clock.last_read = Latest(42, 1)
        assert clock.last_read_sequence == 42


class TestWaitNewer:
    def test_a_waiter_wakes_when_a_newer_ledger_is_noted_and_not_for_the_same_one(self) -> None:
        clock, _ = make_clock(FakeRpc({}))

        async def go() -> tuple[float, float, float]:
            loop = asyncio.get_running_loop()
            clock.note(Latest(10, 100))
            t0 = loop.time()
            await clock.wait_newer(9, 5.0)  # already newer: at once
            t1 = loop.time()
            loop.call_later(0.05, clock.note, Latest(10, 100))  # the same ledger: no wake
            loop.call_later(0.15, clock.note, Latest(11, 105))
            await clock.wait_newer(10, 5.0)
            t2 = loop.time()
            await clock.wait_newer(11, 0.1)  # nothing newer: the time limit
            return t1 - t0, t2 - t1, loop.time() - t2

        at_once, woken, limited = asyncio.run(go())
        assert at_once < 0.05
        assert 0.12 <= woken < 1.0
        assert 0.09 <= limited < 1.0
        assert clock._waiters == []

    def test_unpace_wakes_the_waiters_and_ends_the_pacing(self) -> None:
        # a stop: the read loop no longer polls, so a confirmation must not wait for it
        clock, _ = make_clock(FakeRpc({}))
        clock.paced = True

        async def go() -> float:
            loop = asyncio.get_running_loop()
            clock.note(Latest(10, 100))
            t0 = loop.time()
            loop.call_later(0.05, clock.unpace)
            await clock.wait_newer(10, 5.0)
            return loop.time() - t0

        assert asyncio.run(go()) < 1.0
        assert not clock.paced and clock._waiters == []

    def test_a_stale_note_changes_nothing(self) -> None:
        clock, _ = make_clock(FakeRpc({}))
        clock.note(Latest(10, 100))
        clock.note(Latest(9, 95))
        assert clock.newest is not None and clock.newest.sequence == 10
