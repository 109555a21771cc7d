"""The keeper's transactions, account reads and answer helpers agree with stellar-sdk."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair, Network, TransactionEnvelope, scval
from stellar_sdk import xdr as sx

from shard_worker import chain
from shard_worker.chain import (
    GetTaskTemplate,
    build_execute_tx,
    footprint_writes,
    result_code,
)
from sorotask_core.contract import counter_key_b64
from sorotask_core.xdr import DecodeError
from tests.support.ledger_entries import CONTRACT_ID
from tests.support.reference_contract import counter_ledger_key, task_ledger_key

PASS = Network.STANDALONE_NETWORK_PASSPHRASE


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


class TestAccountKey:
    def test_account_key_equals_the_sdk(self) -> None:
        kp = Keypair.random()
        sdk_account = sx.LedgerKey(
            type=sx.LedgerEntryType.ACCOUNT,
            account=sx.LedgerKeyAccount(account_id=kp.xdr_account_id()),
        )
        assert chain.account_key_b64(kp.public_key) == sdk_account.to_xdr()


class TestAccountEntry:
    def _entry(self, ext: sx.AccountEntryExt, signers: int = 0, home: bytes = b"") -> str:
        kp = Keypair.random()
        acc = sx.AccountEntry(
            account_id=kp.xdr_account_id(),
            balance=sx.Int64(1_234_567_890),
            seq_num=sx.SequenceNumber(sx.Int64(2**33 + 7)),
            num_sub_entries=sx.Uint32(3),
            inflation_dest=Keypair.random().xdr_account_id(),
            flags=sx.Uint32(0),
            home_domain=sx.String32(home),
            thresholds=sx.Thresholds(b"\x01\x00\x00\x00"),
            signers=[
                sx.Signer(
                    sx.SignerKey(
                        sx.SignerKeyType.SIGNER_KEY_TYPE_ED25519,
                        ed25519=sx.Uint256(Keypair.random().raw_public_key()),
                    ),
                    sx.Uint32(1),
                )
                for _ in range(signers)
            ],
            ext=ext,
        )
        return sx.LedgerEntryData(sx.LedgerEntryType.ACCOUNT, account=acc).to_xdr()

    def test_plain_account(self) -> None:
        state = chain.parse_account_entry(
            self._entry(sx.AccountEntryExt(0), signers=2, home=b"ex.org")
        )
        assert (state.sequence, state.balance) == (2**33 + 7, 1_234_567_890)
        assert state.min_balance == (2 + 3) * chain.BASE_RESERVE

    def test_liabilities_and_sponsorships_change_the_reserve(self) -> None:
        v2 = sx.AccountEntryExtensionV2(
            num_sponsored=sx.Uint32(1),
            num_sponsoring=sx.Uint32(4),
            signer_sponsoring_i_ds=[],
            ext=sx.AccountEntryExtensionV2Ext(0),
        )
        v1 = sx.AccountEntryExtensionV1(
            liabilities=sx.Liabilities(buying=sx.Int64(5), selling=sx.Int64(777)),
            ext=sx.AccountEntryExtensionV1Ext(2, v2=v2),
        )
        state = chain.parse_account_entry(self._entry(sx.AccountEntryExt(1, v1=v1)))
        assert state.min_balance == (2 + 3 + 4 - 1) * chain.BASE_RESERVE + 777

    def test_other_entry_type_is_refused(self) -> None:
        with pytest.raises(DecodeError):
            chain.parse_account_entry(counter_key_b64(CONTRACT_ID))
