"""Ledger keys and transaction helpers agree with stellar-sdk."""

from __future__ import annotations

from stellar_sdk import Keypair, Network, TransactionEnvelope, scval
from stellar_sdk import xdr as sx

from shard_worker.chain import (
    GetTaskTemplate,
    TaskKeys,
    build_execute_tx,
    footprint_writes,
    result_code,
)
from sorotask.contract import counter_ledger_key, task_ledger_key, task_ledger_key_b64
from tests.support.ledger_entries import CONTRACT_ID

PASS = Network.STANDALONE_NETWORK_PASSPHRASE


class TestTaskKeys:
    def test_template_keys_equal_sdk_keys(self) -> None:
        keys = TaskKeys(CONTRACT_ID)
        for task_id in (0, 1, 7, 255, 65_536, 10**12, 2**64 - 1):
            assert keys.key_b64(task_id) == task_ledger_key_b64(CONTRACT_ID, task_id)
            assert keys.key_bytes(task_id) == task_ledger_key(CONTRACT_ID, task_id).to_xdr_bytes()


class TestGetTaskTemplate:
    def test_envelope_invokes_get_task_with_the_id(self) -> None:
        kp = Keypair.random()
        env = GetTaskTemplate(CONTRACT_ID, kp.public_key, PASS).envelope_b64(123)
        te = TransactionEnvelope.from_xdr(env, PASS)
        call = te.transaction.operations[0].host_function.invoke_contract  # type: ignore[attr-defined]
        assert call.function_name.sc_symbol == b"get_task"
        assert scval.from_uint64(call.args[0]) == 123
        assert te.transaction.source.account_id == kp.public_key


class TestBuildExecuteTx:
    def test_has_time_bounds_sequence_and_arguments(self) -> None:
        src, keeper = Keypair.random(), Keypair.random()
        built = build_execute_tx(
            source=src.public_key,
            sequence=41,
            keeper=keeper.public_key,
            contract_id=CONTRACT_ID,
            task_id=9,
            base_fee=100,
            max_time=5000,
        )
        te = TransactionEnvelope.from_xdr(built.envelope_b64(), PASS)
        tx = te.transaction
        assert tx.sequence == 42
        assert tx.fee == 100
        assert tx.source.account_id == src.public_key
        assert tx.preconditions is not None and tx.preconditions.time_bounds.max_time == 5000
        call = tx.operations[0].host_function.invoke_contract  # type: ignore[attr-defined]
        assert call.function_name.sc_symbol == b"execute"
        args = call.args
        assert scval.from_address(args[0]).address == keeper.public_key
        assert scval.from_uint64(args[1]) == 9


class TestFootprintWrites:
    def _data(self, rw: list[sx.LedgerKey], ro: list[sx.LedgerKey]) -> str:
        return sx.SorobanTransactionData(
            ext=sx.SorobanTransactionDataExt(0),
            resources=sx.SorobanResources(
                footprint=sx.LedgerFootprint(read_only=ro, read_write=rw),
                instructions=sx.Uint32(1),
                disk_read_bytes=sx.Uint32(1),
                write_bytes=sx.Uint32(1),
            ),
            resource_fee=sx.Int64(1),
        ).to_xdr()

    def test_task_key_in_read_write(self) -> None:
        key = task_ledger_key(CONTRACT_ID, 5)
        data = self._data([counter_ledger_key(CONTRACT_ID), key], [])
        assert footprint_writes(data, key.to_xdr_bytes())

    def test_task_key_only_read(self) -> None:
        key = task_ledger_key(CONTRACT_ID, 5)
        data = self._data([task_ledger_key(CONTRACT_ID, 6)], [key])
        assert not footprint_writes(data, key.to_xdr_bytes())


class TestResultCode:
    def test_bad_seq_is_decoded(self) -> None:
        res = sx.TransactionResult(
            fee_charged=sx.Int64(0),
            result=sx.TransactionResultResult(sx.TransactionResultCode.txBAD_SEQ),
            ext=sx.TransactionResultExt(0),
        )
        assert result_code(res.to_xdr()) == (-5, "txBAD_SEQ")
