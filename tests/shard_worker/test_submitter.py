"""Landing a transaction (``shard_worker.submitter``) with a scripted fake RPC: an unknown
send outcome settled by resending the same envelope, a restarted worker's journaled envelope
resent, an account's next transaction waiting its turn."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from stellar_sdk import Keypair
from stellar_sdk import xdr as sx

from shard_worker.accounts import SourceAccount
from shard_worker.errors import RpcError, RpcResponseError, RpcTransportError
from shard_worker.executor import Executor
from shard_worker.journal import JournalEntry
from shard_worker.ledger import Latest
from tests.shard_worker.test_executor import events_of, make_executor
from tests.shard_worker.test_simcheck import TASK
from tests.shard_worker.test_txsend import error_answer
from tests.support.fake_rpc import FakeRpc


class TestWaitTurn:
    def test_with_a_paced_clock_the_next_turn_is_woken_by_the_next_ledger(self) -> None:
        """An account's next transaction waits for the ledger after the one its previous
        was queued at: woken by the poller's sighting (it polled every 50 ms before)."""
        kp = Keypair.random()
        ex = make_executor(kp, FakeRpc({}))
        sub = ex.submitter
        sub.clock.paced = True
        sub.clock.note(Latest(10, 100))
        acc = SourceAccount(ex.identity.keeper, True)

        async def go() -> float:
            loop = asyncio.get_running_loop()
            confirming = asyncio.ensure_future(asyncio.sleep(30))  # never final here
            sub._confirming[acc.public_key] = confirming
            sub._queued_at[acc.public_key] = 10
            loop.call_later(0.3, sub.clock.note, Latest(11, 105))
            t0 = loop.time()
            await asyncio.wait_for(sub.wait_turn(acc), 5)
            confirming.cancel()
            return loop.time() - t0

        assert 0.25 <= asyncio.run(go()) < 1.0  # at the sighting, not after the 1 s wait


class TestSettle:
    """An unknown send outcome settled by resending the same envelope."""

    def run_submit(
        self, answers: list[Any], gets: list[Any], *, close_after_s: float = 0.05
    ) -> tuple[Executor, SourceAccount]:
        """Submit through a fake RPC while a stand-in read loop moves the keeper's clock to
        ledger 11 once, ``close_after_s`` after the start (ledger 10 before)."""
        kp = Keypair.random()
        rpc = FakeRpc({"sendTransaction": answers, "getTransaction": gets})
        ex = make_executor(kp, rpc, confirm_poll_s=0.05)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = JournalEntry(
            hash="ab" * 32, task_id=TASK, source=kp.public_key, sequence=42, max_time=9_999
        )
        ex.holds.in_flight.add(TASK)
        ex.clock.newest = Latest(10, 1_000)
        released: list[bool] = []
        sent_at: list[float] = []
        self.closed_at = 0.0

        async def close_a_ledger() -> None:
            await asyncio.sleep(close_after_s)
            self.closed_at = time.monotonic()
            ex.clock.newest = Latest(11, 1_005)

        async def go() -> None:
            closer = asyncio.create_task(close_a_ledger())
            detached = await ex.submitter.submit(
                "AAAA", entry, acc, 0.0, lambda: released.append(True)
            )
            if detached:  # the confirmation runs beside: wait for it
                me = asyncio.current_task()
                others = [t for t in ex.submitter.sending if t is not me]
                assert others
                await asyncio.wait_for(asyncio.gather(*others), 5)
            closer.cancel()

        real_call = rpc.call

        async def timed_call(method: str, params: Any = None, **kw: Any) -> Any:
            if method == "sendTransaction":
                sent_at.append(time.monotonic())
            return await real_call(method, params, **kw)

        rpc.call = timed_call  # type: ignore[method-assign]
        asyncio.run(asyncio.wait_for(go(), 10))
        self.released = released
        self.sent_at = sent_at
        self.envelopes = [p for m, p in rpc.calls if m == "sendTransaction"]
        self.calls = rpc.calls
        return ex, acc

    def test_duplicate_after_a_lost_answer_frees_the_account_and_confirms(self) -> None:
        lost = RpcTransportError("sendTransaction", "transport error (dropped)")
        success = {"status": "SUCCESS", "ledger": 7}
        ex, acc = self.run_submit(
            [lost, {"status": "DUPLICATE"}], [{"status": "NOT_FOUND"}, success]
        )
        assert self.envelopes == [{"transaction": "AAAA"}] * 2  # the same envelope twice
        assert ex.tally.cycle.sends == {"uncertain": 1, "resent": 1, "DUPLICATE": 1}
        assert self.released == [True] and not acc.needs_resync
        assert ex.tally.totals["executed"] == 1 and TASK not in ex.holds.in_flight

    def test_bad_seq_after_a_resend_lets_get_transaction_decide(self) -> None:
        lost = RpcTransportError("sendTransaction", "timeout", kind="timeout")
        bad_seq = error_answer(sx.TransactionResultCode.txBAD_SEQ)
        ex, acc = self.run_submit(
            [lost, bad_seq], [{"status": "NOT_FOUND"}, {"status": "SUCCESS", "ledger": 7}]
        )
        # applied meanwhile: not a rejection, the executed transaction is counted once
        assert ex.tally.totals["executed"] == 1
        assert ex.tally.totals["tx_errors"] == 0 and ex.tally.totals["rejected_bad_seq"] == 0
        assert self.released == []  # not known queued: the account waited for the answer
        assert acc.needs_resync

    def test_too_late_on_a_resend_ends_the_wait_without_the_time_bound(self) -> None:
        """A resend refused txTOO_LATE was not pending (else DUPLICATE) and can never be
        queued again: once getTransaction answers NOT_FOUND at that ledger or later, the
        transaction is expired at once (its time bound, 9999, is far ahead)."""
        lost = RpcTransportError("sendTransaction", "timeout", kind="timeout")
        late = {**error_answer(sx.TransactionResultCode.txTOO_LATE), "latestLedger": 80}
        not_found = {"status": "NOT_FOUND", "latestLedgerCloseTime": "5000"}
        ex, acc = self.run_submit(
            [lost, late],
            [
                not_found,  # before the resend: not applied yet
                {**not_found, "latestLedger": 79},  # a node behind the refusal: no verdict
                {**not_found, "latestLedger": 80},
            ],
        )
        assert ex.tally.totals["tx_errors"] == 1 and ex.tally.totals["executed"] == 0
        reason = events_of(ex, "tx_error")[0]["reason"]
        assert reason == "not applied before its time bound (expired)"
        assert acc.needs_resync and not ex.submitter.journal.load()

    def test_a_maybe_queued_envelope_is_resent_once_get_transaction_does_not_know_it(
        self,
    ) -> None:
        # no wait for the next close: that cost a ledger a lost answer (see the submitter)
        lost = RpcTransportError("sendTransaction", "transport error (dropped)")
        ex, _acc = self.run_submit(
            [lost, {"status": "DUPLICATE"}],
            [{"status": "NOT_FOUND"}, {"status": "SUCCESS", "ledger": 11}],
            close_after_s=3.0,
        )
        assert len(self.sent_at) == 2
        assert self.closed_at == 0.0  # resent and settled before any ledger closed
        calls = [m for m, _ in self.calls]
        assert calls[:3] == ["sendTransaction", "getTransaction", "sendTransaction"]
        assert ex.tally.cycle.sends == {"uncertain": 1, "resent": 1, "DUPLICATE": 1}

    @pytest.mark.parametrize(
        "refusal",
        [
            RpcTransportError("sendTransaction", "busy", status=503),
            RpcTransportError("sendTransaction", "slow down", status=429),
            RpcResponseError("sendTransaction", -32098, "queue full"),
        ],
        ids=["http_503", "http_429", "queue_full"],
    )
    def test_a_send_refused_unread_is_sent_again_without_waiting_for_a_close(
        self, refusal: RpcError
    ) -> None:
        ex, _acc = self.run_submit(
            [refusal, {"status": "PENDING"}],
            [{"status": "NOT_FOUND"}, {"status": "SUCCESS", "ledger": 11}],
            close_after_s=3.0,
        )
        assert len(self.sent_at) == 2
        assert self.closed_at == 0.0  # settled and confirmed before any ledger closed
        # a first send again (nothing of it can be queued): no getTransaction before it
        assert ex.tally.cycle.sends == {"busy": 1, "PENDING": 1}
        assert [m for m, _ in self.calls][:2] == ["sendTransaction"] * 2
        assert self.released == [True] and ex.tally.totals["executed"] == 1

    def test_a_busy_resend_goes_again_within_the_same_ledger(self) -> None:
        """After the check, a resend refused unread is sent again after a short backoff
        (no second check: nothing closed since the check)."""
        lost = RpcTransportError("sendTransaction", "transport error (dropped)")
        busy = RpcTransportError("sendTransaction", "busy", status=503)
        ex, _acc = self.run_submit(
            [lost, busy, busy, {"status": "DUPLICATE"}],
            [{"status": "NOT_FOUND"}, {"status": "SUCCESS", "ledger": 11}],
            close_after_s=3.0,  # no close while it settles
        )
        assert ex.tally.cycle.sends == {"uncertain": 1, "resent": 3, "busy": 2, "DUPLICATE": 1}
        gets = [m for m, _ in self.calls if m == "getTransaction"]
        assert len(gets) == 2  # the check, then the confirmation
        assert ex.tally.totals["executed"] == 1

    def test_no_resend_once_get_transaction_knows_it_applied(self) -> None:
        lost = RpcTransportError("sendTransaction", "timeout", kind="timeout")
        success = {"status": "SUCCESS", "ledger": 7}
        ex, _acc = self.run_submit([lost], [success, success])
        assert self.envelopes == [{"transaction": "AAAA"}]  # sent once, never again
        assert ex.tally.totals["executed"] == 1 and ex.tally.totals["tx_errors"] == 0
        assert "resent" not in ex.tally.cycle.sends


class TestJournaledResend:
    """A restarted worker's journaled envelope whose resend is refused unread (or lost) is
    settled like a lost answer, not waited out until its time bound."""

    def test_a_busy_resend_at_start_is_settled_after_a_get_transaction_check(self) -> None:
        kp = Keypair.random()
        busy = RpcTransportError("sendTransaction", "busy", status=503)
        rpc = FakeRpc(
            {
                "sendTransaction": [busy, {"status": "DUPLICATE"}],
                "getTransaction": [{"status": "NOT_FOUND"}],  # the check before the resend
            }
        )
        ex = make_executor(kp, rpc)
        ex.clock.newest = Latest(10, 1_000)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = JournalEntry(
            hash="ab" * 32,
            task_id=TASK,
            source=kp.public_key,
            sequence=42,
            max_time=9_999,
            envelope="AAAA",
        )

        async def go() -> None:
            async def close() -> None:
                await asyncio.sleep(0.1)
                ex.clock.newest = Latest(11, 1_005)

            closer = asyncio.create_task(close())
            await asyncio.wait_for(ex.submitter.resend_journaled(entry, acc), 5)
            await closer

        asyncio.run(go())
        assert [m for m, _ in rpc.calls] == [
            "sendTransaction",
            "getTransaction",
            "sendTransaction",
        ]
        assert ex.tally.cycle.sends == {"resent": 2, "busy": 1, "DUPLICATE": 1}
        assert not acc.needs_resync  # queued with its sequence number
