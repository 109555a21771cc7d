"""Whole TaskConfigs both ways and the task-entry writer, against the stellar-sdk reference."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair, StrKey, scval
from stellar_sdk import xdr as sx

from sorotask_core import taskconfig as tc
from sorotask_core.contract import decode_task_entry, sc_address_bytes
from sorotask_core.xdr import DecodeError
from tests.support import reference_contract as ref

CONTRACT_ID = StrKey.encode_contract(b"\x07" * 32)
TARGET_ID = StrKey.encode_contract(b"\x09" * 32)
RESOLVER_ID = StrKey.encode_contract(b"\x0b" * 32)


def _configs(**kw: object) -> tuple[ref.TaskConfig, tc.TaskConfig]:
    """The same config as the reference holds it and as the core holds it."""
    fields: dict = {
        "creator": Keypair.random().public_key,
        "target": TARGET_ID,
        "function": "ping",
        "args": [scval.to_uint64(7), scval.to_string("hello"), scval.to_vec([])],
        "resolver": None,
        "interval": 60,
        "last_run": 1_000,
        "gas_balance": 5_000,
        "whitelist": [],
    }
    fields.update(kw)
    core = dict(fields, args=[a.to_xdr_bytes() for a in fields["args"]])
    return ref.TaskConfig(**fields), tc.TaskConfig(**core)


def _map(entries: list[tuple[str, sx.SCVal]]) -> sx.SCVal:
    return sx.SCVal(
        sx.SCValType.SCV_MAP,
        map=sx.SCMap([sx.SCMapEntry(scval.to_symbol(k), v) for k, v in entries]),
    )


def _ref_entries(cfg: ref.TaskConfig) -> list[tuple[str, sx.SCVal]]:
    val = ref.encode_task_config(cfg)
    return [(scval.from_symbol(e.key), e.val) for e in val.map.sc_map]  # type: ignore[union-attr]


class TestEncode:
    def test_equals_the_reference_byte_for_byte(self) -> None:
        w1, w2 = Keypair.random().public_key, Keypair.random().public_key
        for kw in (
            {},
            {"resolver": RESOLVER_ID, "whitelist": [w1, w2, TARGET_ID], "gas_balance": -(2**100)},
            {"args": [], "interval": 2**64 - 1, "last_run": 2**64 - 1, "gas_balance": 2**127 - 1},
            {"function": "a_function_named_with_32_chars__", "target": w1},
        ):
            sdk_cfg, core_cfg = _configs(**kw)
            assert tc.encode_task_config(core_cfg) == ref.encode_task_config(sdk_cfg).to_xdr_bytes()

    def test_the_entry_writer_equals_the_reference_entry(self) -> None:
        sdk_cfg, core_cfg = _configs(resolver=RESOLVER_ID, whitelist=[TARGET_ID])
        enc = tc.TaskEncoder(CONTRACT_ID)
        entry = sx.LedgerEntryData(
            type=sx.LedgerEntryType.CONTRACT_DATA,
            contract_data=sx.ContractDataEntry(
                ext=sx.ExtensionPoint(0),
                contract=ref.task_ledger_key(CONTRACT_ID, 9).contract_data.contract,
                key=ref.task_key_scval(9),
                durability=sx.ContractDataDurability.PERSISTENT,
                val=ref.encode_task_config(sdk_cfg),
            ),
        )
        assert enc.entry(9, tc.encode_task_config(core_cfg)) == entry.to_xdr_bytes()
        assert enc.key(9) == ref.task_ledger_key(CONTRACT_ID, 9).to_xdr_bytes()
        info = decode_task_entry(enc.entry(9, tc.encode_task_config(core_cfg)))
        assert info.whitelist == (sc_address_bytes(TARGET_ID),)
        assert info.has_resolver

    def test_counter_entry_equals_the_reference(self) -> None:
        entry = sx.LedgerEntryData(
            type=sx.LedgerEntryType.CONTRACT_DATA,
            contract_data=sx.ContractDataEntry(
                ext=sx.ExtensionPoint(0),
                contract=ref.counter_ledger_key(CONTRACT_ID).contract_data.contract,
                key=ref.counter_key_scval(),
                durability=sx.ContractDataDurability.PERSISTENT,
                val=scval.to_uint64(2**40),
            ),
        )
        assert tc.counter_entry(CONTRACT_ID, 2**40) == entry.to_xdr_bytes()

    def test_only_account_and_contract_addresses_are_encoded(self) -> None:
        _, core_cfg = _configs(creator="MA" + "A" * 67)
        with pytest.raises(ValueError, match="account or a C"):
            tc.encode_task_config(core_cfg)


class TestDecode:
    def test_round_trip_equals_the_reference_decoder(self) -> None:
        w = [Keypair.random().public_key for _ in range(3)]
        sdk_cfg, core_cfg = _configs(resolver=RESOLVER_ID, whitelist=w, gas_balance=-3)
        raw = ref.encode_task_config(sdk_cfg).to_xdr_bytes()
        got = tc.decode_task_config(raw)
        assert got == core_cfg
        want = ref.decode_task_config(sx.SCVal.from_xdr_bytes(raw))
        assert [a.to_xdr_bytes() for a in want.args] == got.args
        assert (want.creator, want.resolver, want.whitelist) == (
            got.creator,
            got.resolver,
            got.whitelist,
        )

    def test_key_order_repeats_and_unknown_keys_as_the_reference(self) -> None:
        sdk_cfg, _ = _configs(whitelist=[TARGET_ID])
        entries = _ref_entries(sdk_cfg)
        random.Random(5).shuffle(entries)
        entries += [("zzz_unknown", scval.to_uint64(1)), ("interval", scval.to_uint64(77))]
        raw = _map(entries).to_xdr_bytes()
        got = tc.decode_task_config(raw)
        want = ref.decode_task_config(sx.SCVal.from_xdr_bytes(raw))
        assert (got.interval, want.interval) == (77, 77)
        assert (got.creator, got.whitelist, got.gas_balance) == (
            want.creator,
            want.whitelist,
            want.gas_balance,
        )

    def test_what_the_reference_refuses_is_refused(self) -> None:
        sdk_cfg, _ = _configs()
        entries = _ref_entries(sdk_cfg)
        bad_values = {
            "interval": scval.to_uint32(5),
            "last_run": scval.to_int64(5),
            "gas_balance": scval.to_uint128(5),
            "creator": scval.to_symbol("nobody"),
            "target": scval.to_void(),
            "function": scval.to_string("run"),
            "args": scval.to_map({}),
            "resolver": scval.to_uint64(1),
            "whitelist": scval.to_vec([scval.to_symbol("x")]),
        }
        cases = [[(k, v) for k, v in entries if k != name] for name in ref.TASK_FIELDS]
        cases += [
            [(k, bad_values[k] if k == name else v) for k, v in entries] for name in bad_values
        ]
        for case in cases:
            raw = _map(case).to_xdr_bytes()
            with pytest.raises(ValueError):
                ref.decode_task_config(sx.SCVal.from_xdr_bytes(raw))
            with pytest.raises(DecodeError):
                tc.decode_task_config(raw)

    def test_not_a_map_and_truncations_are_decode_errors(self) -> None:
        raw = ref.encode_task_config(_configs(whitelist=[TARGET_ID])[0]).to_xdr_bytes()
        for n in range(len(raw)):
            with pytest.raises(DecodeError):
                tc.decode_task_config(raw[:n])
        with pytest.raises(DecodeError, match="trailing"):
            tc.decode_task_config(raw + b"\0\0\0\x01")
        for value in (scval.to_void(), scval.to_vec([]), sx.SCVal(sx.SCValType.SCV_MAP, map=None)):
            with pytest.raises(DecodeError):
                tc.decode_task_config(value.to_xdr_bytes())

    @settings(max_examples=50, deadline=None)
    @given(
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1),
        st.integers(-(2**127), 2**127 - 1),
        st.integers(0, 3),
        st.booleans(),
        st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=32),
    )
    def test_generated_configs_round_trip_through_both(
        self, interval: int, last_run: int, gas: int, n_wl: int, resolver: bool, function: str
    ) -> None:
        sdk_cfg, core_cfg = _configs(
            interval=interval,
            last_run=last_run,
            gas_balance=gas,
            whitelist=[Keypair.random().public_key for _ in range(n_wl)],
            resolver=RESOLVER_ID if resolver else None,
            function=function,
        )
        raw = tc.encode_task_config(core_cfg)
        assert raw == ref.encode_task_config(sdk_cfg).to_xdr_bytes()
        assert tc.decode_task_config(raw) == core_cfg


class TestTaskConfig:
    def test_due_like_the_reference(self) -> None:
        for gas, last_run, now in ((1, 100, 160), (1, 100, 159), (0, 0, 10**6), (-1, 0, 10**6)):
            sdk_cfg, core_cfg = _configs(gas_balance=gas, last_run=last_run, interval=60)
            assert core_cfg.is_due(now) == sdk_cfg.is_due(now)
            assert core_cfg.next_run() == sdk_cfg.next_run() == last_run + 60
