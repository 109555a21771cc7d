"""sendTransaction's checks in stellar-core's order, and time bounds as core checks them.

Core rejects a transaction as txTOO_LATE when ``maxTime < lastClose + 2 x ledger time +
(now - lastClose)``: it must stay valid for more than two ledgers from now.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from stellar_sdk import Keypair, SorobanServer, TransactionBuilder
from stellar_sdk import xdr as sx
from stellar_sdk.soroban_rpc import GetTransactionStatus, SendTransactionStatus
from stellar_sdk.transaction_envelope import TransactionEnvelope

from devnet.process import DevnetProcess
from tests.support.devnet import execute_args, funded_keypair, result_code

TRC = sx.TransactionResultCode
LEDGER_S = 5


@pytest.fixture(scope="module")
def manual() -> Iterator[DevnetProcess]:
    """Ledgers close only when asked, so 'now' stays at the last close (5 s ledgers)."""
    with DevnetProcess(close_every=3600, ledger_seconds=LEDGER_S) as dn:
        yield dn


@pytest.fixture(scope="module")
def manual_srv(manual: DevnetProcess) -> Iterator[SorobanServer]:
    with SorobanServer(manual.info.rpc_url) as srv:
        yield srv


def _execute(
    srv: SorobanServer,
    dn: DevnetProcess,
    keeper: Keypair,
    task_id: int,
    *,
    max_time: int,
    min_time: int = 0,
    sequence_delta: int = 0,
    base_fee: int = 100,
) -> TransactionEnvelope:
    """A prepared, signed execute with the given bounds (simulated with generous bounds)."""
    account = srv.load_account(keeper.public_key)
    tx = (
        TransactionBuilder(account, dn.info.network_passphrase, base_fee=base_fee)
        .append_invoke_contract_function_op(
            dn.info.contract_id, "execute", execute_args(keeper.public_key, task_id)
        )
        .add_time_bounds(min_time, max_time)
        .build()
    )
    tx = srv.prepare_transaction(tx)
    tx.transaction.sequence += sequence_delta
    tx.sign(keeper)
    return tx


def _last_close(srv: SorobanServer) -> int:
    return srv.get_latest_ledger().close_time


class TestTimeBounds:
    def test_max_time_must_be_two_ledgers_past_the_last_close(
        self, manual: DevnetProcess, manual_srv: SorobanServer
    ) -> None:
        dn, srv = manual, manual_srv
        first, _ = dn.seed_tasks(count=2)
        last = _last_close(srv)
        short = _execute(srv, dn, funded_keypair(dn), first, max_time=last + 2 * LEDGER_S - 1)
        assert result_code(srv.send_transaction(short)) == TRC.txTOO_LATE
        enough = _execute(srv, dn, funded_keypair(dn), first + 1, max_time=last + 2 * LEDGER_S)
        sent = srv.send_transaction(enough)
        assert sent.status == SendTransactionStatus.PENDING
        dn.close_ledger()
        assert srv.get_transaction(sent.hash).status == GetTransactionStatus.SUCCESS

    def test_min_time_after_the_last_close_is_too_early(
        self, manual: DevnetProcess, manual_srv: SorobanServer
    ) -> None:
        dn, srv = manual, manual_srv
        first, _ = dn.seed_tasks(count=1)
        last = _last_close(srv)
        tx = _execute(srv, dn, funded_keypair(dn), first, min_time=last + 1, max_time=last + 300)
        assert result_code(srv.send_transaction(tx)) == TRC.txTOO_EARLY

    def test_time_since_the_last_close_raises_the_bar(self) -> None:
        # one real second is one ledger second here; ledgers close only when asked
        hour = 3600
        with (
            DevnetProcess(close_every=hour, ledger_seconds=hour) as dn,
            SorobanServer(dn.info.rpc_url) as srv,
        ):
            first, _ = dn.seed_tasks(count=3)
            keepers = [funded_keypair(dn) for _ in range(3)]
            next_close = _last_close(srv) + hour  # built before the close, sent right after
            txs = [
                _execute(srv, dn, keepers[0], first, max_time=next_close + 2 * hour + 1),
                _execute(srv, dn, keepers[1], first + 1, max_time=next_close + 2 * hour + 2),
                _execute(srv, dn, keepers[2], first + 2, max_time=next_close + 2 * hour + 10),
            ]
            assert dn.close_ledger()["closeTime"] == next_close
            at_once = srv.send_transaction(txs[0])  # within a second or so of the close
            assert at_once.status == SendTransactionStatus.PENDING
            time.sleep(3.2)  # now - lastClose >= 3 s: maxTime must be >= lastClose + 2 h + 3
            assert result_code(srv.send_transaction(txs[1])) == TRC.txTOO_LATE
            assert srv.send_transaction(txs[2]).status == SendTransactionStatus.PENDING

    def test_the_keepers_default_30_s_timeout_passes_on_a_fast_devnet(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        # the shared devnet closes a 5 s ledger every 0.25 s: its clock runs 20 x the wall clock
        first, _ = devnet.seed_tasks(count=2)
        last = _last_close(soroban)
        ok = _execute(soroban, devnet, funded_keypair(devnet), first, max_time=last + 30)
        assert soroban.send_transaction(ok).status == SendTransactionStatus.PENDING
        last = _last_close(soroban)
        late = _execute(soroban, devnet, funded_keypair(devnet), first + 1, max_time=last + 9)
        assert result_code(soroban.send_transaction(late)) == TRC.txTOO_LATE


class TestCoreOrder:
    def test_pending_rules_come_before_validity(
        self, manual: DevnetProcess, manual_srv: SorobanServer
    ) -> None:
        dn, srv = manual, manual_srv
        first, _ = dn.seed_tasks(count=1)
        keeper = funded_keypair(dn)
        last = _last_close(srv)
        pending = _execute(srv, dn, keeper, first, max_time=last + 300)
        # built on the same account state, so it has the same sequence number
        expired_lower = _execute(srv, dn, keeper, first, max_time=last + 1, sequence_delta=-1)
        expired_higher = _execute(srv, dn, keeper, first, max_time=last + 1, sequence_delta=1)
        # with nothing pending, validity answers: time bounds come before the sequence number
        assert result_code(srv.send_transaction(expired_lower)) == TRC.txTOO_LATE
        assert srv.send_transaction(pending).status == SendTransactionStatus.PENDING
        # with a transaction of the same source pending, the pending rules answer first
        assert srv.send_transaction(pending).status == SendTransactionStatus.DUPLICATE
        assert result_code(srv.send_transaction(expired_lower)) == TRC.txBAD_SEQ
        again = srv.send_transaction(expired_higher)
        assert again.status == SendTransactionStatus.TRY_AGAIN_LATER
        dn.close_ledger()
        assert srv.get_transaction(pending.hash_hex()).status == GetTransactionStatus.SUCCESS

    def test_validity_order_is_bounds_fee_sequence(
        self, manual: DevnetProcess, manual_srv: SorobanServer
    ) -> None:
        # core's commonValidPreSeqNum checks time bounds, then the minimum inclusion fee; the
        # sequence number comes after, in commonValid
        dn, srv = manual, manual_srv
        first, _ = dn.seed_tasks(count=1)
        keeper = funded_keypair(dn)
        last = _last_close(srv)

        def with_fee_below_minimum(tx: TransactionEnvelope) -> TransactionEnvelope:
            tx.transaction.fee -= 50  # inclusion fee 50 < 100
            tx.signatures = []
            tx.sign(keeper)
            return tx

        late_cheap = with_fee_below_minimum(
            _execute(srv, dn, keeper, first, max_time=last + 1, sequence_delta=5)
        )
        assert result_code(srv.send_transaction(late_cheap)) == TRC.txTOO_LATE
        cheap_bad_seq = with_fee_below_minimum(
            _execute(srv, dn, keeper, first, max_time=last + 300, sequence_delta=5)
        )
        assert result_code(srv.send_transaction(cheap_bad_seq)) == TRC.txINSUFFICIENT_FEE
        bad_seq = _execute(srv, dn, keeper, first, max_time=last + 300, sequence_delta=5)
        assert result_code(srv.send_transaction(bad_seq)) == TRC.txBAD_SEQ

    def test_an_inclusion_fee_below_zero_is_malformed(
        self, manual: DevnetProcess, manual_srv: SorobanServer
    ) -> None:
        dn, srv = manual, manual_srv
        first, _ = dn.seed_tasks(count=1)
        keeper = funded_keypair(dn)
        tx = _execute(srv, dn, keeper, first, max_time=_last_close(srv) + 300)
        tx.transaction.fee = tx.transaction.soroban_data.resource_fee.int64 - 1
        tx.signatures = []
        tx.sign(keeper)
        assert result_code(srv.send_transaction(tx)) == TRC.txMALFORMED
