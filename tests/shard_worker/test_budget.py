"""The RPC request budget: token arithmetic, the rate held, due work first, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from shard_worker.budget import DUE, LEDGER, RESCAN, SWEEP, RequestBudget, TokenBucket


class TestTokenBucket:
    def test_starts_full_and_empties(self) -> None:
        bucket = TokenBucket(rate=2, burst=3, now=0)
        assert [bucket.try_take(1, 0) for _ in range(4)] == [True, True, True, False]

    def test_refills_at_the_rate_up_to_the_burst(self) -> None:
        bucket = TokenBucket(rate=2, burst=3, now=0)
        for _ in range(3):
            bucket.try_take(1, 0)
        assert bucket.wait_time(1, 0) == pytest.approx(0.5)
        assert not bucket.try_take(1, 0.49)
        assert bucket.try_take(1, 0.5)
        bucket.refill(100)
        assert bucket.tokens == 3

    def test_keep_leaves_tokens_behind(self) -> None:
        bucket = TokenBucket(rate=1, burst=4, now=0)
        assert bucket.try_take(1, 0, keep=2) and bucket.try_take(1, 0, keep=2)
        assert not bucket.try_take(1, 0, keep=2)
        assert bucket.wait_time(1, 0, keep=2) == pytest.approx(1.0)
        assert bucket.try_take(2, 0)  # without keep the rest is there

    def test_time_going_backwards_adds_nothing(self) -> None:
        bucket = TokenBucket(rate=1, burst=1, now=10)
        assert bucket.try_take(1, 10)
        assert not bucket.try_take(1, 5)
        assert not bucket.try_take(1, 10.5)
        assert bucket.try_take(1, 11)

    @pytest.mark.parametrize("rate,burst", [(0, 1), (-1, 1), (1, 0.5)])
    def test_bad_parameters(self, rate: float, burst: float) -> None:
        with pytest.raises(ValueError):
            TokenBucket(rate, burst, 0)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class TestTryAcquire:
    def test_unlimited_always_grants_and_counts(self) -> None:
        budget = RequestBudget(None)
        assert all(budget.try_acquire(SWEEP) for _ in range(1000))
        assert budget.drain_stats() == {"granted": {"sweep": 1000}, "waited_s": {}}
        assert budget.drain_stats() == {"granted": {}, "waited_s": {}}

    def test_sweep_and_rescan_leave_the_reserve_to_due_work(self) -> None:
        clock = FakeClock()
        budget = RequestBudget(4, clock=clock)  # burst 4, reserve 2
        assert budget.try_acquire(SWEEP) and budget.try_acquire(RESCAN)
        assert not budget.try_acquire(SWEEP) and not budget.try_acquire(RESCAN)
        assert budget.try_acquire(DUE) and budget.try_acquire(LEDGER)
        assert not budget.try_acquire(DUE)
        clock.t = 0.25
        assert budget.try_acquire(DUE)

    @pytest.mark.parametrize(
        "kw", [{"max_requests_per_s": 0}, {"max_requests_per_s": 5, "reserve": 5}]
    )
    def test_bad_settings(self, kw: dict) -> None:
        with pytest.raises(ValueError):
            RequestBudget(**kw)

    def test_bad_requests(self) -> None:
        budget = RequestBudget(2)
        with pytest.raises(ValueError):
            budget.try_acquire(7)
        with pytest.raises(ValueError):
            budget.try_acquire(DUE, cost=0)
        with pytest.raises(ValueError):
            budget.try_acquire(DUE, cost=3)


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))  # type: ignore[arg-type]


class TestAcquire:
    def test_the_rate_is_held(self) -> None:
        async def main() -> float:
            budget = RequestBudget(100, burst=1)
            t0 = time.perf_counter()
            for _ in range(31):
                await budget.acquire(DUE)
            return time.perf_counter() - t0

        elapsed = run(main())
        assert 0.29 <= elapsed < 3.0  # 30 tokens at 100/s after the first (bounded for load)

    def test_waiters_are_served_by_priority_then_arrival(self) -> None:
        async def main() -> list[str]:
            budget = RequestBudget(50, burst=1, reserve=0)
            assert budget.try_acquire(DUE)  # the bucket is now empty
            order: list[str] = []

            async def want(name: str, priority: int) -> None:
                await budget.acquire(priority)
                order.append(name)

            tasks = []
            for name, prio in [
                ("rescan", RESCAN),
                ("sweep1", SWEEP),
                ("due1", DUE),
                ("ledger", LEDGER),
                ("sweep2", SWEEP),
                ("due2", DUE),
            ]:
                tasks.append(asyncio.create_task(want(name, prio)))
                await asyncio.sleep(0)  # let it queue, in this order
            assert budget.waiting() == 6 and budget.waiting(SWEEP) == 2
            await asyncio.gather(*tasks)
            return order

        assert run(main()) == ["due1", "due2", "ledger", "sweep1", "sweep2", "rescan"]

    def test_due_work_does_not_queue_behind_a_waiting_sweep(self) -> None:
        async def main() -> tuple[float, int]:
            budget = RequestBudget(10, burst=4, reserve=2)
            for _ in range(2):
                await budget.acquire(SWEEP)
            sweep = asyncio.create_task(budget.acquire(SWEEP))  # must wait: the reserve
            await asyncio.sleep(0)
            t0 = time.perf_counter()
            await budget.acquire(DUE)
            await budget.acquire(DUE)
            waited = time.perf_counter() - t0
            still = budget.waiting(SWEEP)
            sweep.cancel()
            return waited, still

        waited, still_waiting = run(main())
        assert waited < 0.05 and still_waiting == 1

    def test_a_cancelled_waiter_spends_nothing(self) -> None:
        async def main() -> list[str]:
            budget = RequestBudget(20, burst=1, reserve=0)
            assert budget.try_acquire(DUE)
            got: list[str] = []

            async def want(name: str) -> None:
                await budget.acquire(DUE)
                got.append(name)

            first = asyncio.create_task(want("first"))
            second = asyncio.create_task(want("second"))
            await asyncio.sleep(0)
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            t0 = time.perf_counter()
            await second
            assert time.perf_counter() - t0 < 1.0
            assert budget.waiting() == 0
            return got

        assert run(main()) == ["second"]

    def test_waits_are_counted_by_priority(self) -> None:
        async def main() -> dict:
            budget = RequestBudget(20, burst=1, reserve=0)
            await budget.acquire(DUE)
            await budget.acquire(SWEEP)
            return budget.drain_stats()

        stats = run(main())
        assert stats["granted"] == {"due": 1, "sweep": 1}
        assert 0.02 <= stats["waited_s"]["sweep"] < 2.0 and "due" not in stats["waited_s"]
