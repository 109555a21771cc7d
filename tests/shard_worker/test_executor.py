"""The executor through its public methods, without a devnet (a scripted fake RPC): a
simulation is checked before anything is built from it (and an unusable one counted), an
execution's errors counted, an authorization reused. (The send, the confirmation and the
landing of its transaction: test_txsend.py, test_txconfirm.py, test_submitter.py.)"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from stellar_sdk import Keypair
from stellar_sdk import xdr as sx

from shard_worker import chain
from shard_worker.accounts import SourceAccount, SourceAccounts
from shard_worker.context import Events, Identity, Tally
from shard_worker.due import Holds
from shard_worker.errors import RpcMalformedError, RpcTransportError
from shard_worker.executor import Executor, Submitter, with_nonce
from shard_worker.journal import Journal, JournalEntry
from shard_worker.ledger import Latest, LedgerClock
from shard_worker.strict_xdr import parse_auth_entry
from sorotask_core.signing import Signer
from tests.shard_worker.test_accounts import account_xdr
from tests.shard_worker.test_simcheck import TASK, UNUSABLE, genuine, spoil
from tests.shard_worker.test_strict_xdr import every_ledger_key_kind, soroban_data
from tests.support.fake_rpc import FakeRpc, NullReporter
from tests.support.keeper import offline_spec
from tests.support.ledger_entries import CONTRACT_ID
from tests.support.reference_contract import task_ledger_key


def make_executor(kp: Keypair, rpc: FakeRpc, **spec_kw: Any) -> Executor:
    spec = offline_spec(**spec_kw)
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
