"""The fast TaskConfig decoder against XDR built by stellar-sdk (sorotask.contract)."""

from __future__ import annotations

import base64
import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair, scval
from stellar_sdk import xdr as sx

from shard_worker.chain import sc_address_bytes
from shard_worker.decode import (
    DecodeError,
    decode_counter_entry,
    decode_task_entry,
    decode_task_entry_b64,
    decode_task_scval_b64,
)
from sorotask.contract import decode_task_config, encode_task_config
from tests.support.ledger_entries import CONTRACT_ID, TARGET_ID, counter_b64, entry_b64, task_config


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

    def test_garbage_counter_raises(self) -> None:
        with pytest.raises(DecodeError):
            decode_counter_entry(base64.b64encode(b"\x00\x00\x00\x06").decode())

    def test_contract_id_fixture_is_valid(self) -> None:
        assert CONTRACT_ID.startswith("C")
