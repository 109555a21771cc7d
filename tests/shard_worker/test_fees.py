"""Fees that follow the network (issue 13), against the devnet's surge pricing and real accounts:
the stats strategy against fixed fees under competing load, the caps, escalation, a dropped
transaction resent, and source accounts leaving and rejoining the pool."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest

from devnet.process import DevnetProcess
from shard_worker import chain
from shard_worker.keeper import run_keeper
from shard_worker.spec import WorkerSpec
from sorotask_core.exitcodes import ExitCode
from tests.support.devnet import DevnetOptions
from tests.support.keeper import Keys, RecordingReporter, make_spec, run_until

#: a due window far longer than any test: each task is due exactly once
LONG = 10**7
#: the competing load's inclusion fee per operation (stroops)
F = 2000
RESERVE = 2 * chain.BASE_RESERVE


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    # half-second ledgers: a keeper lands one execution per ledger per source account
    return DevnetOptions(close_every=0.5)


@pytest.fixture
def surge(devnet: DevnetProcess) -> Iterator[Callable[..., None]]:
    """Set the ledger capacity and the competing load; both cleared after the test."""

    def set_surge(capacity: int | None, count: int = 0, fee: int = 100) -> None:
        devnet.rpc("devnet_setCapacity", {"capacity": capacity})
        devnet.rpc("devnet_setLoad", {"count": count, "fee": fee} if count else {})

    yield set_surge
    set_surge(None)
    devnet.set_faults()


def wait_ledgers(dn: DevnetProcess, n: int, timeout: float = 30.0) -> None:
    start = int(dn.rpc("getLatestLedger", {})["sequence"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(dn.rpc("getLatestLedger", {})["sequence"]) >= start + n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{n} ledgers did not close within {timeout}s")


def wait_fee_stats(dn: DevnetProcess, fee: int, timeout: float = 30.0) -> None:
    """Until getFeeStats' Soroban p70 shows the load's fee."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = dn.rpc("getFeeStats", {})["sorobanInclusionFee"]
        if int(stats["transactionCount"]) and int(stats["p70"]) >= fee:
            return
        time.sleep(0.2)
    raise AssertionError(f"getFeeStats never showed {fee}")


def sends(dn: DevnetProcess) -> int:
    return int(dn.stats()["calls"].get("sendTransaction", 0))


def executed_once(dn: DevnetProcess, ids: list[int]) -> list[dict[str, Any]]:
    """The executions of ``ids``; asserts none was executed twice or wasted."""
    execs = dn.executions(ids)
    assert all(e["effect"] == "executed" for e in execs), Counter(e["effect"] for e in execs)
    per_task = Counter(e["task_id"] for e in execs)
    assert not per_task or max(per_task.values()) == 1, per_task
    return execs


def total(rep: RecordingReporter, name: str) -> int:
    return sum(getattr(c, name) for c in rep.cycles)


def skipped(rep: RecordingReporter, reason: str) -> int:
    return sum(c.skipped.get(reason, 0) for c in rep.cycles)


async def run_side_by_side(
    runs: list[tuple[WorkerSpec, RecordingReporter]], done: Callable[[], bool], limit_s: float
) -> list[int]:
    """Run several keepers at once until ``done()`` or ``limit_s``; then stop them all."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_keeper(spec, rep, stop)) for spec, rep in runs]
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and not any(t.done() for t in tasks):
        if await asyncio.to_thread(done):
            break
        await asyncio.sleep(0.2)
    stop.set()
    return [await asyncio.wait_for(t, 30) for t in tasks]


def journal_clean(rep: RecordingReporter) -> None:
    assert rep.goodbyes and rep.goodbyes[0]["journal_left"] == 0
    assert not rep.fatals


class TestSurge:
    def test_stats_lands_the_ceiling_while_fixed_at_100_lands_nothing(
        self, devnet: DevnetProcess, keys: Keys, surge: Callable[..., None]
    ) -> None:
        # capacity 3 a ledger; demand 6 competing at F plus our two keepers
        surge(3, count=6, fee=F)
        wait_fee_stats(devnet, F)
        n = 30
        s_first, s_last = devnet.seed_tasks(count=n, interval=LONG)
        f_first, f_last = devnet.seed_tasks(count=n, interval=LONG)
        stats_ids = list(range(s_first, s_last + 1))
        fixed_ids = list(range(f_first, f_last + 1))
        _, s_ref = keys.new()
        _, f_ref = keys.new()
        stats_spec = make_spec(devnet, s_ref, name="stats", range_first=s_first, range_last=s_last)
        fixed_spec = make_spec(
            devnet, f_ref, name="fixed", range_first=f_first, range_last=f_last,
            fee_strategy="fixed", base_fee=100,
        )  # fmt: skip
        s_rep, f_rep = RecordingReporter(), RecordingReporter()
        codes = asyncio.run(
            run_side_by_side(
                [(stats_spec, s_rep), (fixed_spec, f_rep)],
                lambda: len(devnet.executions(stats_ids)) >= n,
                limit_s=60,
            )
        )
        assert codes == [ExitCode.OK, ExitCode.OK]
        ours = executed_once(devnet, stats_ids)
        assert len(ours) == n
        # one source account: the ceiling is one execution a ledger
        ledgers = sorted(e["ledger"] for e in ours)
        span = ledgers[-1] - ledgers[0] + 1
        utilisation = n / span
        print(f"stats keeper: {n} executions in {span} ledgers ({utilisation:.0%} of its ceiling)")
        assert utilisation >= 0.9, (utilisation, ledgers)
        assert executed_once(devnet, fixed_ids) == []
        assert total(f_rep, "executed") == 0 and total(f_rep, "tx_errors") > 0
        # the stats keeper bid above the load's fee, never more than one stroop over p70 + 1
        offered = {c.inclusion_fee for c in s_rep.cycles if c.inclusion_fee}
        assert offered and min(offered) > F and max(offered) < 2 * F, offered
        for rep in (s_rep, f_rep):
            journal_clean(rep)

    def test_max_inclusion_below_the_market_sends_nothing_and_counts_every_skip(
        self, devnet: DevnetProcess, keys: Keys, surge: Callable[..., None]
    ) -> None:
        surge(2, count=4, fee=F)
        wait_fee_stats(devnet, F)
        first, last = devnet.seed_tasks(count=4, interval=LONG)
        ids = list(range(first, last + 1))
        _, ref = keys.new()
        spec = make_spec(devnet, ref, range_first=first, range_last=last, fee_max_inclusion=F // 2)
        rep = RecordingReporter()
        before = sends(devnet)

        def enough() -> bool:
            return len(rep.events_of("not_sent")) >= 8

        code = asyncio.run(run_until(spec, rep, enough, limit_s=20, settle=0.5))
        assert code == ExitCode.OK
        assert sends(devnet) == before  # nothing sent
        assert executed_once(devnet, ids) == []
        skips = [d for d in rep.events_of("not_sent") if d["reason"] == "over_max_inclusion"]
        assert len(skips) >= 8
        assert {d["task_id"] for d in skips} == set(ids)
        assert all(d["inclusion"] > F and d["price"] > F for d in skips)
        # every skip counted, once
        assert skipped(rep, "over_max_inclusion") == len(skips)
        assert rep.goodbyes[0]["fee_skipped"] == len(skips)
        journal_clean(rep)

    def test_escalation_stops_at_the_cap(
        self, devnet: DevnetProcess, keys: Keys, surge: Callable[..., None]
    ) -> None:
        cap = 3 * F // 2
        _, marker = devnet.seed_tasks(count=1, interval=LONG, last_run=2**40)
        _, ref = keys.new()
        spec = make_spec(
            devnet, ref, range_first=marker + 1, range_last=None, fee_max_inclusion=cap,
            fee_refresh_ledgers=10**6,  # statistics read once, before the surge: the floor
            # the task is seeded by a control call while the keeper runs: no contract event
            # announces it, so the keeper reads entries each ledger
            read_mode="ledger_entries",
        )  # fmt: skip
        rep = RecordingReporter()

        async def go() -> int:
            stop = asyncio.Event()
            task = asyncio.create_task(run_keeper(spec, rep, stop))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if rep.cycles:
                    break
                await asyncio.sleep(0.1)
            # the surge starts after the keeper read the (empty) fee statistics
            await asyncio.to_thread(surge, 1, 4, 2 * F)
            await asyncio.to_thread(wait_ledgers, devnet, 2)
            await asyncio.to_thread(devnet.seed_tasks, count=1, interval=LONG)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if len([d for d in rep.events_of("not_sent") if d["attempt"]]) >= 2:
                    break
                await asyncio.sleep(0.2)
            stop.set()
            return await asyncio.wait_for(task, 30)

        assert asyncio.run(go()) == ExitCode.OK
        at_cap = [d for d in rep.events_of("not_sent") if d["reason"] == "escalation_at_cap"]
        assert len(at_cap) >= 2
        # floor -> core's minimum, capped -> stop: one escalation per attempt, never above the cap
        assert all(d["inclusion"] == cap and d["attempt"] == 2 for d in at_cap)
        escalations = rep.goodbyes[0]["escalations"]
        # the cycles report what was counted before the last one (the goodbye has it all)
        assert 0 < total(rep, "escalations") <= escalations
        assert len(at_cap) <= escalations <= len(at_cap) + 1
        assert max(c.inclusion_fee for c in rep.cycles) == cap
        refused = [d for d in rep.events_of("tx_error") if "txINSUFFICIENT_FEE" in d["reason"]]
        assert len(refused) >= 2 * len(at_cap)
        assert executed_once(devnet, [marker + 1]) == []
        journal_clean(rep)


class TestResend:
    def test_a_dropped_transaction_is_resent_and_the_task_executed_once(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        first, last = devnet.seed_tasks(count=6, interval=LONG)
        ids = list(range(first, last + 1))
        _, ref = keys.new()
        # three source accounts: a dropped transaction holds its account until its time bound
        channels = tuple(keys.new()[1] for _ in range(2))
        spec = make_spec(
            devnet, ref, range_first=first, range_last=last, fee_max_escalations=8,
            channel_secrets=channels, max_concurrent_executions=3,
        )  # fmt: skip
        # sendTransaction answers PENDING, the transaction is silently dropped: it expires
        devnet.set_faults(never_apply_rate=0.5, methods=["sendTransaction"])
        rep = RecordingReporter()
        try:
            code = asyncio.run(
                run_until(spec, rep, lambda: len(devnet.executions(ids)) >= 6, limit_s=120)
            )
        finally:
            devnet.set_faults()
        assert code == ExitCode.OK
        assert len(executed_once(devnet, ids)) == 6
        expired = [d for d in rep.events_of("tx_error") if "expired" in d["reason"]]
        assert expired
        assert rep.goodbyes[0]["escalations"] >= len(expired) - skipped(
            rep, "escalations_exhausted"
        )
        journal_clean(rep)


class TestFeeStatsBesideTheReads:
    def test_a_slow_get_fee_stats_holds_no_ledger_s_due_reads(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        # getFeeStats answers after 2 s (four ledgers) and is asked every 2 ledgers: the
        # cycles go on reading each new ledger meanwhile (the cycle that asked it waited for
        # it, and the next ledgers' due reads with it)
        first, last = devnet.seed_tasks(count=2, interval=LONG)
        _, ref = keys.new()
        spec = make_spec(
            devnet, ref, range_first=first, range_last=last, fee_refresh_ledgers=2,
            rpc_timeout_s=5.0, rpc_hedge_copies=1,
        )  # fmt: skip
        devnet.set_faults(latency_ms=2000, methods=["getFeeStats"])
        rep = RecordingReporter()
        try:
            code = asyncio.run(run_until(spec, rep, lambda: False, limit_s=8))
        finally:
            devnet.set_faults()
        assert code == ExitCode.OK
        seen = [c.ledger for c in rep.cycles if c.new_ledger and c.ledger]
        assert len(seen) >= 8
        gaps = [b - a for a, b in pairwise(seen[1:])]  # after the first
        assert max(gaps) <= 2, seen
        executed_once(devnet, list(range(first, last + 1)))


class TestBalances:
    def test_a_drained_channel_leaves_the_pool_and_returns_after_a_top_up(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        first, last = devnet.seed_tasks(count=40, interval=LONG)
        ids = list(range(first, last + 1))
        keeper, ref = keys.new()
        channel, ch_ref = keys.new()
        spec = make_spec(
            devnet, ref, range_first=first, range_last=last, channel_secrets=(ch_ref,),
            max_concurrent_executions=2, balance_refresh_ledgers=1,
        )  # fmt: skip
        rep = RecordingReporter()

        def executed_by(source: str) -> int:
            return sum(1 for d in rep.events_of("executed") if d["source"] == source)

        async def go() -> int:
            stop = asyncio.Event()
            task = asyncio.create_task(run_keeper(spec, rep, stop))

            async def until(pred: Callable[[], bool], what: str, limit: float = 20.0) -> None:
                deadline = time.monotonic() + limit
                while not pred():
                    assert time.monotonic() < deadline, what
                    assert not task.done(), "keeper stopped"
                    await asyncio.sleep(0.1)

            await until(lambda: executed_by(channel.public_key) >= 2, "channel executes")
            devnet.rpc("devnet_setBalance", {"address": channel.public_key, "balance": RESERVE})
            await until(lambda: rep.events_of("source_account"), "channel out of the pool")
            out_at = len(rep.events_of("executed"))
            channel_then = executed_by(channel.public_key)
            await until(lambda: len(rep.events_of("executed")) >= out_at + 4, "keeper goes on")
            # at most what the channel had in flight when it was drained (the transaction
            # being confirmed, and the next one already prepared on it)
            assert executed_by(channel.public_key) <= channel_then + 2
            assert any(c.accounts_out_of_pool == 1 for c in rep.cycles)
            assert all(c.paused is None for c in rep.cycles)
            devnet.rpc("devnet_setBalance", {"address": channel.public_key, "balance": 10**11})
            await until(lambda: len(rep.events_of("source_account")) >= 2, "channel back")
            back_at = executed_by(channel.public_key)
            await until(lambda: executed_by(channel.public_key) >= back_at + 2, "channel again")
            stop.set()
            return await asyncio.wait_for(task, 30)

        assert asyncio.run(go()) == ExitCode.OK
        moves = rep.events_of("source_account")
        assert [(d["account"], d["in_pool"]) for d in moves[:2]] == [
            (channel.public_key, False),
            (channel.public_key, True),
        ]
        assert "below min_fee_balance" in moves[0]["reason"]
        balances = [c.source_balance for c in rep.cycles if c.source_balance]
        assert balances and set(balances[-1]) == {keeper.public_key, channel.public_key}
        executed_once(devnet, ids)
        journal_clean(rep)

    def test_all_accounts_low_pauses_not_fatal_and_loses_no_task(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        first, last = devnet.seed_tasks(count=3, interval=LONG)
        ids = list(range(first, last + 1))
        keeper, ref = keys.new()
        devnet.rpc("devnet_setBalance", {"address": keeper.public_key, "balance": RESERVE + 500})
        spec = make_spec(devnet, ref, range_first=first, range_last=last, balance_refresh_ledgers=1)
        rep = RecordingReporter()
        before = sends(devnet)

        async def go() -> int:
            stop = asyncio.Event()
            task = asyncio.create_task(run_keeper(spec, rep, stop))
            deadline = time.monotonic() + 20
            while sum(1 for c in rep.cycles if c.paused) < 6:
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.1)
            assert sends(devnet) == before  # paused: nothing sent
            assert devnet.executions(ids) == []
            await asyncio.to_thread(
                devnet.rpc, "devnet_setBalance", {"address": keeper.public_key, "balance": 10**11}
            )
            deadline = time.monotonic() + 20
            while len(devnet.executions(ids)) < 3:
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.2)
            stop.set()
            return await asyncio.wait_for(task, 30)

        assert asyncio.run(go()) == ExitCode.OK  # never a fatal exit, so no restart loop
        paused = [c for c in rep.cycles if c.paused]
        assert paused and all(c.paused == "paused: low balance" for c in paused)
        assert paused[0].accounts_out_of_pool == 1
        assert rep.cycles[-1].paused is None
        assert len(executed_once(devnet, ids)) == 3  # no task lost
        journal_clean(rep)
