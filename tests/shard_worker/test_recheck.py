"""A prepared execution whose simulation is older than the newest ledger is sent only if a fresh
read shows the task still due (another keeper may have executed it in a ledger closed since:
``execute`` emits no event). The pure verdict, then the executor with a scripted RPC."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from stellar_sdk import Keypair

from shard_worker.accounts import SourceAccount
from shard_worker.errors import RpcMalformedError, RpcTransportError
from shard_worker.ledger import Latest
from shard_worker.recheck import MAX_KEYS, EntryBatcher, needs_recheck, verdict
from shard_worker.sharedreads import SharedReads
from sorotask_core import contract
from tests.shard_worker.test_executor import events_of, make_executor
from tests.shard_worker.test_simcheck import TASK, genuine
from tests.support.fake_rpc import FakeRpc
from tests.support.ledger_entries import CONTRACT_ID, entry_b64, task_config

KEYS = contract.TaskKeys(CONTRACT_ID)
KEY = KEYS.key_b64(TASK)
KEEPER = Keypair.random()
ME = contract.sc_address_bytes(KEEPER.public_key)
#: the simulation's ledger (``genuine``'s latestLedger) and a newer one
SIMULATED_AT = 77
NEWER = Latest(SIMULATED_AT + 1, 5_000)


def answer(**kw: Any) -> list[dict[str, Any]]:
    return [{"key": KEY, "xdr": entry_b64(task_config(**kw), TASK), "liveUntilLedgerSeq": 999}]


class TestVerdict:
    def test_a_ledger_after_the_simulation_needs_a_read(self) -> None:
        assert needs_recheck(SIMULATED_AT, SIMULATED_AT + 1)
        assert not needs_recheck(SIMULATED_AT, SIMULATED_AT)
        assert not needs_recheck(SIMULATED_AT, SIMULATED_AT - 1)

    def test_still_due(self) -> None:
        assert verdict(answer(last_run=1_000, interval=60), KEY, NEWER, ME) is None

    def test_executed_meanwhile_is_not_due(self) -> None:
        # another keeper's execution moved last_run to that ledger's close time
        assert verdict(answer(last_run=5_000, interval=60), KEY, NEWER, ME) == "not_due"

    def test_gas_withdrawn_or_task_gone(self) -> None:
        assert verdict(answer(gas_balance=0), KEY, NEWER, ME) == "no_gas"
        assert verdict([], KEY, NEWER, ME) == "missing"
        assert verdict([{"key": "other", "xdr": "AAAA"}], KEY, NEWER, ME) == "missing"

    def test_an_undecodable_entry_is_a_malformed_answer(self) -> None:
        with pytest.raises(RpcMalformedError):
            verdict([{"key": KEY, "xdr": "AAAA"}], KEY, NEWER, ME)
        with pytest.raises(RpcMalformedError):
            verdict([{"key": KEY}], KEY, NEWER, ME)


def prepared(rpc: FakeRpc, newest: Latest) -> Any:
    """An executor whose cycle loop has just seen ``newest`` (no getLatestLedger needed)."""
    ex = make_executor(KEEPER, rpc, confirm_poll_s=0.05)
    ex.clock.newest = newest
    ex.clock.newest_seen_at = time.monotonic()
    ex.clock.last_read = newest
    return ex


def keeper_account(ex: Any) -> SourceAccount:
    return SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)


class TestExecutorSendsOnlyWhatIsStillDue:
    def test_executed_by_another_keeper_after_the_simulation_is_not_sent(self) -> None:
        rpc = FakeRpc(
            {
                "simulateTransaction": [genuine(KEEPER)],
                "getLedgerEntries": [{"entries": answer(last_run=5_000), "latestLedger": 78}],
            }
        )
        ex = prepared(rpc, NEWER)
        acc = keeper_account(ex)
        asyncio.run(ex.execute(acc, TASK))
        assert [m for m, _ in rpc.calls] == ["simulateTransaction", "getLedgerEntries"]
        assert ex.tally.totals["not_sent_stale"] == 1 and ex.tally.cycle.not_sent == 1
        assert ex.tally.totals["failed"] == 0 and ex.tally.totals["executed"] == 0
        assert TASK not in ex.holds.backoff and TASK not in ex.holds.in_flight
        assert acc.sequence == 41 and not ex.submitter.journal.load()
        assert events_of(ex, "not_sent") == [
            {"task_id": TASK, "reason": "stale", "skip": "not_due"}
        ]

    def test_still_due_after_the_read_is_sent(self) -> None:
        rpc = FakeRpc(
            {
                "simulateTransaction": [genuine(KEEPER)],
                "getLedgerEntries": [{"entries": answer(last_run=1_000), "latestLedger": 78}],
                "sendTransaction": [{"status": "PENDING"}],
                "getTransaction": [{"status": "SUCCESS", "ledger": 79}],
            }
        )
        ex = prepared(rpc, NEWER)
        asyncio.run(ex.execute(keeper_account(ex), TASK))
        assert ex.tally.totals["executed"] == 1 and ex.tally.totals["not_sent_stale"] == 0

    def test_prepared_behind_the_accounts_queued_transaction_is_read_again(self) -> None:
        """The bench's wasted transaction: the account's previous transaction was queued at
        the ledger the next one was simulated against, so the next one is sent only after a
        ledger closed (the one that applies the previous), whatever the cycle loop has seen:
        in that ledger another keeper executed the task."""
        queued_at = {"status": "PENDING", "latestLedger": SIMULATED_AT}
        rpc = FakeRpc(
            {
                "simulateTransaction": [genuine(KEEPER), genuine(KEEPER)],
                "sendTransaction": [queued_at],
                "getTransaction": [{"status": "SUCCESS", "ledger": SIMULATED_AT + 1}],
                "getLedgerEntries": [{"entries": answer(last_run=5_000), "latestLedger": 78}],
            }
        )
        # the cycle loop has not seen a newer ledger than the simulations' (a poll behind)
        ex = prepared(rpc, Latest(SIMULATED_AT, 4_995))
        acc = keeper_account(ex)

        async def two() -> None:
            released = asyncio.Event()
            assert await ex.execute(acc, TASK, released.set)  # landed and confirmed beside
            await asyncio.wait_for(released.wait(), 5)  # the account is free once queued
            await ex.execute(acc, TASK)  # (the executor does not check in_flight)
            me = asyncio.current_task()
            confirming = [t for t in ex.submitter.sending if t is not me]
            await asyncio.wait_for(asyncio.gather(*confirming), 5)

        asyncio.run(two())
        assert [m for m, _ in rpc.calls].count("sendTransaction") == 1
        assert ex.tally.totals["not_sent_stale"] == 1 and ex.tally.totals["executed"] == 1

    def test_a_simulation_of_the_newest_ledger_is_sent_without_a_read(self) -> None:
        rpc = FakeRpc(
            {
                "simulateTransaction": [genuine(KEEPER)],
                "sendTransaction": [{"status": "PENDING"}],
                "getTransaction": [{"status": "SUCCESS", "ledger": 78}],
            }
        )
        ex = prepared(rpc, Latest(SIMULATED_AT, 4_995))
        asyncio.run(ex.execute(keeper_account(ex), TASK))
        assert "getLedgerEntries" not in [m for m, _ in rpc.calls]
        assert ex.tally.totals["executed"] == 1


class TestEntryBatcher:
    """Rechecks cluster after each close under a backlog (about one an execution): reads asked
    for within the window share one getLedgerEntries call."""

    def test_reads_within_the_window_share_one_call_and_its_answer(self) -> None:
        answer = {"entries": [{"key": "k1", "xdr": "x1"}, {"key": "k2", "xdr": "x2"}]}
        rpc = FakeRpc({"getLedgerEntries": [answer]})
        batcher = EntryBatcher(rpc, window_s=0.05)  # type: ignore[arg-type]

        async def go() -> list[list[dict[str, Any]]]:
            return list(await asyncio.gather(*(batcher.read(k) for k in ("k1", "k2", "k1"))))

        got = asyncio.run(go())
        assert rpc.calls == [("getLedgerEntries", {"keys": ["k1", "k2"]})]  # one call, deduped
        assert got == [answer["entries"]] * 3

    def test_a_read_after_the_flush_makes_a_new_call(self) -> None:
        rpc = FakeRpc({"getLedgerEntries": [{"entries": []}, {"entries": []}]})
        batcher = EntryBatcher(rpc, window_s=0.01)  # type: ignore[arg-type]

        async def go() -> None:
            await batcher.read("a")
            await batcher.read("b")

        asyncio.run(go())
        assert [p["keys"] for _, p in rpc.calls] == [["a"], ["b"]]

    def test_a_full_batch_goes_at_once(self) -> None:
        rpc = FakeRpc({"getLedgerEntries": [{"entries": []}]})
        batcher = EntryBatcher(rpc, window_s=60.0)  # type: ignore[arg-type]  # only a full batch

        async def go() -> None:
            keys = [f"k{i}" for i in range(MAX_KEYS)]
            await asyncio.wait_for(asyncio.gather(*(batcher.read(k) for k in keys)), 5)

        asyncio.run(go())
        assert len(rpc.calls) == 1 and len(rpc.calls[0][1]["keys"]) == MAX_KEYS

    def test_a_failed_call_fails_every_reader(self) -> None:
        busy = RpcTransportError("getLedgerEntries", "HTTP 503", status=503)
        rpc = FakeRpc({"getLedgerEntries": [busy]})
        batcher = EntryBatcher(rpc, window_s=0.01)  # type: ignore[arg-type]

        async def go() -> list[Any]:
            reads = (batcher.read(k) for k in ("a", "b"))
            return list(await asyncio.gather(*reads, return_exceptions=True))

        assert asyncio.run(go()) == [busy, busy]


class TestSharedWithTheReadPath:
    """In the events read mode a prepared task's key rides in the read path's call of each
    ledger (shard_worker.sharedreads): a recheck takes that call's answer when it is of the
    ledger needed, and reads on its own otherwise."""

    @staticmethod
    def recheck_of(rpc: FakeRpc) -> tuple[Any, SourceAccount, SharedReads]:
        ex = prepared(rpc, NEWER)
        shared = SharedReads()
        ex.recheck.shared = shared
        ex.recheck.wait_for_read_s = 0.2
        return ex.recheck, keeper_account(ex), shared

    def test_the_read_paths_answer_of_the_newest_ledger_saves_the_call(self) -> None:
        rpc = FakeRpc({})  # any call would fail: none is made
        rc, acc, shared = self.recheck_of(rpc)

        async def go() -> bool:
            rc.prepared(TASK)
            assert shared.watched_ids() == [TASK]
            read = shared.reading(NEWER.sequence, [KEY])
            SharedReads.answered(read, answer(last_run=5_000))  # another keeper executed it
            return await rc.still_due(TASK, SIMULATED_AT, acc)

        assert asyncio.run(go()) is False
        assert rpc.calls == [] and (rc.shared_reads, rc.own_reads) == (1, 0)
        assert shared.watched_ids() == []  # done: no longer rides

    def test_a_call_in_flight_is_waited_for(self) -> None:
        rpc = FakeRpc({})
        rc, acc, shared = self.recheck_of(rpc)

        async def go() -> bool:
            rc.prepared(TASK)
            read = shared.reading(NEWER.sequence, [KEY])
            checking = asyncio.ensure_future(rc.still_due(TASK, SIMULATED_AT, acc))
            await asyncio.sleep(0.01)
            assert not checking.done()
            SharedReads.answered(read, answer(last_run=1_000))  # still due
            return await asyncio.wait_for(checking, 5)

        assert asyncio.run(go()) is True
        assert rpc.calls == [] and rc.shared_reads == 1

    def test_an_older_read_or_a_failed_one_means_a_call_of_its_own(self) -> None:
        rpc = FakeRpc({"getLedgerEntries": [{"entries": answer(last_run=5_000)}] * 2})
        rc, acc, shared = self.recheck_of(rpc)

        async def go() -> list[bool]:
            rc.prepared(TASK)
            old = shared.reading(SIMULATED_AT, [KEY])  # before the ledger that matters
            SharedReads.answered(old, answer(last_run=1_000))
            first = await rc.still_due(TASK, SIMULATED_AT, acc)
            rc.prepared(TASK)
            SharedReads.failed(shared.reading(NEWER.sequence, [KEY]))
            return [first, await rc.still_due(TASK, SIMULATED_AT, acc)]

        assert asyncio.run(go()) == [False, False]
        assert [m for m, _ in rpc.calls] == ["getLedgerEntries"] * 2
        assert (rc.shared_reads, rc.own_reads) == (0, 2)

    def test_a_recheck_before_the_read_paths_call_of_its_ledger_waits_for_it(self) -> None:
        """A transaction's answer may show the new ledger before the read path's poll does:
        the recheck waits for that ledger's call instead of making its own."""
        rpc = FakeRpc({})
        rc, acc, shared = self.recheck_of(rpc)
        rc.wait_for_read_s = 5.0

        async def go() -> bool:
            rc.prepared(TASK)
            SharedReads.answered(shared.reading(SIMULATED_AT, [KEY]), answer(last_run=1_000))
            checking = asyncio.ensure_future(rc.still_due(TASK, SIMULATED_AT, acc))
            await asyncio.sleep(0.05)
            assert not checking.done()  # waiting for the call of ledger 78
            read = shared.reading(NEWER.sequence, [KEY])
            await asyncio.sleep(0)
            SharedReads.answered(read, answer(last_run=5_000))
            return await asyncio.wait_for(checking, 5)

        assert asyncio.run(go()) is False
        assert rpc.calls == [] and (rc.shared_reads, rc.own_reads) == (1, 0)

    def test_a_read_path_that_does_not_come_is_not_waited_for_long(self) -> None:
        rpc = FakeRpc({"getLedgerEntries": [{"entries": answer(last_run=1_000)}]})
        rc, acc, _ = self.recheck_of(rpc)

        async def go() -> tuple[bool, float]:
            rc.prepared(TASK)
            t0 = time.monotonic()
            return await rc.still_due(TASK, SIMULATED_AT, acc), time.monotonic() - t0

        still_due, took = asyncio.run(go())
        assert still_due and rc.own_reads == 1 and 0.15 <= took < 2.0

    def test_the_executor_stops_watching_what_it_sent(self) -> None:
        rpc = FakeRpc(
            {
                "simulateTransaction": [genuine(KEEPER)],
                "getLedgerEntries": [{"entries": answer(last_run=1_000), "latestLedger": 78}],
                "sendTransaction": [{"status": "PENDING"}],
                "getTransaction": [{"status": "SUCCESS", "ledger": 79}],
            }
        )
        ex = prepared(rpc, NEWER)
        ex.recheck.shared = shared = SharedReads()
        asyncio.run(ex.execute(keeper_account(ex), TASK))
        assert ex.tally.totals["executed"] == 1 and ex.recheck.own_reads == 1
        assert shared.watched_ids() == []
