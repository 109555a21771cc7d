"""Hedged requests: the policy (pure) and the race of copies (asyncio, scripted copies)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shard_worker.errors import RpcResponseError, RpcTransportError
from shard_worker.hedge import (
    AGAIN,
    HEDGEABLE,
    HOLD,
    STOP,
    WIN,
    AnswerWindow,
    HedgePolicy,
    Race,
    one_copy,
    race,
)

#: every race below ends within this (a bound on each test's loop)
LIMIT_S = 5.0


class TestAnswerWindow:
    def test_quantiles_and_failures_of_the_most_recent(self) -> None:
        w = AnswerWindow(size=4)
        assert w.quantile(0.5) is None and w.failure_rate() == 0.0
        for s, failed in ((0.5, True), (0.1, False), (0.3, False), (0.2, True)):
            w.add(s, failed)
        assert w.quantile(0.5) == 0.3 and w.quantile(0.0) == 0.1 and w.quantile(1.0) == 0.5
        assert w.failure_rate() == 0.5
        w.add(0.9)  # (0.5, failed) leaves: 0.1 0.2 0.3 0.9
        w.add(1.0)  # 0.1 leaves: 0.2 0.3 0.9 1.0
        assert len(w) == 4
        assert w.quantile(0.5) == 0.9
        assert w.failure_rate() == 0.25

    def test_size_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            AnswerWindow(size=0)


class TestHedgePolicy:
    def test_one_copy_is_no_hedging(self) -> None:
        p = HedgePolicy(1)
        assert not p.enabled
        assert not p.hedges("getLedgerEntries")

    def test_reads_are_hedged_sends_are_not(self) -> None:
        p = HedgePolicy(3)
        for method in ("getLedgerEntries", "simulateTransaction", "getTransaction", "getEvents"):
            assert method in HEDGEABLE and p.hedges(method)
        assert not p.hedges("sendTransaction")  # the submitter judges its copies itself
        assert not p.hedges("devnet_closeLedger")

    def test_a_worker_that_knows_nothing_hedges_after_the_start_delay(self) -> None:
        p = HedgePolicy(3, min_samples=4, start_delay_s=0.15)
        assert p.delay_s("getNetwork") == 0.15
        for _ in range(3):
            p.observe("getNetwork", 0.01)
        assert p.delay_s("getHealth") == 0.15  # three answers in all: still nothing known
        p.observe("getNetwork", 0.01)
        assert p.delay_s("getHealth") is None  # four healthy answers: no copies
        assert HedgePolicy(3, start_delay_s=None).delay_s("getNetwork") is None

    def test_a_healthy_method_is_not_hedged_by_time(self) -> None:
        p = HedgePolicy(3, min_samples=4, min_failure_rate=0.05)
        for s in (0.1, 0.2, 0.3, 0.4) * 10:
            p.observe("getEvents", s)
        assert p.delay_s("getEvents") is None  # never failed: no copy costs a request

    def test_the_delay_follows_the_failure_rate(self) -> None:
        p = HedgePolicy(3, min_samples=4, window=10, min_delay_s=0.0, max_delay_s=5.0)
        for i in range(10):  # answer times 0.1 .. 1.0; one failure in ten
            p.observe("getEvents", (i + 1) / 10, failed=i == 0)
        assert p.delay_s("getEvents") == 1.0  # the 90th percentile
        for i in range(10):  # four failures in ten: the 60th percentile
            p.observe("getEvents", (i + 1) / 10, failed=i < 4)
        assert p.delay_s("getEvents") == 0.7
        for i in range(10):  # nine in ten: never below the median
            p.observe("getEvents", (i + 1) / 10, failed=i < 9)
        assert p.delay_s("getEvents") == 0.6
        for i in range(4):  # a method with enough answers of its own goes by them
            p.observe("getLedgerEntries", 0.05 * (i + 1))
        assert p.delay_s("getLedgerEntries") is None

    def test_a_method_without_answers_goes_by_all_methods(self) -> None:
        # a worker restarted under a failing RPC: its first send is hedged on what the
        # start-up reads met
        p = HedgePolicy(3, min_samples=4, window=10, min_delay_s=0.0, start_delay_s=None)
        assert p.delay_s("sendTransaction") is None  # nothing known at all
        for i in range(10):  # half of the reads failed
            p.observe("getLedgerEntries" if i % 2 else "getNetwork", (i + 1) / 10, failed=i < 5)
        assert p.delay_s("sendTransaction") == 0.6  # the median of all answers
        for _ in range(3):
            p.observe("sendTransaction", 0.01)
        assert p.delay_s("sendTransaction") is not None  # still too few of its own
        p.observe("sendTransaction", 0.01)
        assert p.delay_s("sendTransaction") is None  # its own four: none failed

    def test_the_delay_is_bounded(self) -> None:
        p = HedgePolicy(3, min_samples=2, min_delay_s=0.02, max_delay_s=1.0)
        for _ in range(10):
            p.observe("getHealth", 0.0, failed=True)
            p.observe("getNetwork", 5.0, failed=True)
        assert p.delay_s("getHealth") == 0.02
        assert p.delay_s("getNetwork") == 1.0

    @pytest.mark.parametrize(
        "kw",
        [
            {"max_copies": 0},
            {"max_copies": 2, "min_delay_s": 0.5, "max_delay_s": 0.1},
            {"max_copies": 2, "min_failure_rate": 1.5},
        ],
    )
    def test_bad_settings(self, kw: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            HedgePolicy(**kw)


def judge_plain(answer: Any) -> str:
    """A value wins; a transport error may be replaced; any other error is final."""
    if not isinstance(answer, BaseException):
        return WIN
    return AGAIN if isinstance(answer, RpcTransportError) else STOP


class Copies:
    """Scripted copies: copy n answers ``script[n]`` (value or exception) after ``delays[n]``
    seconds; records when each started and which were cancelled."""

    def __init__(self, script: list[Any], delays: list[float]) -> None:
        self.script = script
        self.delays = delays
        self.started: list[float] = []
        self.cancelled: list[int] = []
        self.t0 = time.monotonic()

    def start(self) -> Awaitable[Any]:
        n = len(self.started)
        self.started.append(time.monotonic() - self.t0)
        return self._copy(n)

    async def _copy(self, n: int) -> Any:
        try:
            await asyncio.sleep(self.delays[n])
        except asyncio.CancelledError:
            self.cancelled.append(n)
            raise
        answer = self.script[n]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def run_race(
    copies: Copies,
    *,
    delay_s: float | None = 0.05,
    max_in_flight: int = 3,
    max_copies: int = 6,
    may_add: Callable[[], bool] = lambda: True,
    judge: Callable[[Any], str] = judge_plain,
    refill: bool = False,
) -> Race:
    async def go() -> Race:
        copies.t0 = time.monotonic()
        return await asyncio.wait_for(
            race(
                copies.start,
                judge,
                delay_s=lambda: delay_s,
                max_in_flight=max_in_flight,
                max_copies=max_copies,
                may_add=may_add,
                refill=refill,
            ),
            LIMIT_S,
        )

    return asyncio.run(go())


def lost(n: int) -> RpcTransportError:
    return RpcTransportError("getEvents", f"lost {n}")


class TestRace:
    def test_a_fast_answer_needs_no_copy(self) -> None:
        c = Copies(["a"], [0.0])
        got = run_race(c, delay_s=0.5)
        assert got.won and got.last == "a"
        assert got.started == 1 and got.hedged == 0

    def test_a_slow_copy_gets_a_hedge_and_the_first_answer_wins(self) -> None:
        c = Copies(["slow", "fast"], [1.0, 0.01])
        t0 = time.monotonic()
        got = run_race(c, delay_s=0.05)
        assert time.monotonic() - t0 < 0.5  # not the slow copy's second
        assert got.last == "fast" and got.hedged == 1
        assert c.started[1] >= 0.04  # the hedge waited for the delay
        assert c.cancelled == [0]  # the slow copy was cancelled

    def test_a_failure_while_another_is_out_is_replaced_at_once(self) -> None:
        # copy 0 slow; copy 1 (the hedge at 0.05 s) fails at once; copy 2 replaces it at
        # once (not after another delay) and answers
        c = Copies(["slow", lost(1), "third"], [1.0, 0.0, 0.01])
        got = run_race(c, delay_s=0.05)
        assert got.last == "third" and got.started == 3 and got.hedged == 2
        assert c.started[2] - c.started[1] < 0.04
        assert got.verdicts == [AGAIN, WIN]

    def test_a_lone_failure_ends_the_round(self) -> None:
        # nothing else out: the caller's backoff decides about a retry
        c = Copies([lost(0), "never"], [0.0, 0.0])
        got = run_race(c, delay_s=0.5)
        assert not got.won and got.started == 1 and isinstance(got.last, RpcTransportError)

    def test_refill_replaces_a_lone_failure_at_once(self) -> None:
        # a send of one envelope: the caller would send again at once anyway
        c = Copies([lost(0), lost(1), "third"], [0.0, 0.0, 0.0])
        t0 = time.monotonic()
        got = run_race(c, delay_s=0.5, max_copies=4, refill=True)
        assert time.monotonic() - t0 < 0.3  # no hedge delay between them
        assert got.last == "third" and got.started == 3 and got.hedged == 2
        c = Copies([lost(0), lost(1), "x"], [0.0, 0.0, 0.0])
        assert not run_race(c, delay_s=0.5, max_copies=2, refill=True).won  # bounded

    def test_no_delay_no_copy_by_time(self) -> None:
        c = Copies(["slow"], [0.2])
        got = run_race(c, delay_s=None)
        assert got.last == "slow" and got.started == 1 and got.hedged == 0

    def test_no_token_no_copy(self) -> None:
        asked = []

        def may_add() -> bool:
            asked.append(True)
            return False

        c = Copies(["slow"], [0.2])
        got = run_race(c, delay_s=0.05, may_add=may_add)
        assert got.last == "slow" and got.started == 1 and got.hedged == 0
        assert 2 <= len(asked) <= 5  # asked again at each delay, not in a busy loop

    def test_at_most_max_in_flight(self) -> None:
        c = Copies(["s0", "s1", "s2", "s3"], [0.3, 0.3, 0.3, 0.3])
        got = run_race(c, delay_s=0.02, max_in_flight=2)
        assert got.started == 2 and got.won

    def test_at_most_max_copies(self) -> None:
        c = Copies([lost(0), lost(1), lost(2), "x"], [0.05, 0.0, 0.0, 0.0])
        got = run_race(c, delay_s=0.01, max_copies=3)
        assert got.started == 3 and not got.won

    def test_stop_cancels_the_rest(self) -> None:
        final = RpcResponseError("getEvents", -32600, "startLedger must be positive")
        c = Copies(["slow", final], [1.0, 0.0])
        got = run_race(c, delay_s=0.02)
        assert got.last is final and not got.won and c.cancelled == [0]

    def test_hold_waits_for_the_copies_out_and_starts_none(self) -> None:
        def judge(answer: Any) -> str:
            if answer == "error":
                return HOLD
            return judge_plain(answer)

        # copy 1 (the hedge) says "error" at once: no new copy, copy 0 is waited for and wins
        c = Copies(["queued", "error", "never"], [0.2, 0.0, 0.0])
        got = run_race(c, delay_s=0.05, judge=judge)
        assert got.last == "queued" and got.started == 2
        assert got.verdicts == [HOLD, WIN]

    def test_hold_then_all_failed(self) -> None:
        def judge(answer: Any) -> str:
            return HOLD if answer == "error" else judge_plain(answer)

        c = Copies([lost(0), "error"], [0.2, 0.0])
        got = run_race(c, delay_s=0.05, judge=judge)
        assert not got.won and got.started == 2 and got.verdicts == [HOLD, AGAIN]

    def test_cancelling_the_race_cancels_every_copy(self) -> None:
        c = Copies(["a", "b"], [1.0, 1.0])

        async def go() -> None:
            c.t0 = time.monotonic()
            t = asyncio.create_task(
                race(
                    c.start,
                    judge_plain,
                    delay_s=lambda: 0.02,
                    max_in_flight=2,
                    max_copies=2,
                    may_add=lambda: True,
                )
            )
            await asyncio.sleep(0.1)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(t, LIMIT_S)

        asyncio.run(go())
        assert sorted(c.cancelled) == [0, 1]


class TestOneCopy:
    def test_an_answer_and_an_error(self) -> None:
        async def ok() -> str:
            return "fine"

        async def fails() -> str:
            raise lost(0)

        won = asyncio.run(one_copy(ok, judge_plain))
        assert won.won and won.last == "fine" and won.started == 1
        failed = asyncio.run(one_copy(fails, judge_plain))
        assert not failed.won and isinstance(failed.last, RpcTransportError)
