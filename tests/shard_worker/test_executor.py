"""The executor through its public methods, without a devnet (a scripted fake RPC): a
simulation is checked before anything is built from it (and an unusable one counted), an
unknown send status is "maybe queued", and every final status is counted once."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest
from stellar_sdk import Keypair
from stellar_sdk import xdr as sx

from shard_worker import chain
from shard_worker.accounts import SourceAccount, SourceAccounts
from shard_worker.context import Events, Identity, Tally
from shard_worker.due import Holds
from shard_worker.errors import RpcError, RpcMalformedError, RpcResponseError, RpcTransportError
from shard_worker.executor import Executor, Submitter, with_nonce
from shard_worker.journal import Journal, JournalEntry
from shard_worker.ledger import Latest, LedgerClock
from shard_worker.spec import SecretRef, WorkerSpec
from shard_worker.strict_xdr import parse_auth_entry
from sorotask_core.signing import Signer
from tests.shard_worker.test_accounts import account_xdr
from tests.shard_worker.test_simcheck import TASK, UNUSABLE, genuine, spoil
from tests.shard_worker.test_strict_xdr import every_ledger_key_kind, soroban_data
from tests.support.fake_rpc import FakeRpc, NullReporter
from tests.support.ledger_entries import CONTRACT_ID
from tests.support.reference_contract import task_ledger_key


def make_executor(kp: Keypair, rpc: FakeRpc, **spec_kw: Any) -> Executor:
    spec = WorkerSpec(
        name="t",
        rpc_url="http://127.0.0.1:1/",
        network_passphrase="Test SDF Network ; September 2015",
        contract_id=CONTRACT_ID,
        secret=SecretRef(env="UNUSED"),
        **spec_kw,
    )
    identity = Identity.of(spec, Signer.from_secret(kp.secret))
    tally = Tally()
    events = Events(NullReporter())  # type: ignore[arg-type]
    holds = Holds()
    clock = LedgerClock(rpc, tally)  # type: ignore[arg-type]
    submitter = Submitter(
        spec,
        rpc,  # type: ignore[arg-type]
        events,
        journal=Journal(None, "t"),
        holds=holds,
        clock=clock,
        tally=tally,
    )
    return Executor(
        spec,
        rpc,  # type: ignore[arg-type]
        events,
        identity=identity,
        accounts=SourceAccounts([SourceAccount(identity.keeper, True)], rpc),  # type: ignore[arg-type]
        submitter=submitter,
        holds=holds,
        clock=clock,
        tally=tally,
    )


def events_of(ex: Executor, kind: str) -> list[dict[str, Any]]:
    reporter = ex.events.reporter
    assert isinstance(reporter, NullReporter)
    return reporter.events_of(kind)


def check(ex: Executor, sim: dict[str, Any], *, is_keeper: bool = True) -> Any:
    acc = SourceAccount(ex.identity.keeper, is_keeper)
    return ex.check_simulation(sim, TASK, acc, recorded=True)


def journaled(ex: Executor, kp: Keypair, *, max_time: int = 9_999) -> JournalEntry:
    entry = JournalEntry(
        hash="ab" * 32, task_id=TASK, source=kp.public_key, sequence=42, max_time=max_time
    )
    ex.submitter.journal.add(entry)
    return entry


def tx_result(code: sx.TransactionResultCode, fee: int) -> str:
    final = code in (sx.TransactionResultCode.txSUCCESS, sx.TransactionResultCode.txFAILED)
    return sx.TransactionResult(
        fee_charged=sx.Int64(fee),
        result=sx.TransactionResultResult(code, results=[] if final else None),
        ext=sx.TransactionResultExt(0),
    ).to_xdr()


class TestCheckSimulation:
    def test_genuine_answers_pass_with_their_parts(self) -> None:
        kp = Keypair.random()
        ex = make_executor(kp, FakeRpc({}))
        sim = genuine(kp)
        ok = check(ex, sim)
        assert ok.transaction_data == base64.b64decode(sim["transactionData"])
        assert ok.data.read_write == (task_ledger_key(CONTRACT_ID, TASK).to_xdr_bytes(),)
        assert ok.min_resource_fee == 98_765
        assert ok.auth == [base64.b64decode(sim["results"][0]["auth"][0])]
        assert ok.latest_ledger == 77
        check(ex, genuine(kp, source=False), is_keeper=False)  # address credentials

    @pytest.mark.parametrize("name", UNUSABLE)
    def test_unusable_answers_are_refused_and_counted(self, name: str) -> None:
        kp = Keypair.random()
        rpc = FakeRpc({})
        ex = make_executor(kp, rpc)
        sim = genuine(kp)
        is_keeper = spoil(name, sim, kp)
        with pytest.raises(RpcMalformedError, match="unusable answer"):
            check(ex, sim, is_keeper=is_keeper)
        assert rpc.noted == ["simulateTransaction"]
        assert ex.tally.totals["bad_simulations"] == 1

    def test_every_ledger_key_kind_in_the_footprint_is_accepted(self) -> None:
        kp = Keypair.random()
        ex = make_executor(kp, FakeRpc({}))
        sim = genuine(kp)
        keys = every_ledger_key_kind()
        sim["transactionData"] = b64(soroban_data(keys, [task_ledger_key(CONTRACT_ID, TASK)]))
        assert len(check(ex, sim).data.read_only) == len(keys)


def b64(x: sx.SorobanTransactionData) -> str:
    return x.to_xdr()


class TestSimulate:
    def _tx(self, ex: Executor, acc: SourceAccount) -> Any:
        return chain.build_execute_tx(
            source=acc.public_key,
            sequence=acc.sequence,
            keeper=ex.identity.keeper.public_key,
            contract_id=CONTRACT_ID,
            task_id=TASK,
            base_fee=100,
            max_time=9_999,
        )

    def test_a_call_that_would_not_write_the_task_is_not_sent_and_backs_off(self) -> None:
        kp = Keypair.random()
        sim = genuine(kp)
        sim["transactionData"] = b64(soroban_data([task_ledger_key(CONTRACT_ID, TASK)], []))
        ex = make_executor(kp, FakeRpc({"simulateTransaction": [sim]}))
        acc = SourceAccount(ex.identity.keeper, True)
        got = asyncio.run(ex.simulate(self._tx(ex, acc), TASK, acc, Latest(70, 5), recorded=True))
        assert got is None
        assert ex.tally.cycle.not_sent == 1
        assert ex.tally.totals["not_sent_by_simulation"] == 1
        assert ex.holds.backoff[TASK] == (78, 1)  # from the simulation's latest ledger 77
        assert events_of(ex, "not_sent") == [{"task_id": TASK, "reason": "no_write"}]

    def test_a_failed_simulation_is_a_failure_and_backs_off(self) -> None:
        kp = Keypair.random()
        ex = make_executor(kp, FakeRpc({"simulateTransaction": [{"error": "HostError: boom"}]}))
        acc = SourceAccount(ex.identity.keeper, True)
        got = asyncio.run(ex.simulate(self._tx(ex, acc), TASK, acc, Latest(70, 5), recorded=True))
        assert got is None
        assert ex.tally.cycle.failed == 1 and ex.tally.totals["failed"] == 1
        assert ex.holds.backoff[TASK] == (71, 1)
        assert events_of(ex, "failed")[0]["reason"] == "simulation"

    def test_a_writing_call_passes(self) -> None:
        kp = Keypair.random()
        ex = make_executor(kp, FakeRpc({"simulateTransaction": [genuine(kp)]}))
        acc = SourceAccount(ex.identity.keeper, True)
        got = asyncio.run(ex.simulate(self._tx(ex, acc), TASK, acc, Latest(70, 5), recorded=True))
        assert got is not None and got.min_resource_fee == 98_765
        assert ex.tally.totals["not_sent_by_simulation"] == 0 and not ex.holds.backoff


class TestUnknownSendStatus:
    @pytest.mark.parametrize("status", [42, "PENDNG", None, "pending", ["PENDING"]])
    def test_unknown_status_is_maybe_queued(self, status: Any) -> None:
        kp = Keypair.random()
        rpc = FakeRpc({"sendTransaction": [{"status": status, "hash": "ab" * 32}]})
        ex = make_executor(kp, rpc)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = JournalEntry(
            hash="ab" * 32, task_id=TASK, source=kp.public_key, sequence=42, max_time=9_999
        )
        ex.submitter.journal.add(entry)
        assert asyncio.run(ex.submitter.send("AAAA", entry, acc)) is True  # go on confirming
        assert acc.sequence == 42 and acc.needs_resync  # never reused; resynced after
        assert entry.hash in ex.submitter.journal
        assert ex.tally.totals["send_status_unknown"] == 1
        assert ex.tally.totals["tx_errors"] == 0
        assert rpc.noted == ["sendTransaction"]


class TestSend:
    def test_pending_uses_the_sequence_number(self) -> None:
        kp = Keypair.random()
        ex = make_executor(kp, FakeRpc({"sendTransaction": [{"status": "PENDING"}]}))
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp)
        assert asyncio.run(ex.submitter.send("AAAA", entry, acc)) is True
        assert acc.sequence == 42 and not acc.needs_resync
        assert entry.hash in ex.submitter.journal

    def test_no_answer_is_maybe_queued(self) -> None:
        kp = Keypair.random()
        rpc = FakeRpc({"sendTransaction": [RpcTransportError("sendTransaction", "timeout")]})
        ex = make_executor(kp, rpc)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp)
        assert asyncio.run(ex.submitter.send("AAAA", entry, acc)) is True
        assert acc.sequence == 42 and acc.needs_resync
        assert entry.hash in ex.submitter.journal

    def test_a_bad_sequence_rejection_resyncs_and_counts_a_tx_error(self) -> None:
        kp = Keypair.random()
        err = tx_result(sx.TransactionResultCode.txBAD_SEQ, 0)
        ex = make_executor(
            kp, FakeRpc({"sendTransaction": [{"status": "ERROR", "errorResultXdr": err}]})
        )
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp)
        assert asyncio.run(ex.submitter.send("AAAA", entry, acc)) is False
        assert acc.needs_resync and acc.sequence == 41
        assert entry.hash not in ex.submitter.journal
        assert ex.tally.cycle.tx_errors == 1 and ex.tally.totals["tx_errors"] == 1
        assert events_of(ex, "tx_error")[0]["reason"] == "rejected: txBAD_SEQ"

    def test_try_again_later_is_retried_until_accepted(self) -> None:
        kp = Keypair.random()
        later = {"status": "TRY_AGAIN_LATER", "latestLedgerCloseTime": "100"}
        rpc = FakeRpc({"sendTransaction": [later, later, {"status": "PENDING"}]})
        ex = make_executor(kp, rpc)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp)
        assert asyncio.run(asyncio.wait_for(ex.submitter.send("AAAA", entry, acc), 10)) is True
        assert len(rpc.calls) == 3 and acc.sequence == 42

    def test_a_busy_server_is_sent_again_at_once_not_settled(self) -> None:
        """HTTP 503, 429 and a full queue (-32098) were not carried out: the same envelope is
        sent again (no getTransaction first, no "uncertain"), each answer counted "busy"."""
        kp = Keypair.random()
        busy = [
            RpcTransportError("sendTransaction", "HTTP 503", status=503),
            RpcTransportError("sendTransaction", "HTTP 429", status=429),
            RpcResponseError("sendTransaction", -32098, "rpc queue surpassed queue limit"),
        ]
        rpc = FakeRpc({"sendTransaction": [*busy, {"status": "PENDING"}]})
        ex = make_executor(kp, rpc)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp)
        assert asyncio.run(asyncio.wait_for(ex.submitter.send("AAAA", entry, acc), 10)) is True
        assert [m for m, _ in rpc.calls] == ["sendTransaction"] * 4
        assert acc.sequence == 42 and not acc.needs_resync
        assert ex.tally.cycle.sends == {"busy": 3, "PENDING": 1}

    def test_answers_tell_the_newest_ledger_without_moving_the_read_loops_clock(self) -> None:
        kp = Keypair.random()
        later = {"status": "TRY_AGAIN_LATER", "latestLedger": 12, "latestLedgerCloseTime": "1010"}
        behind = {"status": "PENDING", "latestLedger": 9, "latestLedgerCloseTime": "995"}
        ex = make_executor(kp, FakeRpc({"sendTransaction": [later, behind]}))
        ex.clock.newest = Latest(10, 1_000)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp)
        assert asyncio.run(asyncio.wait_for(ex.submitter.send("AAAA", entry, acc), 10)) is True
        newest = ex.submitter.newest()
        assert newest is not None and (newest.sequence, newest.close_time) == (12, 1_010)
        assert ex.clock.newest.sequence == 10  # the read loop's own, and no stale answer
        assert ex.tally.totals["stale_ledger_answers"] == 0
        # queued while the network was at ledger 12 at least (the answer came from behind)
        assert ex.submitter.queued_at(acc) == 12

    def test_an_execution_limit_answer_may_have_been_queued(self) -> None:
        kp = Keypair.random()
        limit = RpcResponseError("sendTransaction", -32001, "request exceeded processing limit")
        ex = make_executor(kp, FakeRpc({"sendTransaction": [limit]}))
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp)
        assert asyncio.run(ex.submitter.send("AAAA", entry, acc)) is True  # maybe queued
        assert acc.needs_resync and ex.tally.cycle.sends == {"uncertain": 1}

    def test_busy_until_the_time_bound_gives_up(self) -> None:
        kp = Keypair.random()
        busy = RpcTransportError("sendTransaction", "HTTP 503", status=503)
        ex = make_executor(kp, FakeRpc({"sendTransaction": [busy]}))
        ex.clock.newest = Latest(90, 9_990)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp, max_time=9_999)
        assert asyncio.run(ex.submitter.send("AAAA", entry, acc)) is False
        assert entry.hash not in ex.submitter.journal and acc.sequence == 41
        assert events_of(ex, "tx_error")[0]["reason"] == "busy until its time bound"

    def test_try_again_later_past_the_time_bound_gives_up(self) -> None:
        kp = Keypair.random()
        later = {"status": "TRY_AGAIN_LATER", "latestLedgerCloseTime": 10_000}
        ex = make_executor(kp, FakeRpc({"sendTransaction": [later]}))
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp, max_time=9_999)
        assert asyncio.run(ex.submitter.send("AAAA", entry, acc)) is False
        assert entry.hash not in ex.submitter.journal
        assert events_of(ex, "tx_error")[0]["reason"] == "TRY_AGAIN_LATER until its time bound"


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


class TestExecute:
    def test_an_execution_error_is_counted_never_raised_and_releases_the_task(self) -> None:
        kp = Keypair.random()
        rpc = FakeRpc(
            {
                "getLedgerEntries": [{"entries": []}],  # the account vanished
                # (its read goes on beside the preparation; the transaction is never signed)
                "getLatestLedger": [{"sequence": 50, "closeTime": 5_000}],
                "simulateTransaction": [genuine(kp, source=True)],
            }
        )
        ex = make_executor(kp, rpc)
        ex.clock.last_read = Latest(50, 5_000)
        acc = SourceAccount(ex.identity.keeper, True)  # needs a resync first
        asyncio.run(ex.execute(acc, TASK))
        assert ex.tally.totals["failed"] == 1 and ex.tally.cycle.failed == 1
        assert TASK not in ex.holds.in_flight
        assert ex.holds.backoff[TASK] == (51, 1)
        (failed,) = events_of(ex, "failed")
        assert failed["reason"] == "error" and "vanished" in failed["error"]


def error_answer(code: sx.TransactionResultCode) -> dict[str, Any]:
    return {"status": "ERROR", "errorResultXdr": tx_result(code, 0)}


class TestNamedSendOutcomes:
    @pytest.mark.parametrize(
        ("code", "total"),
        [
            (sx.TransactionResultCode.txTOO_LATE, "rejected_too_late"),
            (sx.TransactionResultCode.txINSUFFICIENT_FEE, "rejected_insufficient_fee"),
            (sx.TransactionResultCode.txBAD_SEQ, "rejected_bad_seq"),
        ],
    )
    def test_rejections_are_named_counted_and_logged(
        self, code: sx.TransactionResultCode, total: str
    ) -> None:
        kp = Keypair.random()
        ex = make_executor(kp, FakeRpc({"sendTransaction": [error_answer(code)]}))
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        entry = journaled(ex, kp)
        lines: list[str] = []
        ex.submitter.log = _ListLog(lines)
        assert asyncio.run(ex.submitter.send("AAAA", entry, acc)) is False
        assert ex.tally.totals[total] == 1
        assert ex.tally.cycle.sends == {code.name: 1}
        assert any(code.name in line and "rejected" in line for line in lines)
        assert events_of(ex, "tx_error")[0]["reason"] == f"rejected: {code.name}"

    def test_try_again_later_and_pending_are_counted_by_name(self) -> None:
        kp = Keypair.random()
        later = {"status": "TRY_AGAIN_LATER", "latestLedgerCloseTime": "100"}
        rpc = FakeRpc({"sendTransaction": [later, {"status": "PENDING"}]})
        ex = make_executor(kp, rpc)
        acc = SourceAccount(ex.identity.keeper, True, sequence=41, needs_resync=False)
        assert asyncio.run(ex.submitter.send("AAAA", journaled(ex, kp), acc)) is True
        assert ex.tally.cycle.sends == {"TRY_AGAIN_LATER": 1, "PENDING": 1}


class _ListLog:
    """A logger stand-in keeping the formatted lines."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def _add(self, fmt: str, *args: Any) -> None:
        self.lines.append(fmt.format(*args))

    info = warning = debug = _add


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


class TestSequenceBeside:
    def test_the_sequence_number_is_read_beside_the_simulation(self) -> None:
        """An account whose sequence number may be wrong is read again while the task is
        simulated (the simulation checks none); the transaction is signed with it."""
        kp = Keypair.random()
        order: list[str] = []

        class SlowAccounts(FakeRpc):
            async def call(self, method: str, params: Any = None, **kw: Any) -> Any:
                if method == "getLedgerEntries":
                    await asyncio.sleep(0.2)
                answer = await super().call(method, params, **kw)
                order.append(method)
                return answer

        entry = {"key": "k", "xdr": account_xdr(kp, 10**9, 77)}
        rpc = SlowAccounts(
            {
                "getLedgerEntries": [{"entries": [entry], "latestLedger": 50}],
                "getLatestLedger": [{"sequence": 50, "closeTime": 5_000}],
                "simulateTransaction": [genuine(kp, source=True)],
                "sendTransaction": [{"status": "PENDING"}],
                "getTransaction": [{"status": "SUCCESS", "ledger": 51}],
            }
        )
        ex = make_executor(kp, rpc, confirm_poll_s=0.05)
        acc = SourceAccount(ex.identity.keeper, True)  # needs a resync first
        asyncio.run(ex.execute(acc, TASK))
        assert order.index("simulateTransaction") < order.index("getLedgerEntries")
        assert ex.tally.totals["executed"] == 1 and acc.sequence == 78


class TestTransientFailures:
    def test_an_unreachable_rpc_fails_the_execution_without_a_ledger_backoff(self) -> None:
        kp = Keypair.random()
        busy = RpcTransportError("getLedgerEntries", "HTTP 503", status=503)
        rpc = FakeRpc(
            {
                "getLedgerEntries": [busy],
                # (the account's read goes on beside the preparation; never signed)
                "getLatestLedger": [{"sequence": 50, "closeTime": 5_000}],
                "simulateTransaction": [genuine(kp, source=True)],
            }
        )
        ex = make_executor(kp, rpc)
        ex.clock.last_read = Latest(50, 5_000)
        acc = SourceAccount(ex.identity.keeper, True)  # needs a resync first
        asyncio.run(ex.execute(acc, TASK))
        assert ex.tally.totals["failed"] == 1 and ex.tally.totals["failed_rpc_unavailable"] == 1
        assert TASK not in ex.holds.backoff  # due again next ledger
        assert "sendTransaction" not in [m for m, _ in rpc.calls]
        assert events_of(ex, "failed")[0]["reason"] == "rpc_unavailable"


class TestAuthReuse:
    """A channel account's repeat execution signs the task's recorded authorization with a
    fresh nonce: one simulation instead of two."""

    def test_with_nonce_replaces_only_the_nonce(self) -> None:
        kp = Keypair.random()
        raw = base64.b64decode(genuine(kp, source=False)["results"][0]["auth"][0])
        fresh = with_nonce(raw, 123_456_789)
        assert len(fresh) == len(raw) and fresh != raw
        before, after = parse_auth_entry(raw), parse_auth_entry(fresh)
        assert after.nonce == 123_456_789
        assert (after.address, after.function, after.args) == (
            before.address,
            before.function,
            before.args,
        )
        source = base64.b64decode(genuine(kp, source=True)["results"][0]["auth"][0])
        assert with_nonce(source, 5) == source  # source-account credentials have no nonce

    def test_a_repeat_execution_simulates_once_and_falls_back_on_an_error(self) -> None:
        kp = Keypair.random()
        channel = Keypair.random()
        recorded = genuine(kp, source=False)
        enforced = dict(recorded)
        rpc = FakeRpc(
            {
                # first execution: recording, then enforcing; second: enforcing only;
                # third: the reused authorization refused -> recording and enforcing again
                "simulateTransaction": [
                    recorded,
                    enforced,
                    enforced,
                    {"error": "nonce"},
                    recorded,
                    enforced,
                ],
                "sendTransaction": [{"status": "PENDING"}] * 3,
                "getTransaction": [{"status": "SUCCESS", "ledger": 9}] * 3,
                "getLatestLedger": [{"sequence": 50, "closeTime": 5_000}] * 3,
            }
        )
        ex = make_executor(kp, rpc, confirm_poll_s=0.05)
        acc = SourceAccount(
            Signer.from_secret(channel.secret), False, sequence=41, needs_resync=False
        )
        for _ in range(3):
            asyncio.run(ex.execute(acc, TASK))
        sims = [m for m, _ in rpc.calls if m == "simulateTransaction"]
        assert len(sims) == 6  # 2 + 1 + (1 refused + 2)
        assert ex.tally.totals["executed"] == 3 and ex.tally.totals["failed"] == 0
        assert ex.holds.backoff == {}  # the refused reuse was not a failure of the task

    def test_a_restarted_worker_reuses_the_recorded_authorization(self, tmp_path: Path) -> None:
        """The recording is kept in the state dir: the next process's executor (the same
        contract and keeper) simulates a repeat execution once."""
        kp = Keypair.random()
        channel = Keypair.random()
        recorded = genuine(kp, source=False)

        def script(*simulations: dict[str, Any]) -> FakeRpc:
            return FakeRpc(
                {
                    "simulateTransaction": list(simulations),
                    "sendTransaction": [{"status": "PENDING"}],
                    "getTransaction": [{"status": "SUCCESS", "ledger": 9}],
                    "getLatestLedger": [{"sequence": 50, "closeTime": 5_000}],
                }
            )

        first = script(recorded, dict(recorded))
        again = script(dict(recorded))
        for rpc in (first, again):  # two processes, one state dir
            ex = make_executor(kp, rpc, confirm_poll_s=0.05, state_dir=str(tmp_path))
            acc = SourceAccount(
                Signer.from_secret(channel.secret), False, sequence=41, needs_resync=False
            )
            asyncio.run(ex.execute(acc, TASK))
            assert ex.tally.totals["executed"] == 1
        assert [m for m, _ in again.calls].count("simulateTransaction") == 1
        other = make_executor(Keypair.random(), FakeRpc({}), state_dir=str(tmp_path))
        assert other.auth_cache.get(TASK) is None  # another keeper's authorization: not used
