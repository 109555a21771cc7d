"""The pure simulation check (shard_worker.simcheck.check_simulation): an answer and what it
must authorize in, a verdict out; answers built with stellar-sdk, no network, no keeper."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from stellar_sdk import Keypair, scval
from stellar_sdk import xdr as sx

from shard_worker.simcheck import Expected, Refusal, Simulation, check_simulation
from sorotask_core import contract
from tests.shard_worker.test_strict_xdr import (
    address_entry,
    contract_fn_invocation,
    every_ledger_key_kind,
    soroban_data,
    source_entry,
)
from tests.support.ledger_entries import CONTRACT_ID
from tests.support.reference_contract import task_ledger_key

TASK = 5

#: every way an answer is unusable (see :func:`spoil`)
UNUSABLE = [
    "data_truncated",
    "data_trailing",
    "data_not_base64",
    "data_number",
    "negative_resource_fee",
    "archived_index_outside_footprint",
    "min_fee_below_resource_fee",
    "min_fee_too_big",
    "min_fee_garbage",
    "results_empty",
    "results_two",
    "result_xdr_truncated",
    "auth_none_recorded",
    "auth_two",
    "auth_truncated",
    "auth_not_a_string",
    "auth_other_function",
    "auth_other_task",
    "auth_other_contract",
    "auth_other_address",
    "auth_sub_invocation",
    "auth_source_account_for_a_channel",
]


def b64(x: sx.SorobanTransactionData | sx.SorobanAuthorizationEntry | sx.SCVal) -> str:
    return x.to_xdr()


def genuine(kp: Keypair, *, source: bool = True, fee: int = 98_765) -> dict[str, Any]:
    """A simulation answer as stellar-rpc gives it for ``execute(kp, TASK)``."""
    args = [scval.to_address(kp.public_key), scval.to_uint64(TASK)]
    inv = contract_fn_invocation(args=args)
    entry = source_entry(inv) if source else address_entry(inv, who=kp.public_key)
    return {
        "transactionData": b64(soroban_data([], [task_ledger_key(CONTRACT_ID, TASK)])),
        "minResourceFee": str(fee),
        "results": [{"auth": [b64(entry)], "xdr": b64(scval.to_void())}],
        "latestLedger": 77,
    }


def spoil(name: str, sim: dict[str, Any], kp: Keypair) -> bool:
    """Make ``sim`` (a :func:`genuine` answer) unusable the ``name`` way; returns whether the
    keeper's account is the source for the check."""
    raw_data = base64.b64decode(sim["transactionData"])
    args = [scval.to_address(kp.public_key), scval.to_uint64(TASK)]
    res = sim["results"][0]
    is_keeper = True
    other_contract = contract_fn_invocation(args=args)
    other_contract.function.contract_fn.contract_address = scval.to_address(  # type: ignore[union-attr]
        Keypair.random().public_key
    ).address
    if name == "data_truncated":
        sim["transactionData"] = base64.b64encode(raw_data[:-5]).decode()
    elif name == "data_trailing":
        sim["transactionData"] = base64.b64encode(raw_data + b"\0\0\0\0").decode()
    elif name == "data_not_base64":
        sim["transactionData"] = "!!"
    elif name == "data_number":
        sim["transactionData"] = 5
    elif name == "negative_resource_fee":
        data = soroban_data([], [task_ledger_key(CONTRACT_ID, TASK)])
        data.resource_fee = sx.Int64(-1)
        sim["transactionData"] = b64(data)
    elif name == "archived_index_outside_footprint":
        sim["transactionData"] = b64(
            soroban_data([], [task_ledger_key(CONTRACT_ID, TASK)], archived=[1])
        )
    elif name == "min_fee_below_resource_fee":
        sim["minResourceFee"] = "98764"
    elif name == "min_fee_too_big":
        sim["minResourceFee"] = str(2**32)
    elif name == "min_fee_garbage":
        sim["minResourceFee"] = [1]
    elif name == "results_empty":
        sim["results"] = []
    elif name == "results_two":
        sim["results"] = [res, res]
    elif name == "result_xdr_truncated":
        res["xdr"] = base64.b64encode(b"\0\0\0").decode()
    elif name == "auth_none_recorded":
        res["auth"] = []
    elif name == "auth_two":
        res["auth"] = res["auth"] * 2
    elif name == "auth_truncated":
        raw = base64.b64decode(res["auth"][0])
        res["auth"] = [base64.b64encode(raw[: len(raw) // 2]).decode()]
    elif name == "auth_not_a_string":
        res["auth"] = [7]
    elif name == "auth_other_function":
        res["auth"] = [b64(source_entry(contract_fn_invocation("withdraw_gas", args)))]
    elif name == "auth_other_task":
        inv = contract_fn_invocation(args=[args[0], scval.to_uint64(TASK + 1)])
        res["auth"] = [b64(source_entry(inv))]
    elif name == "auth_other_contract":
        res["auth"] = [b64(source_entry(other_contract))]
    elif name == "auth_other_address":  # address credentials for another account
        res["auth"] = [b64(address_entry(contract_fn_invocation(args=args)))]
        is_keeper = False
    elif name == "auth_sub_invocation":
        inv = contract_fn_invocation(args=args)
        inv.sub_invocations = [contract_fn_invocation("transfer", [])]
        res["auth"] = [b64(source_entry(inv))]
    elif name == "auth_source_account_for_a_channel":
        is_keeper = False
    else:
        raise AssertionError(f"unknown spoiling {name}")
    return is_keeper


def expected(kp: Keypair, *, is_keeper: bool = True, recorded: bool = True) -> Expected:
    return Expected(
        task_id=TASK,
        task_key=task_ledger_key(CONTRACT_ID, TASK).to_xdr_bytes(),
        keeper_address=contract.sc_address_bytes(kp.public_key),
        contract_address=contract.sc_address_bytes(CONTRACT_ID),
        keeper_is_source=is_keeper,
        recorded=recorded,
        base_fee=100,
    )


class TestVerdict:
    def test_a_genuine_answer_passes_with_its_parts(self) -> None:
        kp = Keypair.random()
        sim = genuine(kp)
        ok = check_simulation(sim, expected(kp))
        assert isinstance(ok, Simulation)
        assert ok.transaction_data == base64.b64decode(sim["transactionData"])
        assert ok.data.read_write == (task_ledger_key(CONTRACT_ID, TASK).to_xdr_bytes(),)
        assert ok.min_resource_fee == 98_765
        assert ok.auth == [base64.b64decode(sim["results"][0]["auth"][0])]
        assert ok.latest_ledger == 77
        assert ok.writes_task is True
        channel = check_simulation(genuine(kp, source=False), expected(kp, is_keeper=False))
        assert isinstance(channel, Simulation)  # address credentials for the keeper

    @pytest.mark.parametrize("name", UNUSABLE)
    def test_unusable_answers_are_refused_with_a_reason(self, name: str) -> None:
        kp = Keypair.random()
        sim = genuine(kp)
        is_keeper = spoil(name, sim, kp)
        verdict = check_simulation(sim, expected(kp, is_keeper=is_keeper))
        assert isinstance(verdict, Refusal)
        assert verdict.why

    def test_the_check_is_pure(self) -> None:
        """The same answer gets the same verdict, and the answer is not changed."""
        kp = Keypair.random()
        sim = genuine(kp)
        sim["results"][0]["auth"] = []  # refused in recording mode
        before = repr(sim)
        first = check_simulation(sim, expected(kp))
        assert first == check_simulation(sim, expected(kp))
        assert isinstance(first, Refusal) and "0 auth entries" in first.why
        assert repr(sim) == before

    def test_no_auth_entry_is_fine_once_signed_entries_were_given(self) -> None:
        kp = Keypair.random()
        sim = genuine(kp)
        sim["results"][0]["auth"] = None
        ok = check_simulation(sim, expected(kp, recorded=False))
        assert isinstance(ok, Simulation) and ok.auth == []

    def test_a_call_that_only_reads_the_task_does_not_write_it(self) -> None:
        kp = Keypair.random()
        sim = genuine(kp)
        sim["transactionData"] = b64(soroban_data([task_ledger_key(CONTRACT_ID, TASK)], []))
        ok = check_simulation(sim, expected(kp))
        assert isinstance(ok, Simulation) and ok.writes_task is False

    def test_a_garbled_latest_ledger_is_dropped_not_refused(self) -> None:
        kp = Keypair.random()
        for bad in ("77", -1, 0, None, 7.5):
            sim = genuine(kp)
            sim["latestLedger"] = bad
            ok = check_simulation(sim, expected(kp))
            assert isinstance(ok, Simulation) and ok.latest_ledger is None

    def test_every_ledger_key_kind_in_the_footprint_is_accepted(self) -> None:
        kp = Keypair.random()
        sim = genuine(kp)
        keys = every_ledger_key_kind()
        sim["transactionData"] = b64(soroban_data(keys, [task_ledger_key(CONTRACT_ID, TASK)]))
        ok = check_simulation(sim, expected(kp))
        assert isinstance(ok, Simulation) and len(ok.data.read_only) == len(keys)
