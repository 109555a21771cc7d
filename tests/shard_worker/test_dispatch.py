"""The execution queue (shard_worker.dispatch): first come first served across ledgers, one
task per free source account, journaled transactions resolved before their account or task
is reused, and what a stop drops. Scripted fake RPC, a recording executor; no network."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stellar_sdk import Keypair
from stellar_sdk import xdr as sx

from shard_worker.accounts import SourceAccount, SourceAccounts
from shard_worker.dispatch import Dispatcher
from shard_worker.executor import Executor
from shard_worker.journal import Journal, JournalEntry
from sorotask_core.signing import Signer
from tests.shard_worker.test_executor import make_executor, tx_result
from tests.support.fake_rpc import FakeRpc


class RecordingExecutor(Executor):
    """Executes nothing: records (source, task id) and holds each execution ``hold_s``."""

    hold_s = 0.0

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.done: list[tuple[str, int]] = []
        self.all_done = asyncio.Event()
        self.expect = 0

    async def execute(self, acc: SourceAccount, task_id: int, release: Any = None) -> None:
        self.holds.in_flight.add(task_id)
        try:
            await asyncio.sleep(self.hold_s)
            self.done.append((acc.public_key, task_id))
            if len(self.done) >= self.expect:
                self.all_done.set()
        finally:
            self.holds.in_flight.discard(task_id)


class LandingExecutor(RecordingExecutor):
    """Hands each execution's account over to a "landing" beside the workers, which gives it
    back through ``release`` after ``land_s`` (as the executor does once the transaction is
    queued)."""

    land_s = 0.05

    async def execute(self, acc: SourceAccount, task_id: int, release: Any = None) -> bool:
        await super().execute(acc, task_id, release)
        assert release is not None

        async def land() -> None:
            await asyncio.sleep(self.land_s)
            release()

        self.submitter.beside(land(), f"land-{task_id}")
        return True


def make_dispatcher(
    rpc: FakeRpc | None = None,
    *,
    channels: int = 0,
    state_dir: Path | None = None,
    recording: bool = True,
    landing: bool = False,
    **spec_kw: Any,
) -> tuple[Dispatcher, Executor, list[SourceAccount]]:
    kp = Keypair.random()
    rpc = rpc or FakeRpc({})
    base = make_executor(kp, rpc, **spec_kw)
    executor = base
    if recording:
        executor = (LandingExecutor if landing else RecordingExecutor)(
            base.spec,
            base.rpc,
            base.events,
            identity=base.identity,
            accounts=base.accounts,
            submitter=base.submitter,
            holds=base.holds,
            clock=base.clock,
            tally=base.tally,
        )
    sources = [
        SourceAccount(Signer.from_secret(Keypair.random().secret), False) for _ in range(channels)
    ] + [SourceAccount(base.identity.keeper, True)]
    accounts = SourceAccounts(sources, rpc)  # type: ignore[arg-type]
    executor.accounts = accounts
    journal = Journal(state_dir, "t")
    executor.submitter.journal = journal
    d = Dispatcher(
        executor.spec,
        executor,
        executor.submitter,
        accounts,
        journal,
        executor.events,
        executor.tally,
    )
    return d, executor, sources


class TestQueue:
    def test_tasks_still_due_keep_their_place_ahead_of_new_ones(self) -> None:
        d, _, _ = make_dispatcher()
        d.enqueue([5, 3, 9])
        d.enqueue([1, 9, 3, 7])  # 5 no longer due: dropped; 1 and 7 newly due
        assert list(d.queue) == [3, 9, 1, 7]
        d.enqueue([])
        assert list(d.queue) == []

    def test_next_task_skips_tasks_in_flight(self) -> None:
        d, ex, _ = make_dispatcher()
        ex.holds.in_flight.add(3)
        d.enqueue([3, 4])
        assert asyncio.run(d.next_task()) == 4
        assert list(d.queue) == []

    def test_a_stopping_queue_takes_nothing(self) -> None:
        d, ex, _ = make_dispatcher()
        ex.submitter.stopping = True
        d.enqueue([1, 2])
        assert list(d.queue) == []
        assert asyncio.run(d.next_task()) is None


class TestWorkers:
    def test_each_task_runs_once_one_per_free_account(self) -> None:
        d, ex, sources = make_dispatcher(channels=2, max_concurrent_executions=3)
        assert isinstance(ex, RecordingExecutor)
        ex.hold_s = 0.05
        ex.expect = 9

        async def go() -> None:
            d.start()
            d.enqueue(list(range(1, 10)))
            await asyncio.wait_for(ex.all_done.wait(), 10)
            await d.drain()

        asyncio.run(go())
        assert sorted(t for _, t in ex.done) == list(range(1, 10))
        assert {s for s, _ in ex.done} <= {a.public_key for a in sources}
        assert len({s for s, _ in ex.done}) > 1  # the channels took work too
        assert ex.tally.totals["dropped_unsent_at_stop"] == 0

    def test_accounts_handed_to_a_landing_come_back_each_once(self) -> None:
        """Each execution's account is released by its own landing, after the worker moved
        on (a release shared by a worker's executions would lose accounts)."""
        d, ex, sources = make_dispatcher(channels=2, landing=True, max_concurrent_executions=2)
        assert isinstance(ex, LandingExecutor)
        ex.expect = 12

        async def go() -> int:
            d.start()
            d.enqueue(list(range(1, 13)))
            await asyncio.wait_for(ex.all_done.wait(), 10)
            await asyncio.wait_for(asyncio.gather(*d.submitter.sending), 5)
            await d.drain()  # the idle workers give back the accounts they waited with
            return d.accounts.free

        assert asyncio.run(go()) == len(sources)  # every account back in the pool, once
        assert sorted(t for _, t in ex.done) == list(range(1, 13))

    def test_a_stop_waits_for_a_confirmation_a_landing_starts_meanwhile(self) -> None:
        d, ex, _ = make_dispatcher(landing=True, max_concurrent_executions=1, stop_grace_s=5)
        assert isinstance(ex, LandingExecutor)
        ex.land_s = 0.2
        ex.expect = 1
        confirmed: list[int] = []

        async def confirm() -> None:
            await asyncio.sleep(0.2)
            confirmed.append(1)

        real = ex.submitter.beside

        def beside(work: Any, name: str) -> Any:
            async def then() -> None:  # the landing, then its confirmation beside
                await work
                real(confirm(), "confirm")

            return real(then(), name)

        ex.submitter.beside = beside  # type: ignore[method-assign]

        async def go() -> None:
            d.start()
            d.enqueue([1])
            await asyncio.wait_for(ex.all_done.wait(), 10)  # the landing has begun
            await asyncio.wait_for(d.drain(), 10)

        asyncio.run(go())
        assert confirmed == [1]
        assert ex.tally.totals["sent_unresolved_at_stop"] == 0

    def test_a_stop_drops_what_was_not_sent(self) -> None:
        d, ex, _ = make_dispatcher(max_concurrent_executions=1)
        assert isinstance(ex, RecordingExecutor)
        ex.hold_s = 30.0  # never finishes on its own

        async def go() -> None:
            d.start()
            d.enqueue([1, 2, 3])
            await asyncio.sleep(0.1)  # the one account is busy with task 1
            await asyncio.wait_for(d.drain(), 10)

        asyncio.run(go())
        assert ex.done == []
        # two still queued, one being prepared (nothing sent for it)
        assert ex.tally.totals["dropped_unsent_at_stop"] == 3
        assert ex.tally.totals["sent_unresolved_at_stop"] == 0


class TestJournal:
    def test_a_journaled_transaction_holds_its_account_and_task_until_resolved(
        self, tmp_path: Path
    ) -> None:
        applied = {
            "status": "SUCCESS",
            "ledger": 9,
            "resultXdr": tx_result(sx.TransactionResultCode.txSUCCESS, 321),
        }
        rpc = FakeRpc({"getTransaction": [{"status": "NOT_FOUND"}, applied]})
        d, ex, sources = make_dispatcher(
            rpc, state_dir=tmp_path, recording=False, channels=1, max_concurrent_executions=1
        )
        channel = sources[0]
        old = Journal(tmp_path, "t")
        old.add(
            JournalEntry(
                hash="cd" * 32, task_id=77, source=channel.public_key, sequence=8, max_time=10**12
            )
        )

        async def go() -> tuple[int, bool, SourceAccount]:
            d.start()
            await asyncio.sleep(0.05)
            # the one worker took the keeper's account; the channel is held, and task 77
            held = (d.accounts.free, 77 in d.in_flight)
            released = await asyncio.wait_for(d.accounts.acquire(), 10)  # once resolved
            d.accounts.release(released)
            await d.drain()
            return held[0], held[1], released

        free_at_start, held_task, released = asyncio.run(go())
        assert free_at_start == 0 and held_task
        assert released is channel and channel.needs_resync
        assert 77 not in d.in_flight
        assert len(d.journal) == 0
        assert ex.tally.totals["executed"] == 1 and ex.tally.totals["fees_spent"] == 321
