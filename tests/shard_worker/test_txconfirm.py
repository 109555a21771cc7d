"""A sent transaction confirmed (``shard_worker.txconfirm``) with a scripted fake RPC: every
final status counted once with its fee, an expired one a tx error, getTransaction asked once
a ledger with a paced clock."""

from __future__ import annotations

import asyncio

from stellar_sdk import Keypair
from stellar_sdk import xdr as sx

from shard_worker.accounts import SourceAccount
from shard_worker.ledger import Latest
from tests.shard_worker.test_executor import events_of, journaled, make_executor, tx_result
from tests.shard_worker.test_simcheck import TASK
from tests.support.fake_rpc import FakeRpc


class TestConfirm:
    def test_success_is_counted_once_with_its_fee(self) -> None:
        kp = Keypair.random()
        res = {
            "status": "SUCCESS",
            "ledger": 80,
            "resultXdr": tx_result(sx.TransactionResultCode.txSUCCESS, 12_345),
        }
        ex = make_executor(kp, FakeRpc({"getTransaction": [{"status": "NOT_FOUND"}, res]}))
        acc = SourceAccount(ex.identity.keeper, True)
        entry = journaled(ex, kp)
        asyncio.run(asyncio.wait_for(ex.submitter.confirm(entry, acc, 0.0), 10))
        c, totals = ex.tally.cycle, ex.tally.totals
        assert (c.executed, c.failed, c.fees, len(c.exec_times)) == (1, 0, 12_345, 1)
        assert (totals["executed"], totals["failed"], totals["fees_spent"]) == (1, 0, 12_345)
        assert entry.hash not in ex.submitter.journal
        assert events_of(ex, "executed") == [
            {
                "task_id": TASK,
                "tx_hash": entry.hash,
                "ledger": 80,
                "fee": 12_345,
                "source": kp.public_key,
            }
        ]
        assert not ex.holds.backoff

    def test_with_a_paced_clock_getTransaction_is_asked_once_a_ledger(self) -> None:
        """In the events read mode a poller sees each new ledger just after its close: the
        confirmation waits for the next ledger instead of asking every confirm_poll_s (it was
        about 16 getTransaction a transaction, most of the keeper's requests and CPU)."""
        kp = Keypair.random()
        waiting = {"status": "NOT_FOUND", "latestLedger": 10, "latestLedgerCloseTime": "100"}
        res = {"status": "SUCCESS", "ledger": 11, "resultXdr": "!!"}
        rpc = FakeRpc({"getTransaction": [waiting, res]})
        ex = make_executor(kp, rpc, confirm_poll_s=0.05)
        ex.clock.paced = True
        entry = journaled(ex, kp)

        async def go() -> float:
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, ex.clock.note, Latest(11, 105))
            t0 = loop.time()
            await asyncio.wait_for(ex.submitter.confirm(entry, None, 0.0), 10)
            return loop.time() - t0

        assert asyncio.run(go()) >= 0.25
        assert [m for m, _ in rpc.calls] == ["getTransaction", "getTransaction"]
        assert ex.tally.totals["executed"] == 1

    def test_a_transaction_queued_at_a_known_ledger_is_first_asked_after_it(self) -> None:
        """With a paced clock the first getTransaction waits for a ledger after the one the
        transaction was queued at (asked at once it was always NOT_FOUND: a request an
        execution)."""
        kp = Keypair.random()
        res = {"status": "SUCCESS", "ledger": 11, "resultXdr": "!!"}
        rpc = FakeRpc({"getTransaction": [res]})
        ex = make_executor(kp, rpc, confirm_poll_s=0.05)
        ex.clock.paced = True
        ex.clock.note(Latest(10, 100))
        entry = journaled(ex, kp)

        async def go() -> float:
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, ex.clock.note, Latest(11, 105))
            t0 = loop.time()
            await asyncio.wait_for(ex.submitter.confirm(entry, None, 0.0, queued_at=10), 10)
            return loop.time() - t0

        assert asyncio.run(go()) >= 0.25
        assert [m for m, _ in rpc.calls] == ["getTransaction"]
        assert ex.tally.totals["executed"] == 1

    def test_failure_is_counted_once_with_its_fee_and_backs_off(self) -> None:
        kp = Keypair.random()
        res = {"status": "FAILED", "resultXdr": tx_result(sx.TransactionResultCode.txFAILED, 700)}
        ex = make_executor(kp, FakeRpc({"getTransaction": [res]}))
        ex.clock.last_read = Latest(90, 5_000)
        entry = journaled(ex, kp)
        asyncio.run(asyncio.wait_for(ex.submitter.confirm(entry, None, 0.0), 10))
        c, totals = ex.tally.cycle, ex.tally.totals
        assert (c.executed, c.failed, c.fees, c.exec_times) == (0, 1, 700, [])
        assert (totals["executed"], totals["failed"], totals["fees_spent"]) == (0, 1, 700)
        assert entry.hash not in ex.submitter.journal
        assert ex.holds.backoff[TASK] == (91, 1)
        assert events_of(ex, "failed") == [
            {"task_id": TASK, "reason": "tx_failed", "tx_hash": entry.hash}
        ]

    def test_a_garbled_result_counts_no_fee(self) -> None:
        kp = Keypair.random()
        ex = make_executor(
            kp, FakeRpc({"getTransaction": [{"status": "SUCCESS", "resultXdr": "!!"}]})
        )
        entry = journaled(ex, kp)
        asyncio.run(asyncio.wait_for(ex.submitter.confirm(entry, None, 0.0), 10))
        assert ex.tally.totals["executed"] == 1 and ex.tally.totals["fees_spent"] == 0

    def test_expired_unapplied_is_a_tx_error_and_resyncs_the_source(self) -> None:
        kp = Keypair.random()
        gone = {"status": "NOT_FOUND", "latestLedgerCloseTime": "10000"}
        ex = make_executor(kp, FakeRpc({"getTransaction": [gone]}))
        acc = SourceAccount(ex.identity.keeper, True, sequence=42, needs_resync=False)
        entry = journaled(ex, kp, max_time=9_999)
        asyncio.run(asyncio.wait_for(ex.submitter.confirm(entry, acc, 0.0), 10))
        assert acc.needs_resync
        assert entry.hash not in ex.submitter.journal
        assert ex.tally.totals["tx_errors"] == 1 and ex.tally.totals["executed"] == 0
        assert events_of(ex, "tx_error")[0]["reason"] == (
            "not applied before its time bound (expired)"
        )
