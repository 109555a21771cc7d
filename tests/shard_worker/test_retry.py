"""The one retry schedule (shard_worker.retry.Backoff): pure logic, no network."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from shard_worker.retry import Backoff


class TestDelay:
    def test_doubles_from_the_first_delay_up_to_the_cap(self) -> None:
        b = Backoff(0.5, max_s=5.0)
        assert [b.delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]

    def test_other_factors(self) -> None:
        b = Backoff(0.2, factor=1.5, max_s=1.0)
        assert [round(b.delay(n), 6) for n in range(6)] == [0.2, 0.3, 0.45, 0.675, 1.0, 1.0]
        flat = Backoff(0.3, factor=1.0, max_s=10.0)
        assert {flat.delay(n) for n in range(20)} == {0.3}

    def test_the_rpc_clients_schedule_is_unchanged(self) -> None:
        """min(max, base * 2**attempt) as the RPC client computed it before the helper."""
        b = Backoff(0.1, max_s=2.0)
        assert [b.delay(n) for n in range(8)] == [min(2.0, 0.1 * (2**n)) for n in range(8)]

    def test_jitter_stays_within_its_band_and_varies(self) -> None:
        b = Backoff(1.0, max_s=1.0, jitter=0.3, rng=random.Random(7))
        draws = [b.delay(3) for _ in range(500)]
        assert all(0.7 <= d <= 1.3 for d in draws)
        assert max(draws) - min(draws) > 0.4  # spread over the band, not one value
        assert abs(sum(draws) / len(draws) - 1.0) < 0.05

    def test_jitter_is_reproducible_with_a_seeded_rng(self) -> None:
        one = Backoff(0.1, max_s=2.0, jitter=0.5, rng=random.Random(42))
        two = Backoff(0.1, max_s=2.0, jitter=0.5, rng=random.Random(42))
        assert [one.delay(n) for n in range(10)] == [two.delay(n) for n in range(10)]

    def test_huge_retry_numbers_stay_at_the_cap(self) -> None:
        b = Backoff(0.1, max_s=2.0)
        assert b.delay(10_000) == 2.0
        assert b.delay(-3) == 0.1  # a negative retry number counts as the first

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"first_s": -1.0, "max_s": 1.0},
            {"first_s": 1.0, "max_s": -1.0},
            {"first_s": 1.0, "max_s": 1.0, "factor": 0.5},
            {"first_s": 1.0, "max_s": 1.0, "jitter": 1.5},
            {"first_s": 1.0, "max_s": 1.0, "jitter": -0.1},
        ],
    )
    def test_nonsense_is_refused(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError):
            Backoff(**kwargs)  # type: ignore[arg-type]


class TestWait:
    def test_sleeps_the_delay(self) -> None:
        b = Backoff(0.05, max_s=1.0)
        t0 = time.monotonic()
        asyncio.run(b.wait(1))  # 0.1 s
        assert 0.09 <= time.monotonic() - t0 < 1.0

    def test_a_stop_ends_the_wait_early(self) -> None:
        b = Backoff(30.0, max_s=30.0)

        async def go() -> float:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.05, stop.set)
            t0 = time.monotonic()
            await b.wait(0, stop)
            return time.monotonic() - t0

        assert asyncio.run(go()) < 5.0

    def test_a_stop_already_set_returns_at_once(self) -> None:
        b = Backoff(30.0, max_s=30.0)

        async def go() -> float:
            stop = asyncio.Event()
            stop.set()
            t0 = time.monotonic()
            await b.wait(4, stop)
            return time.monotonic() - t0

        assert asyncio.run(go()) < 5.0

    def test_without_a_stop_the_full_delay_passes(self) -> None:
        b = Backoff(0.1, max_s=0.1)

        async def go() -> float:
            stop = asyncio.Event()  # never set
            t0 = time.monotonic()
            await b.wait(0, stop)
            return time.monotonic() - t0

        assert 0.09 <= asyncio.run(go()) < 2.0
