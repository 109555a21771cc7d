"""``read_mode: events`` against a real devnet: register, deposit_gas, withdraw_gas and another
keeper's execution (real contract calls) are each reflected within one ledger; a restart resumes
from the saved cursor; a cursor older than the retention window leads to a logged full re-read;
``max_requests_per_s`` holds for everything the keeper sends (counted at the devnet)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from stellar_sdk import Keypair, SorobanServer

from devnet.process import DevnetProcess
from shard_worker.budget import PRIORITY_NAMES
from shard_worker.context import Events, Tally
from shard_worker.due import Holds
from shard_worker.eventreader import EventReader
from shard_worker.ledger import LedgerClock
from shard_worker.reader import Reader
from shard_worker.rpc import RpcClient
from shard_worker.spec import CycleStats, WorkerSpec
from shard_worker.taskstate import GAS, KNOWN
from sorotask.bench.changes import Changer
from sorotask_core.contract import TaskKeys, sc_address_bytes
from tests.support.devnet import DevnetOptions
from tests.support.keeper import Keys, RecordingReporter, make_spec, offline_spec, run_until

#: ledgers of events the devnet keeps (0.25 s each): short, for the retention test
RETENTION = 24
LONG = 10**12


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    return DevnetOptions(extra_args=("--retention-ledgers", str(RETENTION)))


@pytest.fixture(scope="module")
def changer(devnet: DevnetProcess) -> Any:
    ch = Changer(devnet, accounts=4, threads=4)
    yield ch
    ch.close()


class Harness:
    """One EventReader on a real RPC client, driven cycle by cycle."""

    def __init__(self, spec: WorkerSpec, rpc: RpcClient) -> None:
        self.rep = RecordingReporter()
        self.rpc = rpc
        self.holds = Holds()
        reader = Reader(
            spec,
            rpc,
            Events(self.rep),
            task_keys=TaskKeys(spec.contract_id),
            keeper_address=sc_address_bytes(Keypair.random().public_key),
            holds=self.holds,
        )
        clock = LedgerClock(rpc, Tally())
        self.er = EventReader(
            spec, rpc, Events(self.rep), reader=reader, holds=self.holds, clock=clock
        )
        self.enqueued: list[list[int]] = []
        self.stats: list[CycleStats] = []

    async def cycle(self) -> CycleStats:
        stats = CycleStats(
            shard="t",
            cycle=len(self.stats) + 1,
            ledger=0,
            ledger_time=0,
            started_at=0.0,
            duration_s=0.0,
        )
        await self.er.cycle(stats, self.enqueued.append)
        stats.rpc_calls = self.rpc.drain_counters()[0]
        self.stats.append(stats)
        return stats

    async def until_ledger(self, ledger: int, limit_s: float = 10.0) -> list[CycleStats]:
        """Cycles (every 50 ms) until one has read a ledger >= ``ledger``; returns them."""
        out: list[CycleStats] = []
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and len(out) < 400:
            out.append(await self.cycle())
            if self.er.last is not None and self.er.last.sequence >= ledger:
                return out
            await asyncio.sleep(0.05)
        raise AssertionError(f"ledger {ledger} not reached in {limit_s} s")


def applied_ledger(dn: DevnetProcess, tx_hash: str) -> int:
    got = SorobanServer(dn.info.rpc_url).get_transaction(tx_hash)
    assert got.status.value == "SUCCESS"
    assert got.ledger is not None
    return int(got.ledger)


def spec_for(dn: DevnetProcess, keys: Keys, first: int, tmp: Path | None, **kw: Any) -> WorkerSpec:
    _, ref = keys.new(fund=False)
    return make_spec(
        dn, ref, read_mode="events", range_first=first, state_dir=str(tmp) if tmp else None, **kw
    )


class TestChangesReflectedWithinOneLedger:
    def test_register_deposit_withdraw_and_foreign_execution(
        self, devnet: DevnetProcess, keys: Keys, changer: Changer
    ) -> None:
        no_gas, _ = devnet.seed_tasks(count=1, interval=1, last_run=0, gas_balance=0)
        with_gas, _ = devnet.seed_tasks(count=1, interval=LONG, last_run=0, gas_balance=1)
        due, _ = devnet.seed_tasks(count=1, interval=10**6, last_run=0, gas_balance=10)
        spec = spec_for(devnet, keys, no_gas, None)

        async def go() -> None:
            async with RpcClient(spec.rpc_url) as rpc:
                h = Harness(spec, rpc)
                first = await h.cycle()
                assert first.rescans == 1 and first.checked == 3
                st = h.er.state
                assert st.flags(no_gas) & GAS == 0 and no_gas not in h.er.index
                assert st.flags(with_gas) & GAS and st.flags(due) & GAS
                assert h.enqueued[-1] == [due]

                # steady state without changes: one getEvents a poll, the due task re-read
                quiet = await h.until_ledger(h.er.last.sequence + 1)
                assert quiet[-1].rpc_calls.get("getEvents") == 1
                assert quiet[-1].rpc_calls.get("getLedgerEntries") == 1  # the due task only

                # a deposit to a task without gas: gas known, due, enqueued
                ledger = applied_ledger(devnet, await asyncio.to_thread(changer.deposit, no_gas))
                seen = await h.until_ledger(ledger)
                assert seen[-1].events_seen >= 1
                assert st.flags(no_gas) & GAS and no_gas in h.enqueued[-1]

                # a withdrawal of the last gas: out of the index, never enqueued
                ledger = applied_ledger(devnet, await asyncio.to_thread(changer.withdraw, with_gas))
                await h.until_ledger(ledger)
                assert st.flags(with_gas) & (KNOWN | GAS) == KNOWN
                assert with_gas not in h.er.index

                # another keeper executes the due task: read as not due, with its new due time
                ledger = applied_ledger(devnet, await asyncio.to_thread(changer.execute, due))
                await h.until_ledger(ledger)
                assert due not in h.enqueued[-1]
                assert st.due(due) > h.er.last.close_time
                assert h.er.index.due_of(due) == st.due(due)

                # a registration: the new id is known (no gas yet), the Counter moved
                ledger = applied_ledger(devnet, await asyncio.to_thread(changer.register))
                seen = await h.until_ledger(ledger)
                new_id = h.er.counter
                assert new_id > due and new_id in st and st.known(new_id)
                assert st.flags(new_id) & GAS == 0
                assert sum(c.events_seen for c in seen) >= 1
                assert not h.rep.events_of("read_error")
                assert sum(c.rescans for c in h.stats) == 1

        asyncio.run(go())


class TestRestart:
    def test_restart_resumes_from_the_cursor_without_a_full_read(
        self, devnet: DevnetProcess, keys: Keys, changer: Changer, tmp_path: Path
    ) -> None:
        first, last = devnet.seed_tasks(count=300, interval=LONG, last_run=0, gas_balance=0)
        spec = spec_for(devnet, keys, first, tmp_path)

        async def go() -> None:
            async with RpcClient(spec.rpc_url) as rpc:
                h1 = Harness(spec, rpc)
                assert (await h1.cycle()).rescans == 1
                await h1.until_ledger(h1.er.last.sequence + 1)
                h1.er.save()
            # changed while no keeper runs: followed from the cursor after the restart
            ledger = applied_ledger(devnet, await asyncio.to_thread(changer.deposit, first + 7))
            async with RpcClient(spec.rpc_url) as rpc:
                h2 = Harness(spec, rpc)
                seen = await h2.until_ledger(ledger)
                assert sum(c.rescans for c in h2.stats) == 0
                assert not h2.rep.events_of("rescan")
                assert h2.er.state.flags(first + 7) & GAS
                assert first + 7 in h2.er.index  # indexed at its due time, with gas now
                # never a full read: 300 entries would be 2 getLedgerEntries calls or more
                assert sum(c.checked for c in seen) < 10
                assert len(h2.er.state) >= last - first + 1

        asyncio.run(go())

    def test_a_registration_while_no_keeper_runs_is_read_after_the_restart(
        self, devnet: DevnetProcess, keys: Keys, changer: Changer, tmp_path: Path
    ) -> None:
        # the restart asks nothing before its first getEvents (the Counter is the saved
        # state's): the registration comes with the events since the position, its id read
        first, _ = devnet.seed_tasks(count=5, interval=LONG, last_run=0, gas_balance=0)
        spec = spec_for(devnet, keys, first, tmp_path)

        async def go() -> None:
            async with RpcClient(spec.rpc_url) as rpc:
                h1 = Harness(spec, rpc)
                assert (await h1.cycle()).rescans == 1
                saved_counter = h1.er.counter
                h1.er.save()
            ledger = applied_ledger(devnet, await asyncio.to_thread(changer.register))
            async with RpcClient(spec.rpc_url) as rpc:
                h2 = Harness(spec, rpc)
                await h2.er.resume()
                assert h2.er.counter == saved_counter  # from the saved state: no request
                assert rpc.total_calls == 0
                await h2.until_ledger(ledger)
                new_id = h2.er.counter
                assert new_id > saved_counter and h2.er.state.known(new_id)
                assert sum(c.rescans for c in h2.stats) == 0

        asyncio.run(go())

    def test_a_widened_range_is_read_in_full_after_the_restart(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        # the state saved for ids first..first+2 never followed first+3..first+5: resuming
        # from it would leave the tasks the shard gained unknown until the sweep reached them
        first, last = devnet.seed_tasks(count=6, interval=LONG, last_run=0, gas_balance=1)
        narrow = spec_for(devnet, keys, first, tmp_path, range_last=first + 2)
        wide = replace(narrow, range_last=last)

        async def go() -> Harness:
            async with RpcClient(narrow.rpc_url) as rpc:
                h1 = Harness(narrow, rpc)
                assert (await h1.cycle()).rescans == 1
                assert first + 3 not in h1.er.state
                h1.er.save()
            async with RpcClient(wide.rpc_url) as rpc:
                h2 = Harness(wide, rpc)
                await h2.cycle()
                return h2

        h2 = asyncio.run(go())
        rescans = h2.rep.events_of("rescan")
        assert len(rescans) == 1 and rescans[0]["tasks"] == 6
        assert "its range or id list changed" in rescans[0]["reason"]
        assert all(h2.er.state.known(i) for i in range(first, last + 1))

    def test_cursor_older_than_retention_leads_to_a_logged_full_read(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        first, _ = devnet.seed_tasks(count=5, interval=LONG, last_run=0, gas_balance=0)
        spec = spec_for(devnet, keys, first, tmp_path)

        async def go() -> tuple[int, Harness]:
            async with RpcClient(spec.rpc_url) as rpc:
                h1 = Harness(spec, rpc)
                await h1.cycle()
                saved_at = h1.er.last.sequence
                h1.er.save()
            # wait until the saved position has left the retention window
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if devnet.rpc("getLatestLedger")["sequence"] > saved_at + RETENTION + 2:
                    break
                await asyncio.sleep(0.2)
            async with RpcClient(spec.rpc_url) as rpc:
                h2 = Harness(spec, rpc)
                await h2.cycle()  # getEvents refuses the old cursor
                await h2.cycle()  # the full re-read
                return saved_at, h2

        saved_at, h2 = asyncio.run(go())
        rescans = h2.rep.events_of("rescan")
        assert len(rescans) == 1 and rescans[0]["tasks"] >= 5
        assert f"(ledger {saved_at})" in rescans[0]["reason"]
        assert "older than the RPC's oldest ledger" in rescans[0]["reason"]
        assert sum(c.rescans for c in h2.stats) == 1


class TestBudget:
    def test_max_requests_per_s_holds_for_everything_the_keeper_sends(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        first, last = devnet.seed_tasks(count=2000, interval=LONG, last_run=0, gas_balance=1)
        _, ref = keys.new()
        rate = 5.0
        spec = make_spec(
            devnet,
            ref,
            read_mode="events",
            range_first=first,
            range_last=last,
            max_requests_per_s=rate,
            poll_interval_s=0.1,
        )
        spec = replace(spec, sweep_every_ledgers=2)  # a sweep that would like to read a lot
        rep = RecordingReporter()

        def rpc_calls() -> int:
            calls = devnet.stats()["calls"]
            return sum(n for m, n in calls.items() if not m.startswith("devnet_"))

        before = rpc_calls()
        t0 = time.monotonic()
        asyncio.run(run_until(spec, rep, lambda: False, limit_s=6.0))
        elapsed = time.monotonic() - t0
        sent = rpc_calls() - before
        # the bucket starts full (one second of requests), then refills at the rate
        assert sent <= rate * elapsed + rate + 1, (sent, elapsed)
        assert sent >= rate * elapsed * 0.5  # it did work at about the allowed pace
        assert sum(sum(c.budget_waits.values()) for c in rep.cycles) > 0
        # counted by the priority that waited (the alert reads only due work and ledgers')
        waited = set().union(*(c.budget_waits for c in rep.cycles))
        assert waited and waited <= set(PRIORITY_NAMES), waited
        assert not rep.fatals


class TestRechecksRideInTheReadPath:
    def test_one_get_ledger_entries_a_ledger_with_rechecks(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        """One source account and more tasks due every ledger than it can execute: each
        execution is prepared while the account's previous transaction waits for its ledger,
        so it is rechecked when sent. The rechecks take the read path's call of that ledger
        (shard_worker.sharedreads): about one getLedgerEntries a ledger, as counted by the
        devnet, not one more for the rechecks."""
        first, last = devnet.seed_tasks(count=6, interval=5, last_run=0, gas_balance=10**9)
        _, ref = keys.new()
        spec = make_spec(
            devnet,
            ref,
            read_mode="events",
            range_first=first,
            range_last=last,
            max_concurrent_executions=1,
        )
        rep = RecordingReporter()

        def calls() -> tuple[int, int]:
            stats = devnet.stats()
            return stats["calls"].get("getLedgerEntries", 0), int(stats["ledger"])

        def executed() -> int:
            return sum(c.executed for c in rep.cycles)

        async def go() -> tuple[int, int]:
            task = asyncio.create_task(run_until(spec, rep, lambda: executed() >= 16, 20.0))
            for _ in range(400):  # the initial full read and warm-up (at most 20 s)
                if task.done() or executed() >= 4:
                    break
                await asyncio.sleep(0.05)
            before = await asyncio.to_thread(calls)
            await task
            after = await asyncio.to_thread(calls)
            return after[0] - before[0], after[1] - before[1]

        reads, ledgers = asyncio.run(go())
        final = rep.goodbyes[-1]
        shared, own = final["recheck_reads_shared"], final["recheck_reads_own"]
        assert not rep.fatals and executed() >= 16 and ledgers >= 8
        # (measured: 16 rechecks shared, none of their own; 12 calls in 12 ledgers)
        assert shared >= 8 and own <= shared // 2, final
        # the read path's call a ledger, the balances' once in 12, any recheck of its own
        assert reads <= ledgers + 2 + own, (reads, ledgers, final)
        assert final["not_sent_stale"] == 0 and final["failed"] == 0


class TestNewIds:
    @staticmethod
    def reader(**kw: Any) -> EventReader:
        spec = offline_spec(read_mode="events", **kw)
        return Harness(spec, RpcClient(spec.rpc_url)).er

    def test_a_rising_counter_names_only_the_shards_new_ids(self) -> None:
        er = self.reader(range_first=101, range_last=200)
        assert er._set_counter(150) == list(range(101, 151))
        assert er._set_counter(150) == [] and er._set_counter(120) == []
        assert er._set_counter(170) == list(range(151, 171))
        assert er._set_counter(10**6) == list(range(171, 201))  # the range ends at 200
        assert er._set_counter(10**6 + 5) == []
        listed = self.reader(task_ids=(3, 7, 9, 40))
        assert listed._set_counter(8) == [3, 7] and listed._set_counter(50) == [9, 40]

    def test_without_scanning_the_shards_ids(self) -> None:
        """The last shard of 1M tasks holds 125k ids; each registration raised the Counter
        and the new ids were found by a scan of all of them (3 ms a ledger a shard)."""
        er = self.reader(range_first=1, range_last=None)
        er._set_counter(200_000)
        t0 = time.process_time()
        for n in range(1, 2001):
            assert er._set_counter(200_000 + n) == [200_000 + n]
        assert time.process_time() - t0 < 1.0  # a scan: 2,000 x 200k ids
