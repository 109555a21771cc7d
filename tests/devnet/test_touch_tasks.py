"""devnet_touchTasks: a deposit-like change to many task entries at once (for benchmarks)."""

from __future__ import annotations

import pytest
from stellar_sdk import SorobanServer, scval
from stellar_sdk import xdr as sx

from devnet.process import DevnetProcess, DevnetRpcError
from tests.support.reference_contract import decode_task_config, task_ledger_key


def _task(soroban: SorobanServer, contract_id: str, task_id: int) -> tuple[int, int, int]:
    res = soroban.get_ledger_entries([task_ledger_key(contract_id, task_id)])
    entry = res.entries[0]
    data = sx.LedgerEntryData.from_xdr(entry.xdr)
    cfg = decode_task_config(data.contract_data.val)
    return cfg.gas_balance, cfg.last_run, entry.last_modified_ledger


class TestTouchTasks:
    def test_adds_gas_delta_to_every_task_in_range_and_nothing_else(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, last = devnet.seed_tasks(count=5, gas_balance=1000, last_run=7)
        out = devnet.rpc(
            "devnet_touchTasks", {"first_id": first + 1, "last_id": last - 1, "gas_delta": 25}
        )
        assert out == {"touched": 3}
        cid = devnet.info.contract_id
        balances = [_task(soroban, cid, t)[0] for t in range(first, last + 1)]
        assert balances == [1000, 1025, 1025, 1025, 1000]
        assert {_task(soroban, cid, t)[1] for t in range(first, last + 1)} == {7}

    def test_touched_entry_reports_new_last_modified_ledger(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, _ = devnet.seed_tasks(count=1)
        devnet.close_ledger()
        _, _, before = _task(soroban, devnet.info.contract_id, first)
        devnet.close_ledger()
        devnet.rpc("devnet_touchTasks", {"first_id": first, "last_id": first})
        _, _, after = _task(soroban, devnet.info.contract_id, first)
        assert after > before

    def test_rejects_an_inverted_range(self, devnet: DevnetProcess) -> None:
        with pytest.raises(DevnetRpcError) as err:
            devnet.rpc("devnet_touchTasks", {"first_id": 10, "last_id": 2})
        assert err.value.code == -32602

    def test_touched_value_round_trips_through_scval(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, _ = devnet.seed_tasks(count=1, gas_balance=-5)
        devnet.rpc("devnet_touchTasks", {"first_id": first, "last_id": first, "gas_delta": 12})
        res = soroban.get_ledger_entries([task_ledger_key(devnet.info.contract_id, first)])
        val = sx.LedgerEntryData.from_xdr(res.entries[0].xdr).contract_data.val
        gas = next(e.val for e in val.map.sc_map if scval.from_symbol(e.key) == "gas_balance")
        assert scval.from_int128(gas) == 7
