"""sendTransaction validation and the pending queue, through stellar-sdk."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from stellar_sdk import Keypair, SorobanServer, TransactionBuilder
from stellar_sdk import xdr as sx
from stellar_sdk.soroban_rpc import GetTransactionStatus, SendTransactionStatus

from devnet.process import DevnetProcess
from tests.support.devnet import (
    execute_args,
    funded_keypair,
    invoke_tx,
    result_code,
    wait_for_tx,
)

TRC = sx.TransactionResultCode


def _prepared(devnet: DevnetProcess, soroban: SorobanServer, keeper: Keypair, task_id: int):
    tx = soroban.prepare_transaction(
        invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, task_id))
    )
    tx.sign(keeper)
    return tx


@pytest.fixture(scope="module")
def manual_devnet() -> Iterator[DevnetProcess]:
    """Ledgers close only through devnet_closeLedger: no races with the close timer."""
    with DevnetProcess(close_every=3600) as dn:
        yield dn


@pytest.fixture(scope="module")
def manual_soroban(manual_devnet: DevnetProcess) -> Iterator[SorobanServer]:
    with SorobanServer(manual_devnet.info.rpc_url) as srv:
        yield srv


class TestSendTransaction:
    def test_wrong_sequence_is_tx_bad_seq(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first))
        )
        tx.transaction.sequence += 1
        tx.sign(keeper)
        sent = soroban.send_transaction(tx)
        assert sent.status == SendTransactionStatus.ERROR
        assert result_code(sent) == TRC.txBAD_SEQ

    def test_second_pending_transaction_of_an_account_is_try_again_later(
        self, manual_devnet: DevnetProcess, manual_soroban: SorobanServer
    ) -> None:
        dn, srv = manual_devnet, manual_soroban
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=2)
        tx1 = _prepared(dn, srv, keeper, first)
        args2 = execute_args(keeper.public_key, first + 1)
        tx2 = srv.prepare_transaction(invoke_tx(srv, dn, keeper, "execute", args2))
        tx2.transaction.sequence += 1  # the next sequence number after tx1
        tx2.sign(keeper)
        sent1 = srv.send_transaction(tx1)
        sent2 = srv.send_transaction(tx2)
        assert sent1.status == SendTransactionStatus.PENDING
        assert sent2.status == SendTransactionStatus.TRY_AGAIN_LATER
        dn.close_ledger()
        assert srv.get_transaction(sent1.hash).status == GetTransactionStatus.SUCCESS
        assert srv.get_transaction(sent2.hash).status == GetTransactionStatus.NOT_FOUND
        # once the first is applied, the second is accepted
        assert srv.send_transaction(tx2).status == SendTransactionStatus.PENDING

    def test_resending_a_pending_transaction_is_duplicate(
        self, manual_devnet: DevnetProcess, manual_soroban: SorobanServer
    ) -> None:
        dn, srv = manual_devnet, manual_soroban
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        tx = _prepared(dn, srv, keeper, first)
        sent = srv.send_transaction(tx)
        again = srv.send_transaction(tx)
        assert sent.status == SendTransactionStatus.PENDING
        assert again.status == SendTransactionStatus.DUPLICATE
        assert again.hash == sent.hash
        dn.close_ledger()
        # applied: the same envelope now has a used sequence number
        assert result_code(srv.send_transaction(tx)) == TRC.txBAD_SEQ

    def test_transaction_is_not_found_until_the_next_ledger_closes(
        self, manual_devnet: DevnetProcess, manual_soroban: SorobanServer
    ) -> None:
        dn, srv = manual_devnet, manual_soroban
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        sent = srv.send_transaction(_prepared(dn, srv, keeper, first))
        assert srv.get_transaction(sent.hash).status == GetTransactionStatus.NOT_FOUND
        closed = dn.close_ledger()
        found = srv.get_transaction(sent.hash)
        assert found.status == GetTransactionStatus.SUCCESS
        assert found.ledger == closed["sequence"] == sent.latest_ledger + 1
        assert found.create_at == closed["closeTime"]

    def test_signature_by_another_key_is_tx_bad_auth(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first))
        )
        tx.sign(Keypair.random())
        assert result_code(soroban.send_transaction(tx)) == TRC.txBAD_AUTH

    def test_transaction_signed_for_another_network_is_tx_bad_auth(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        account = soroban.load_account(keeper.public_key)
        tx = (
            TransactionBuilder(account, "Test SDF Network ; September 2015", base_fee=100)
            .append_invoke_contract_function_op(
                devnet.info.contract_id, "execute", execute_args(keeper.public_key, 1)
            )
            .add_time_bounds(0, soroban.get_latest_ledger().close_time + 60)
            .build()
        )
        sim = soroban.simulate_transaction(tx)
        tx = soroban.prepare_transaction(tx, sim)
        tx.sign(keeper)
        assert result_code(soroban.send_transaction(tx)) == TRC.txBAD_AUTH

    def test_resource_fee_below_the_declared_resources_is_insufficient_fee(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first))
        )
        tx.transaction.soroban_data.resource_fee = sx.Int64(10)
        tx.sign(keeper)
        assert result_code(soroban.send_transaction(tx)) == TRC.txINSUFFICIENT_FEE

    def test_expired_max_time_is_tx_too_late(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        account = soroban.load_account(keeper.public_key)
        tx = (
            TransactionBuilder(account, devnet.info.network_passphrase, base_fee=100)
            .append_invoke_contract_function_op(
                devnet.info.contract_id, "execute", execute_args(keeper.public_key, first)
            )
            .add_time_bounds(0, int(time.time()) - 3600 * 24 * 365 * 5)
            .build()
        )
        tx = soroban.prepare_transaction(tx)
        tx.sign(keeper)
        assert result_code(soroban.send_transaction(tx)) == TRC.txTOO_LATE

    def test_unknown_source_account_is_tx_no_account(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        funded = funded_keypair(devnet)
        ghost = Keypair.random()
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, funded, "get_task", [execute_args(funded.public_key, 1)[1]])
        )
        from stellar_sdk import MuxedAccount

        tx.transaction.source = MuxedAccount(ghost.public_key)
        tx.signatures = []
        tx.sign(ghost)
        assert result_code(soroban.send_transaction(tx)) == TRC.txNO_ACCOUNT

    def test_failed_transaction_consumes_sequence_and_fee(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, whitelist=[Keypair.random().public_key])
        before = soroban.load_account(keeper.public_key).sequence
        # simulate a due, open task to get a footprint, then point it at the closed one
        other, _ = devnet.seed_tasks(count=1)
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, other))
        )
        tx.signatures = []
        op = tx.transaction.operations[0]
        fp = tx.transaction.soroban_data.resources.footprint
        from tests.support import reference_contract as sc

        fp.read_only.append(sc.task_ledger_key(devnet.info.contract_id, first))
        new_args = execute_args(keeper.public_key, first)
        op.host_function.invoke_contract.args = new_args
        op.auth[0].root_invocation.function.contract_fn.args = new_args
        # one more read entry costs more resource fee
        tx.transaction.soroban_data.resource_fee = sx.Int64(
            tx.transaction.soroban_data.resource_fee.int64 + 100_000
        )
        tx.transaction.fee += 100_000
        tx.sign(keeper)
        sent = soroban.send_transaction(tx)
        assert sent.status == SendTransactionStatus.PENDING, sent
        result = wait_for_tx(soroban, sent.hash)
        assert result.status == GetTransactionStatus.FAILED
        assert result_code(result) == TRC.txFAILED
        assert soroban.load_account(keeper.public_key).sequence == before + 1
        assert devnet.executions([first])[-1]["effect"] == "unauthorized"
