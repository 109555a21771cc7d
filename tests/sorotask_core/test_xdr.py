"""The XDR primitives and type codes against stellar-sdk's generated XDR classes."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair, StrKey, scval
from stellar_sdk import xdr as sx

from sorotask_core import xdr

CONTRACT = StrKey.encode_contract(b"\x07" * 32)


def _sc_address(address: str) -> bytes:
    return scval.to_address(address).address.to_xdr_bytes()  # type: ignore[union-attr]


def _every_kind() -> list[sx.SCVal]:
    """One SCVal of every kind the read path skips (everything but the contract instance)."""
    kp = Keypair.random()
    muxed = sx.SCAddress(
        sx.SCAddressType.SC_ADDRESS_TYPE_MUXED_ACCOUNT,
        muxed_account=sx.MuxedEd25519Account(sx.Uint64(9), sx.Uint256(kp.raw_public_key())),
    )
    return [
        scval.to_bool(True),
        scval.to_void(),
        sx.SCVal(
            sx.SCValType.SCV_ERROR,
            error=sx.SCError(sx.SCErrorType.SCE_CONTRACT, contract_code=sx.Uint32(3)),
        ),
        scval.to_uint32(7),
        scval.to_int32(-7),
        scval.to_uint64(2**64 - 1),
        scval.to_int64(-(2**63)),
        scval.to_timepoint(5),
        scval.to_duration(6),
        scval.to_uint128(2**100),
        scval.to_int128(-(2**100)),
        scval.to_uint256(2**200),
        scval.to_int256(-(2**200)),
        scval.to_bytes(b"abcde"),
        scval.to_string("hello"),
        scval.to_symbol("interval"),
        scval.to_vec([scval.to_uint32(1), scval.to_vec([])]),
        scval.to_map({scval.to_symbol("a"): scval.to_bytes(b"")}),
        sx.SCVal(sx.SCValType.SCV_VEC, vec=None),
        sx.SCVal(sx.SCValType.SCV_MAP, map=None),
        scval.to_address(kp.public_key),
        scval.to_address(CONTRACT),
        sx.SCVal(sx.SCValType.SCV_ADDRESS, address=muxed),
        sx.SCVal(sx.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE),
        sx.SCVal(sx.SCValType.SCV_LEDGER_KEY_NONCE, nonce_key=sx.SCNonceKey(sx.Int64(-1))),
    ]


class TestTypeCodes:
    def test_scval_codes_equal_the_sdk(self) -> None:
        for kind in sx.SCValType:
            if kind == sx.SCValType.SCV_EXECUTABLE_TAG:
                continue  # newer than the contract; never in a TaskConfig (refused below)
            assert getattr(xdr, kind.name) == kind.value, kind.name

    def test_an_executable_tag_is_refused_as_unsupported(self) -> None:
        tag = sx.SCVal(sx.SCValType.SCV_EXECUTABLE_TAG, executable_tag=sx.SCString(b"x"))
        raw = tag.to_xdr_bytes()
        with pytest.raises(xdr.DecodeError, match="unsupported SCVal type 22"):
            xdr.skip_scval(raw, 0)

    def test_address_entry_and_durability_codes_equal_the_sdk(self) -> None:
        for kind in sx.SCAddressType:
            name = kind.name.replace("SC_ADDRESS_TYPE_", "SC_ADDRESS_")
            assert getattr(xdr, name) == kind.value, name
        for kind in sx.LedgerEntryType:
            assert getattr(xdr, "LE_" + kind.name) == kind.value, kind.name
        assert sx.ContractDataDurability.TEMPORARY.value == xdr.DURABILITY_TEMPORARY
        assert sx.ContractDataDurability.PERSISTENT.value == xdr.DURABILITY_PERSISTENT

    def test_fixed_sizes_equal_the_sdk_encodings(self) -> None:
        sized = {v.type.value: len(v.to_xdr_bytes()) - 4 for v in _every_kind()}
        for kind, size in xdr.SCV_FIXED_SIZE.items():
            assert sized[kind] == size, kind
        variable = {xdr.SCV_BYTES, xdr.SCV_STRING, xdr.SCV_SYMBOL, xdr.SCV_VEC, xdr.SCV_MAP}
        assert set(xdr.SCV_FIXED_SIZE) == set(range(22)) - variable - {
            xdr.SCV_ADDRESS,
            xdr.SCV_CONTRACT_INSTANCE,
        }


class TestEncoders:
    def test_scvals_equal_the_sdk(self) -> None:
        for value in (0, 1, 2**63, 2**64 - 1):
            assert xdr.scv_u64(value) == scval.to_uint64(value).to_xdr_bytes()
        for value in (0, -1, 2**64, -(2**127), 2**127 - 1):
            assert xdr.scv_i128(value) == scval.to_int128(value).to_xdr_bytes()
        for n in range(0, 9):  # every padding length
            name = "abcdefghi"[:n]
            assert xdr.scv_symbol(name.encode()) == scval.to_symbol(name).to_xdr_bytes()
            assert xdr.scv_bytes(name.encode()) == scval.to_bytes(name.encode()).to_xdr_bytes()
        items = [scval.to_uint64(1), scval.to_symbol("x")]
        assert xdr.scv_vec([i.to_xdr_bytes() for i in items]) == scval.to_vec(items).to_xdr_bytes()
        assert xdr.scv_vec([]) == scval.to_vec([]).to_xdr_bytes()
        pairs = [(scval.to_symbol("a"), scval.to_uint64(2))]
        assert (
            xdr.scv_map([(k.to_xdr_bytes(), v.to_xdr_bytes()) for k, v in pairs])
            == scval.to_map(dict(pairs)).to_xdr_bytes()
        )
        assert scval.to_void().to_xdr_bytes() == xdr.SCV_VOID_VAL

    def test_addresses_equal_the_sdk(self) -> None:
        kp = Keypair.random()
        assert xdr.sc_address_account(kp.raw_public_key()) == _sc_address(kp.public_key)
        assert xdr.sc_address_contract(b"\x07" * 32) == _sc_address(CONTRACT)
        assert (
            xdr.scv_address(xdr.sc_address_contract(b"\x07" * 32))
            == scval.to_address(CONTRACT).to_xdr_bytes()
        )

    def test_ledger_keys_and_entries_equal_the_sdk(self) -> None:
        kp = Keypair.random()
        account_key = sx.LedgerKey(
            sx.LedgerEntryType.ACCOUNT, account=sx.LedgerKeyAccount(kp.xdr_account_id())
        )
        assert xdr.account_ledger_key(kp.raw_public_key()) == account_key.to_xdr_bytes()
        key_val, val = scval.to_symbol("k"), scval.to_uint64(3)
        contract = scval.to_address(CONTRACT).address
        for durability in sx.ContractDataDurability:
            sdk_key = sx.LedgerKey(
                sx.LedgerEntryType.CONTRACT_DATA,
                contract_data=sx.LedgerKeyContractData(contract, key_val, durability),
            )
            ours = xdr.contract_data_ledger_key(
                _sc_address(CONTRACT), key_val.to_xdr_bytes(), durability.value
            )
            assert ours == sdk_key.to_xdr_bytes()
            sdk_entry = sx.LedgerEntryData(
                sx.LedgerEntryType.CONTRACT_DATA,
                contract_data=sx.ContractDataEntry(
                    sx.ExtensionPoint(0), contract, key_val, durability, val
                ),
            )
            ours = xdr.contract_data_entry(
                _sc_address(CONTRACT), key_val.to_xdr_bytes(), val.to_xdr_bytes(), durability.value
            )
            assert ours == sdk_entry.to_xdr_bytes()
            assert xdr.contract_data_val_offset(ours) == len(ours) - len(val.to_xdr_bytes())

    def test_pad_and_opaque(self) -> None:
        assert [len(xdr.pad(b"x" * n)) for n in range(6)] == [0, 4, 4, 4, 4, 8]
        assert [xdr.padded_len(n) for n in range(6)] == [0, 4, 4, 4, 4, 8]
        assert xdr.opaque_var(b"abcde") == b"\0\0\0\x05abcde\0\0\0"


class TestBase64:
    def test_round_trip_and_strictness(self) -> None:
        assert xdr.b64decode(xdr.b64encode(b"\x00\xffabc")) == b"\x00\xffabc"
        for bad in ("not base64!!", "QUJ", "QU JD", "QUJD\n", 5):
            with pytest.raises(xdr.DecodeError):
                xdr.b64decode(bad)  # type: ignore[arg-type]


class TestSkip:
    def test_every_kind_is_skipped_exactly(self) -> None:
        for value in _every_kind():
            raw = value.to_xdr_bytes()
            assert xdr.skip_scval(raw + b"tail", 0) == len(raw), value.type

    def test_addresses_are_skipped_exactly(self) -> None:
        raw = _sc_address(Keypair.random().public_key)
        assert xdr.skip_sc_address(b"xx" + raw, 2) == 2 + len(raw)
        with pytest.raises(xdr.DecodeError):
            xdr.skip_sc_address(raw[:-1], 0)
        with pytest.raises(xdr.DecodeError, match="SCAddress type"):
            xdr.skip_sc_address(b"\0\0\0\x09" + raw[4:], 0)

    def test_truncations_unsupported_kinds_and_deep_nesting_raise_decode_error(self) -> None:
        raw = scval.to_vec([scval.to_string("abc"), scval.to_uint128(1)]).to_xdr_bytes()
        for n in range(len(raw)):
            with pytest.raises(xdr.DecodeError):
                xdr.skip_scval(raw[:n], 0)
        instance = sx.SCVal(
            sx.SCValType.SCV_CONTRACT_INSTANCE,
            instance=sx.SCContractInstance(
                sx.ContractExecutable(sx.ContractExecutableType.CONTRACT_EXECUTABLE_STELLAR_ASSET),
                None,
            ),
        )
        with pytest.raises(xdr.DecodeError, match="unsupported"):
            xdr.skip_scval(instance.to_xdr_bytes(), 0)
        deep = scval.to_void()
        for _ in range(xdr.MAX_XDR_DEPTH + 2):
            deep = scval.to_vec([deep])
        with pytest.raises(xdr.DecodeError, match="deeply"):
            xdr.skip_scval(deep.to_xdr_bytes(), 0)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200), st.integers(0, 8))
    def test_random_bytes_give_only_decode_errors(self, data: bytes, off: int) -> None:
        with contextlib.suppress(xdr.DecodeError):
            assert off < xdr.skip_scval(data, off) <= len(data)


class TestAccountEntry:
    def test_written_entry_equals_the_sdk_and_reads_back(self) -> None:
        kp = Keypair.random()
        data = xdr.account_entry(kp.raw_public_key(), 10**11, 5 << 32)
        sdk = sx.LedgerEntryData.from_xdr_bytes(data)
        assert sdk.account.account_id == kp.xdr_account_id()
        assert sdk.to_xdr_bytes() == data
        info = xdr.parse_account_entry(data)
        assert (info.sequence, info.balance, info.num_sub_entries) == (5 << 32, 10**11, 0)

    def test_signed_payload_signers_are_skipped(self) -> None:
        kp = Keypair.random()
        payload = sx.SignerKeyEd25519SignedPayload(sx.Uint256(kp.raw_public_key()), b"abcde")
        acc = sx.AccountEntry(
            account_id=kp.xdr_account_id(),
            balance=sx.Int64(9),
            seq_num=sx.SequenceNumber(sx.Int64(8)),
            num_sub_entries=sx.Uint32(1),
            inflation_dest=None,
            flags=sx.Uint32(0),
            home_domain=sx.String32(b""),
            thresholds=sx.Thresholds(b"\x01\x00\x00\x00"),
            signers=[
                sx.Signer(
                    sx.SignerKey(
                        sx.SignerKeyType.SIGNER_KEY_TYPE_ED25519_SIGNED_PAYLOAD,
                        ed25519_signed_payload=payload,
                    ),
                    sx.Uint32(1),
                )
            ],
            ext=sx.AccountEntryExt(0),
        )
        raw = sx.LedgerEntryData(sx.LedgerEntryType.ACCOUNT, account=acc).to_xdr_bytes()
        assert xdr.parse_account_entry(raw) == xdr.AccountEntryInfo(8, 9, 1)
        for n in range(len(raw)):
            with pytest.raises(xdr.DecodeError):
                xdr.parse_account_entry(raw[:n])

    def test_other_entry_types_are_refused(self) -> None:
        entry = base64.b64decode(
            sx.LedgerEntryData(
                sx.LedgerEntryType.CONTRACT_DATA,
                contract_data=sx.ContractDataEntry(
                    sx.ExtensionPoint(0),
                    scval.to_address(CONTRACT).address,
                    scval.to_void(),
                    sx.ContractDataDurability.PERSISTENT,
                    scval.to_void(),
                ),
            ).to_xdr()
        )
        with pytest.raises(xdr.DecodeError, match="not an account"):
            xdr.parse_account_entry(entry)
