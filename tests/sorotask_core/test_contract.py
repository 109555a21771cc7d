"""The contract layout: its ledger keys and the fast TaskConfig decoder, against stellar-sdk
(``tests/support/reference_contract.py``)."""

from __future__ import annotations

import base64
import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair, StrKey, scval
from stellar_sdk import xdr as sx

from sorotask_core import contract
from sorotask_core.contract import (
    TaskKeys,
    decode_counter_entry,
    decode_task_entry,
    decode_task_entry_b64,
    decode_task_scval_b64,
    sc_address_bytes,
)
from sorotask_core.xdr import DecodeError
from tests.support.ledger_entries import CONTRACT_ID, TARGET_ID, counter_b64, entry_b64, task_config
from tests.support.reference_contract import (
    TASK_FIELDS,
    contract_data_key,
    counter_ledger_key,
    decode_task_config,
    encode_task_config,
    task_ledger_key,
    task_ledger_key_b64,
)


class TestLayout:
    def test_task_fields_are_sorted_and_equal_the_reference(self) -> None:
        assert contract.TASK_FIELDS == TASK_FIELDS == tuple(sorted(TASK_FIELDS))

    def test_error_codes_and_storage_keys_equal_the_reference(self) -> None:
        from tests.support import reference_contract as ref

        for name in ("INVALID_INTERVAL", "UNAUTHORIZED", "INSUFFICIENT_BALANCE", "NOT_INITIALIZED"):
            assert getattr(contract, "ERR_" + name) == getattr(ref, "ERR_" + name)
        assert ref.counter_key_scval().to_xdr_bytes() == contract.COUNTER_KEY_SCVAL
        assert ref.token_key_scval().to_xdr_bytes() == contract.TOKEN_KEY_SCVAL
        assert contract.task_key_scval(2**64 - 1) == ref.task_key_scval(2**64 - 1).to_xdr_bytes()

    def test_events_and_functions_are_lib_rs_names(self) -> None:
        # SOROBAN_FACTS.md, "Events of the SoroTask contract" and the function list
        assert contract.EVENT_NAMES == ("TaskRegistered", "GasDeposited", "GasWithdrawn")
        assert (contract.EVENT_TASK_REGISTERED, contract.EVENT_GAS_DEPOSITED) == (
            "TaskRegistered",
            "GasDeposited",
        )
        assert contract.EVENT_GAS_WITHDRAWN == "GasWithdrawn"
        names = [getattr(contract, n) for n in dir(contract) if n.startswith("FN_")]
        assert sorted(names) == sorted(
            ["register", "get_task", "execute", "init", "get_token", "deposit_gas", "withdraw_gas"]
        )

    def test_the_task_value_offset_is_where_the_sdk_puts_the_config(self) -> None:
        for task_id, cfg in ((1, task_config()), (2**64 - 1, task_config(gas_balance=-1))):
            raw = base64.b64decode(entry_b64(cfg, task_id))
            val = encode_task_config(cfg).to_xdr_bytes()
            assert raw[contract.TASK_ENTRY_VAL_OFFSET :] == val

    def test_the_gas_balance_marker_precedes_the_i128_balance(self) -> None:
        for gas in (0, 5_000, -(2**127), 2**127 - 1):
            val = encode_task_config(task_config(gas_balance=gas)).to_xdr_bytes()
            at = val.index(contract.GAS_BALANCE_MARKER) + len(contract.GAS_BALANCE_MARKER)
            assert int.from_bytes(val[at : at + 16], "big", signed=True) == gas
        assert {
            name: scval.to_symbol(name).to_xdr_bytes() for name in TASK_FIELDS
        } == contract.TASK_FIELD_KEYS


class TestTaskKeys:
    def test_template_keys_equal_sdk_keys(self) -> None:
        keys = TaskKeys(CONTRACT_ID)
        for task_id in (0, 1, 7, 255, 65_536, 10**12, 2**64 - 1):
            assert keys.key_b64(task_id) == task_ledger_key_b64(CONTRACT_ID, task_id)
            assert keys.key_bytes(task_id) == task_ledger_key(CONTRACT_ID, task_id).to_xdr_bytes()


class TestLedgerKeys:
    def test_instance_and_counter_keys_equal_the_sdk(self) -> None:
        instance = sx.SCVal(type=sx.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE)
        assert (
            contract.instance_key_b64(CONTRACT_ID)
            == contract_data_key(CONTRACT_ID, instance).to_xdr()
        )
        assert contract.counter_key_b64(CONTRACT_ID) == counter_ledger_key(CONTRACT_ID).to_xdr()

    def test_task_id_is_read_back_from_a_key_and_foreign_keys_are_refused(self) -> None:
        keys = TaskKeys(CONTRACT_ID)
        for task_id in (0, 1, 7, 2**32, 2**64 - 1):
            assert keys.task_id(keys.key_b64(task_id)) == task_id
        assert keys.task_id(contract.counter_key_b64(CONTRACT_ID)) is None
        other = TaskKeys(StrKey.encode_contract(b"\x01" * 32))
        assert keys.task_id(other.key_b64(5)) is None

    def test_sc_address_bytes_equal_the_sdk(self) -> None:
        pub = Keypair.random().public_key
        for addr in (pub, CONTRACT_ID):
            sdk = scval.to_address(addr).address.to_xdr_bytes()  # type: ignore[union-attr]
            assert sc_address_bytes(addr) == sdk
            assert contract.address_strkey(sdk) == addr

    def test_other_addresses_are_refused(self) -> None:
        with pytest.raises(ValueError, match="account or a C"):
            sc_address_bytes("MA" + "A" * 67)
        muxed = b"\0\0\0\x02" + bytes(40)
        with pytest.raises(DecodeError, match="type 2"):
            contract.address_strkey(muxed)
        assert contract.is_valid_contract_id(CONTRACT_ID)
        assert not contract.is_valid_contract_id(Keypair.random().public_key)


class TestDecodeTaskEntry:
    def test_fields_match_the_sdk_reference_decoder(self) -> None:
        wl = [Keypair.random().public_key, TARGET_ID]
        cfg = task_config(interval=3600, last_run=1_700_000_000, gas_balance=10**20, whitelist=wl)
        b64 = entry_b64(cfg, 42)
        info = decode_task_entry_b64(b64)
        ref = decode_task_config(sx.LedgerEntryData.from_xdr(b64).contract_data.val)
        assert (info.interval, info.last_run, info.gas_balance) == (
            ref.interval,
            ref.last_run,
            ref.gas_balance,
        )
        assert info.whitelist == tuple(sc_address_bytes(a) for a in ref.whitelist)
        assert info.has_resolver is False
        assert info.next_run == 1_700_003_600

    def test_resolver_present_is_reported(self) -> None:
        info = decode_task_entry_b64(entry_b64(task_config(resolver=TARGET_ID)))
        assert info.has_resolver is True

    def test_negative_and_huge_gas_balances_decode_as_signed_i128(self) -> None:
        assert decode_task_entry_b64(entry_b64(task_config(gas_balance=-5))).gas_balance == -5
        big = 2**100 + 17
        assert decode_task_entry_b64(entry_b64(task_config(gas_balance=big))).gas_balance == big

    def test_empty_whitelist_and_no_args(self) -> None:
        info = decode_task_entry_b64(entry_b64(task_config(args=[], whitelist=[])))
        assert info.whitelist == ()

    def test_nested_args_are_skipped(self) -> None:
        args = [
            scval.to_map({scval.to_symbol("interval"): scval.to_uint64(1)}),
            scval.to_vec([scval.to_bytes(b"abc"), scval.to_int128(-3), scval.to_bool(True)]),
            scval.to_void(),
            scval.to_address(Keypair.random().public_key),
            scval.to_uint256(5),
            scval.to_duration(4),
        ]
        info = decode_task_entry_b64(entry_b64(task_config(args=args, interval=99)))
        assert info.interval == 99

    def test_every_truncation_raises_decode_error(self) -> None:
        raw = base64.b64decode(entry_b64(task_config(whitelist=[TARGET_ID])))
        for n in range(len(raw)):
            with pytest.raises(DecodeError):
                decode_task_entry(raw[:n])

    def test_trailing_bytes_raise_decode_error(self) -> None:
        raw = base64.b64decode(entry_b64(task_config()))
        with pytest.raises(DecodeError):
            decode_task_entry(raw + b"\x00\x00\x00\x00")

    def test_invalid_base64_raises_decode_error(self) -> None:
        with pytest.raises(DecodeError):
            decode_task_entry_b64("not base64!!")

    def test_wrong_value_type_raises_decode_error(self) -> None:
        # a Counter entry (u64 value) is not a TaskConfig
        with pytest.raises(DecodeError):
            decode_task_entry_b64(counter_b64(5))

    def test_non_contract_data_entry_raises_decode_error(self) -> None:
        with pytest.raises(DecodeError):
            decode_task_entry(b"\x00\x00\x00\x00" + b"\x00" * 60)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400))
    def test_random_bytes_never_crash(self, data: bytes) -> None:
        with contextlib.suppress(DecodeError):
            decode_task_entry(data)

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, 10_000), st.integers(0, 2000), st.data())
    def test_corrupted_bytes_raise_only_decode_error(
        self, pos: int, val: int, data: st.DataObject
    ) -> None:
        raw = bytearray(base64.b64decode(entry_b64(task_config(whitelist=[TARGET_ID]))))
        raw[pos % len(raw)] = val % 256
        with contextlib.suppress(DecodeError):
            decode_task_entry(bytes(raw))

    @settings(max_examples=50, deadline=None)
    @given(
        st.integers(1, 2**64 - 1),
        st.integers(0, 2**64 - 1),
        st.integers(-(2**127), 2**127 - 1),
        st.integers(0, 3),
        st.booleans(),
    )
    def test_generated_configs_roundtrip(
        self, interval: int, last_run: int, gas: int, n_wl: int, resolver: bool
    ) -> None:
        wl = [Keypair.random().public_key for _ in range(n_wl)]
        cfg = task_config(
            interval=interval,
            last_run=last_run,
            gas_balance=gas,
            whitelist=wl,
            resolver=TARGET_ID if resolver else None,
        )
        info = decode_task_entry_b64(entry_b64(cfg))
        assert (info.interval, info.last_run, info.gas_balance, info.has_resolver) == (
            interval,
            last_run,
            gas,
            resolver,
        )
        assert info.whitelist == tuple(sc_address_bytes(a) for a in wl)

    def test_decode_is_much_faster_than_the_sdk(self) -> None:
        b64 = entry_b64(task_config(whitelist=[TARGET_ID]))
        n = 2000
        t = time.perf_counter()
        for _ in range(n):
            decode_task_entry_b64(b64)
        fast = (time.perf_counter() - t) / n
        t = time.perf_counter()
        for _ in range(50):
            decode_task_config(sx.LedgerEntryData.from_xdr(b64).contract_data.val)
        slow = (time.perf_counter() - t) / 50
        assert fast * 5 < slow, (fast, slow)


class TestDecodeSimulatedGetTask:
    def test_some_task_config(self) -> None:
        val = encode_task_config(task_config(interval=7, last_run=8, gas_balance=9))
        info = decode_task_scval_b64(val.to_xdr())
        assert info is not None
        assert (info.interval, info.last_run, info.gas_balance) == (7, 8, 9)

    def test_none_is_a_missing_task(self) -> None:
        assert decode_task_scval_b64(scval.to_void().to_xdr()) is None


class TestDecodeCounter:
    def test_u64_counter(self) -> None:
        assert decode_counter_entry(counter_b64(123456)) == 123456
        raw = base64.b64decode(counter_b64(2**64 - 1))
        assert contract.decode_counter_data(raw) == 2**64 - 1

    def test_garbage_counter_raises(self) -> None:
        with pytest.raises(DecodeError):
            decode_counter_entry(base64.b64encode(b"\x00\x00\x00\x06").decode())

    def test_contract_id_fixture_is_valid(self) -> None:
        assert CONTRACT_ID.startswith("C")
