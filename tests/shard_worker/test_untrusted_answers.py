"""Keeper-level checks of untrusted RPC answers, without a devnet (a scripted fake RPC):
a simulation is parsed and checked before anything is built from it, a stale latest ledger
never sets a transaction's time bound, and an unknown send status is "maybe queued"."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from stellar_sdk import Keypair, scval
from stellar_sdk import xdr as sx

from shard_worker.errors import RpcMalformedError
from shard_worker.journal import JournalEntry
from shard_worker.keeper import Keeper, SourceAccount
from shard_worker.spec import SecretRef, WorkerSpec
from sorotask_core import contract
from sorotask_core.signing import Signer
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


class FakeRpc:
    """Answers each method from a script (a list, consumed in order); counts noted errors."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.noted: list[str] = []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.script[method].pop(0)

    def note_error(self, method: str) -> None:
        self.noted.append(method)


class NullReporter:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))


def make_keeper(kp: Keypair, rpc: FakeRpc) -> Keeper:
    spec = WorkerSpec(
        name="t",
        rpc_url="http://127.0.0.1:1/",
        network_passphrase="Test SDF Network ; September 2015",
        contract_id=CONTRACT_ID,
        secret=SecretRef(env="UNUSED"),
    )
    keeper = Keeper(spec, NullReporter(), asyncio.Event())  # type: ignore[arg-type]
    keeper.keeper = Signer.from_secret(kp.secret)
    keeper.keeper_address = contract.sc_address_bytes(kp.public_key)
    keeper.contract_address = contract.sc_address_bytes(CONTRACT_ID)
    keeper.task_keys = contract.TaskKeys(CONTRACT_ID)
    keeper.rpc = rpc  # type: ignore[assignment]
    return keeper


def b64(x: sx.SorobanTransactionData | sx.SorobanAuthorizationEntry | sx.SCVal) -> str:
    return x.to_xdr()


def genuine(kp: Keypair, *, source: bool = True, fee: int = 98_765) -> dict[str, Any]:
    args = [scval.to_address(kp.public_key), scval.to_uint64(TASK)]
    inv = contract_fn_invocation(args=args)
    entry = source_entry(inv) if source else address_entry(inv, who=kp.public_key)
    return {
        "transactionData": b64(soroban_data([], [task_ledger_key(CONTRACT_ID, TASK)])),
        "minResourceFee": str(fee),
        "results": [{"auth": [b64(entry)], "xdr": b64(scval.to_void())}],
        "latestLedger": 77,
    }


def check(keeper: Keeper, sim: dict[str, Any], *, is_keeper: bool = True) -> Any:
    assert keeper.keeper is not None
    acc = SourceAccount(keeper.keeper, is_keeper)
    return keeper._check_simulation(sim, TASK, acc, recorded=True)


class TestCheckSimulation:
    def test_genuine_answers_pass_with_their_parts(self) -> None:
        kp = Keypair.random()
        keeper = make_keeper(kp, FakeRpc({}))
        sim = genuine(kp)
        ok = check(keeper, sim)
        assert ok.transaction_data == base64.b64decode(sim["transactionData"])
        assert ok.data.read_write == (task_ledger_key(CONTRACT_ID, TASK).to_xdr_bytes(),)
        assert ok.min_resource_fee == 98_765
        assert ok.auth == [base64.b64decode(sim["results"][0]["auth"][0])]
        assert ok.latest_ledger == 77
        check(keeper, genuine(kp, source=False), is_keeper=False)  # address credentials

    @pytest.mark.parametrize(
        "name",
        [
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
        ],
    )
    def test_unusable_answers_are_refused_and_counted(self, name: str) -> None:
        kp = Keypair.random()
        rpc = FakeRpc({})
        keeper = make_keeper(kp, rpc)
        sim = genuine(kp)
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
        with pytest.raises(RpcMalformedError, match="unusable answer"):
            check(keeper, sim, is_keeper=is_keeper)
        assert rpc.noted == ["simulateTransaction"]
        assert keeper.totals["bad_simulations"] == 1

    def test_every_ledger_key_kind_in_the_footprint_is_accepted(self) -> None:
        kp = Keypair.random()
        keeper = make_keeper(kp, FakeRpc({}))
        sim = genuine(kp)
        keys = every_ledger_key_kind()
        sim["transactionData"] = b64(soroban_data(keys, [task_ledger_key(CONTRACT_ID, TASK)]))
        assert len(check(keeper, sim).data.read_only) == len(keys)


def latest(seq: int, close: int) -> dict[str, Any]:
    return {"sequence": seq, "closeTime": str(close)}


class TestStaleLedger:
    def test_a_stale_answer_never_sets_the_time_bound_and_is_counted(self) -> None:
        kp = Keypair.random()
        rpc = FakeRpc(
            {
                "getLatestLedger": [
                    latest(100, 5_000),
                    latest(60, 4_800),  # a lagging node
                    latest(101, 5_005),
                    latest(101, 4_000),  # same sequence, older close time: also stale
                ]
            }
        )
        keeper = make_keeper(kp, rpc)

        async def go() -> list[tuple[int, int]]:
            out = []
            for _ in range(4):
                got = await keeper._ledger_for_tx()
                out.append((got.sequence, got.close_time))
            return out

        assert asyncio.run(go()) == [(100, 5_000), (100, 5_000), (101, 5_005), (101, 5_005)]
        assert keeper.totals["stale_ledger_answers"] == 2
        assert rpc.noted == ["getLatestLedger", "getLatestLedger"]


class TestUnknownSendStatus:
    @pytest.mark.parametrize("status", [42, "PENDNG", None, "pending", ["PENDING"]])
    def test_unknown_status_is_maybe_queued(self, status: Any) -> None:
        kp = Keypair.random()
        rpc = FakeRpc({"sendTransaction": [{"status": status, "hash": "ab" * 32}]})
        keeper = make_keeper(kp, rpc)
        assert keeper.keeper is not None
        acc = SourceAccount(keeper.keeper, True, sequence=41, needs_resync=False)
        entry = JournalEntry(
            hash="ab" * 32, task_id=TASK, source=kp.public_key, sequence=42, max_time=9_999
        )
        keeper.journal.add(entry)
        assert asyncio.run(keeper._send("AAAA", entry, acc)) is True  # go on confirming
        assert acc.sequence == 42 and acc.needs_resync  # never reused; resynced after
        assert entry.hash in keeper.journal
        assert keeper.totals["send_status_unknown"] == 1
        assert keeper.totals["tx_errors"] == 0
        assert rpc.noted == ["sendTransaction"]
