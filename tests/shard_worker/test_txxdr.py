"""Hand-packed transactions, auth entries and results are byte-identical to stellar-sdk's."""

from __future__ import annotations

import base64

import pytest
from stellar_sdk import Account, Keypair, Network, TransactionBuilder, scval
from stellar_sdk import xdr as sx
from stellar_sdk.auth import authorize_entry

from shard_worker import chain, strict_xdr, txxdr
from sorotask_core.contract import TaskKeys
from sorotask_core.signing import Signer, network_id
from sorotask_core.xdr import DecodeError
from tests.support.ledger_entries import CONTRACT_ID
from tests.support.reference_contract import counter_ledger_key

PASS = Network.STANDALONE_NETWORK_PASSPHRASE
NET_ID = network_id(PASS)


def _sdk_invoke(
    src: Keypair, seq: int, args: list[sx.SCVal], fn: str = "execute", fee: int = 100
) -> TransactionBuilder:
    return TransactionBuilder(
        Account(src.public_key, seq), PASS, base_fee=fee
    ).append_invoke_contract_function_op(CONTRACT_ID, fn, args)


def _soroban_data(rw: list[sx.LedgerKey], ro: list[sx.LedgerKey], archived: bool = False) -> str:
    ext = (
        sx.SorobanTransactionDataExt(1, sx.SorobanResourcesExtV0([sx.Uint32(3)]))
        if archived
        else sx.SorobanTransactionDataExt(0)
    )
    return sx.SorobanTransactionData(
        ext=ext,
        resources=sx.SorobanResources(
            footprint=sx.LedgerFootprint(read_only=ro, read_write=rw),
            instructions=sx.Uint32(1000),
            disk_read_bytes=sx.Uint32(200),
            write_bytes=sx.Uint32(300),
        ),
        resource_fee=sx.Int64(12345),
    ).to_xdr()


def _address_auth_entry(signer_pub: str, nonce: int = 77) -> sx.SorobanAuthorizationEntry:
    invocation = sx.SorobanAuthorizedInvocation(
        function=sx.SorobanAuthorizedFunction(
            sx.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
            contract_fn=sx.InvokeContractArgs(
                contract_address=scval.to_address(CONTRACT_ID).address,  # type: ignore[union-attr]
                function_name=sx.SCSymbol(b"execute"),
                args=[scval.to_address(signer_pub), scval.to_uint64(5)],
            ),
        ),
        sub_invocations=[],
    )
    return sx.SorobanAuthorizationEntry(
        credentials=sx.SorobanCredentials(
            sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS,
            address=sx.SorobanAddressCredentials(
                address=scval.to_address(signer_pub).address,  # type: ignore[union-attr]
                nonce=sx.Int64(nonce),
                signature_expiration_ledger=sx.Uint32(0),
                signature=scval.to_void(),
            ),
        ),
        root_invocation=invocation,
    )


class TestInvokeTx:
    def test_signed_execute_envelope_and_hash_equal_the_sdk(self) -> None:
        src, keeper = Keypair.random(), Keypair.random()
        tx = chain.build_execute_tx(
            source=src.public_key,
            sequence=2**40 + 3,
            keeper=keeper.public_key,
            contract_id=CONTRACT_ID,
            task_id=2**63 + 1,
            base_fee=100,
            max_time=1_700_000_123,
        )
        data = _soroban_data([chain_key(5)], [counter_ledger_key(CONTRACT_ID)], archived=True)
        auth = _address_auth_entry(keeper.public_key)
        tx.soroban_data = base64.b64decode(data)
        tx.auth = [auth.to_xdr_bytes()]
        tx.fee = 100 + 54321
        ours_hash = tx.sign(Signer.from_secret(src.secret), NET_ID)

        built = (
            _sdk_invoke(
                src,
                2**40 + 3,
                [scval.to_address(keeper.public_key), scval.to_uint64(2**63 + 1)],
                fee=100,
            )
            .add_time_bounds(0, 1_700_000_123)
            .build()
        )
        built.transaction.soroban_data = sx.SorobanTransactionData.from_xdr(data)
        built.transaction.operations[0].auth = [auth]  # type: ignore[attr-defined]
        built.transaction.fee = 100 + 54321
        built.sign(src)
        assert ours_hash.hex() == built.hash_hex()
        assert tx.envelope_b64() == built.to_xdr()

    def test_fee_must_fit_uint32(self) -> None:
        tx = chain.build_execute_tx(
            source=Keypair.random().public_key,
            sequence=1,
            keeper=Keypair.random().public_key,
            contract_id=CONTRACT_ID,
            task_id=1,
            base_fee=2**32,
            max_time=1,
        )
        with pytest.raises(ValueError, match="uint32"):
            tx.envelope_b64()

    def test_get_task_template_equals_the_sdk_envelope(self) -> None:
        src = Keypair.random()
        ours = chain.GetTaskTemplate(CONTRACT_ID, src.public_key, PASS)
        for task_id in (1, 99, 2**64 - 1):
            sdk = _sdk_invoke(src, 0, [scval.to_uint64(task_id)], fn="get_task")
            sdk.add_time_bounds(0, 0)
            assert ours.envelope_b64(task_id) == sdk.build().to_xdr()


def chain_key(task_id: int) -> sx.LedgerKey:
    return sx.LedgerKey.from_xdr_bytes(TaskKeys(CONTRACT_ID).key_bytes(task_id))


class TestSignAuthEntry:
    def test_signed_entry_equals_sdk_authorize_entry(self) -> None:
        keeper = Keypair.random()
        entry = _address_auth_entry(keeper.public_key, nonce=-12345)
        ours = txxdr.sign_auth_entry(
            entry.to_xdr_bytes(), Signer.from_secret(keeper.secret), 4321, NET_ID
        )
        sdk = authorize_entry(entry, keeper, 4321, PASS)
        assert ours == sdk.to_xdr_bytes()

    def test_source_account_credentials_pass_unchanged(self) -> None:
        entry = _address_auth_entry(Keypair.random().public_key)
        entry.credentials = sx.SorobanCredentials(
            sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
        )
        raw = entry.to_xdr_bytes()
        assert (
            txxdr.sign_auth_entry(raw, Signer.from_secret(Keypair.random().secret), 9, NET_ID)
            == raw
        )

    def test_entry_for_another_address_is_refused(self) -> None:
        entry = _address_auth_entry(Keypair.random().public_key).to_xdr_bytes()
        with pytest.raises(DecodeError, match="keeper"):
            txxdr.sign_auth_entry(entry, Signer.from_secret(Keypair.random().secret), 9, NET_ID)


class TestFootprint:
    def test_read_write_keys_found_past_every_read_only_key_kind(self) -> None:
        kp = Keypair.random()
        asset = sx.TrustLineAsset(
            sx.AssetType.ASSET_TYPE_CREDIT_ALPHANUM4,
            alpha_num4=sx.AlphaNum4(sx.AssetCode4(b"USD\0"), kp.xdr_account_id()),
        )
        read_only = [
            sx.LedgerKey(
                sx.LedgerEntryType.ACCOUNT, account=sx.LedgerKeyAccount(kp.xdr_account_id())
            ),
            sx.LedgerKey(
                sx.LedgerEntryType.TRUSTLINE,
                trust_line=sx.LedgerKeyTrustLine(kp.xdr_account_id(), asset),
            ),
            sx.LedgerKey(
                sx.LedgerEntryType.CONTRACT_CODE,
                contract_code=sx.LedgerKeyContractCode(sx.Hash(b"\x05" * 32)),
            ),
            sx.LedgerKey(sx.LedgerEntryType.TTL, ttl=sx.LedgerKeyTtl(sx.Hash(b"\x06" * 32))),
            chain_key(5),
        ]
        data = _soroban_data(
            [counter_ledger_key(CONTRACT_ID), chain_key(6)], read_only, archived=True
        )
        assert chain.footprint_writes(data, chain_key(6).to_xdr_bytes())
        assert not chain.footprint_writes(data, chain_key(5).to_xdr_bytes())

    def test_truncated_data_is_a_decode_error(self) -> None:
        data = base64.b64decode(_soroban_data([chain_key(6)], []))
        with pytest.raises(DecodeError):
            strict_xdr.footprint_read_write(data[:-3])


class TestTransactionResult:
    def test_every_result_code_and_the_fee_match_the_sdk(self) -> None:
        for code in sx.TransactionResultCode:
            if code in (
                sx.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS,
                sx.TransactionResultCode.txFEE_BUMP_INNER_FAILED,
            ):
                continue  # their arm carries an inner result pair
            res = sx.TransactionResult(
                fee_charged=sx.Int64(98_765),
                result=sx.TransactionResultResult(
                    code,
                    results=[]
                    if code
                    in (sx.TransactionResultCode.txSUCCESS, sx.TransactionResultCode.txFAILED)
                    else None,
                ),
                ext=sx.TransactionResultExt(0),
            ).to_xdr()
            assert chain.result_code(res) == (int(code), code.name)
            assert chain.fee_charged(res) == 98_765
        assert set(txxdr.TX_RESULT_NAMES.values()) == {c.name for c in sx.TransactionResultCode}
