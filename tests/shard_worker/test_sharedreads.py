"""The read path's call of a ledger shared with the executor's rechecks
(shard_worker.sharedreads): which keys ride, which call a recheck may take, and what it finds.
Pure bookkeeping; the futures run in a short ``asyncio.run``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shard_worker.sharedreads import SharedReads, pause


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 5))


class TestWatching:
    def test_watched_tasks_are_named_for_the_next_call_until_unwatched(self) -> None:
        sr = SharedReads()
        sr.watch(7, "k7")
        sr.watch(9, "k9")
        assert sorted(sr.watched_ids()) == [7, 9] and len(sr) == 2
        sr.unwatch("k7")
        sr.unwatch("k7")  # idempotent
        assert sr.watched_ids() == [9]

    def test_a_call_without_watched_keys_is_not_tracked(self) -> None:
        async def go() -> None:
            sr = SharedReads()
            assert sr.reading(10, ["a", "b"]) is None  # nothing watched
            sr.watch(1, "k1")
            assert sr.reading(10, ["a", "b"]) is None  # none of its keys watched
            assert sr.lookup("a", 10) is None

        run(go())


class TestLookup:
    def test_a_recheck_takes_the_call_of_its_ledger_or_a_later_one(self) -> None:
        async def go() -> None:
            sr = SharedReads()
            sr.watch(1, "k1")
            read = sr.reading(10, ["k1", "other"])
            assert read is not None and read.keys == frozenset({"k1"})
            assert sr.lookup("k1", 10) is read and sr.lookup("k1", 9) is read
            assert sr.lookup("k1", 11) is None  # a ledger after that call: not proven
            entry = {"key": "k1", "xdr": "x"}
            SharedReads.answered(read, [entry, {"key": "other", "xdr": "y"}, "junk"])
            assert await read.answer == {"k1": entry}

        run(go())

    def test_an_answer_without_the_entry_says_so(self) -> None:
        async def go() -> None:
            sr = SharedReads()
            sr.watch(1, "k1")
            read = sr.reading(10, ["k1"])
            SharedReads.answered(read, [])
            assert read is not None and await read.answer == {}

        run(go())

    def test_a_waiter_on_a_call_in_flight_gets_its_answer(self) -> None:
        async def go() -> Any:
            sr = SharedReads()
            sr.watch(1, "k1")
            read = sr.reading(10, ["k1"])
            found = sr.lookup("k1", 10)
            assert found is not None
            waiter = asyncio.ensure_future(found.answer)
            await asyncio.sleep(0)
            assert not waiter.done()
            SharedReads.answered(read, [{"key": "k1", "xdr": "x"}])
            return await waiter

        assert run(go()) == {"k1": {"key": "k1", "xdr": "x"}}

    def test_a_failed_call_answers_none(self) -> None:
        async def go() -> Any:
            sr = SharedReads()
            sr.watch(1, "k1")
            read = sr.reading(10, ["k1"])
            SharedReads.failed(read)
            SharedReads.answered(read, [{"key": "k1"}])  # settled once
            assert read is not None
            return await read.answer

        assert run(go()) is None

    def test_the_newest_call_wins_and_an_older_one_does_not_replace_it(self) -> None:
        async def go() -> None:
            sr = SharedReads()
            sr.watch(1, "k1")
            newer = sr.reading(11, ["k1"])
            older = sr.reading(10, ["k1"])  # a slow call of an older ledger, announced late
            assert older is not None and sr.lookup("k1", 11) is newer

        run(go())

    def test_watching_again_forgets_reads_from_before_the_preparation(self) -> None:
        async def go() -> None:
            sr = SharedReads()
            sr.watch(1, "k1")
            sr.reading(10, ["k1"])
            sr.watch(1, "k1")  # prepared again (a new simulation)
            assert sr.lookup("k1", 10) is None
            sr.unwatch("k1")
            assert sr.lookup("k1", 0) is None

        run(go())


class TestWaitFor:
    def test_waits_for_the_read_paths_call_of_the_ledger(self) -> None:
        async def go() -> Any:
            sr = SharedReads()
            sr.watch(1, "k1")
            waiting = asyncio.ensure_future(sr.wait_for("k1", 10, 5.0))
            await asyncio.sleep(0.01)
            assert not waiting.done()
            sr.reading(9, ["k1"])  # an older ledger's call: not yet
            await asyncio.sleep(0.01)
            assert not waiting.done()
            read = sr.reading(10, ["k1"])
            return await asyncio.wait_for(waiting, 5) is read

        assert run(go())

    def test_a_call_of_the_ledger_without_the_key_ends_the_wait_with_nothing(self) -> None:
        async def go() -> Any:
            sr = SharedReads()
            sr.watch(1, "k1")
            waiting = asyncio.ensure_future(sr.wait_for("k1", 10, 5.0))
            await asyncio.sleep(0.01)
            sr.reading(11, ["other"])  # the key was watched too late for that call
            return await asyncio.wait_for(waiting, 5)

        assert run(go()) is None

    def test_no_wait_once_announced_or_when_not_watched_and_a_bounded_one_else(self) -> None:
        async def go() -> list[float]:
            sr = SharedReads()
            sr.watch(1, "k1")
            sr.reading(10, ["k1"])
            took = []
            for key, ledger in (("k1", 10), ("unwatched", 99), ("k1", 99)):
                t0 = time.monotonic()
                await sr.wait_for(key, ledger, 0.1)
                took.append(time.monotonic() - t0)
            return took

        first, unwatched, bounded = run(go())
        assert first < 0.05 and unwatched < 0.05 and 0.09 <= bounded < 1.0

    def test_a_waiting_recheck_wakes_the_read_loop_at_once(self) -> None:
        """The ledger was seen in a transaction's answer: the read path polls now (its call
        comes a round trip later) instead of at its timer (up to a step later)."""

        async def go() -> tuple[float, bool]:
            sr, stop = SharedReads(), asyncio.Event()
            sr.watch(1, "k1")
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            sleeping = asyncio.ensure_future(pause(stop, 5.0, sr))
            waiting = asyncio.ensure_future(sr.wait_for("k1", 10, 5.0))
            await asyncio.wait_for(sleeping, 5)
            woke = loop.time() - t0
            cleared = not sr.wanted.is_set()
            sr.reading(10, ["k1"])
            await asyncio.wait_for(waiting, 5)
            return woke, cleared

        woke, cleared = run(go())
        assert woke < 1.0 and cleared

    def test_pause_ends_at_its_time_or_at_a_stop(self) -> None:
        async def go() -> list[float]:
            loop = asyncio.get_running_loop()
            stop, took = asyncio.Event(), []
            for shared in (None, SharedReads()):
                t0 = loop.time()
                await pause(stop, 0.05, shared)
                took.append(loop.time() - t0)
            loop.call_later(0.05, stop.set)
            t0 = loop.time()
            await pause(stop, 5.0, None)
            took.append(loop.time() - t0)
            return took

        assert all(0.04 <= t < 1.0 for t in run(go()))

    def test_the_call_that_was_wanted_ends_the_wish(self) -> None:
        """A recheck that asked for a poll, answered by the read path's call of that ledger
        in the cycle already under way: no further poll right after that cycle."""

        async def go() -> list[bool]:
            sr = SharedReads()
            sr.watch(1, "k1")
            waiting = asyncio.ensure_future(sr.wait_for("k1", 10, 5.0))
            await asyncio.sleep(0)
            asked = sr.wanted.is_set()
            sr.reading(10, ["k1"])
            await asyncio.wait_for(waiting, 5)
            return [asked, sr.wanted.is_set()]

        assert run(go()) == [True, False]
