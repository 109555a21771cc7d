"""One send and its answer by name (``shard_worker.txsend``), through the submitter with a
scripted fake RPC: PENDING / DUPLICATE queued, no answer or an unknown status maybe queued,
TRY_AGAIN_LATER and a busy server sent again, ERROR refusals named, counted and logged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stellar_sdk import Keypair
from stellar_sdk import xdr as sx

from shard_worker.accounts import SourceAccount
from shard_worker.errors import RpcResponseError, RpcTransportError
from shard_worker.journal import JournalEntry
from shard_worker.ledger import Latest
from tests.shard_worker.test_executor import events_of, journaled, make_executor, tx_result
from tests.shard_worker.test_simcheck import TASK
from tests.support.fake_rpc import FakeRpc


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
