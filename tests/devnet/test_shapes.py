"""Small shapes of stellar-rpc's answers that a client can trip over."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from stellar_sdk import SorobanServer, TransactionBuilder
from stellar_sdk.exceptions import PrepareTransactionException
from stellar_sdk.soroban_rpc import GetTransactionStatus

from devnet.process import DevnetProcess
from tests.support import reference_contract as sc
from tests.support.devnet import execute_args, funded_keypair, invoke_tx

JSON = {"content-type": "application/json"}


def _post(dn: DevnetProcess, body: bytes) -> httpx.Response:
    return httpx.post(dn.info.rpc_url, content=body, headers=JSON, timeout=10)


def _call(dn: DevnetProcess, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 3, "method": method, "params": params}
    return _post(dn, orjson.dumps(body)).json()


class TestShapes:
    def test_not_found_transaction_carries_zero_values(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        out = _call(devnet, "getTransaction", {"hash": "cd" * 32})["result"]
        assert {k: out[k] for k in ("status", "txHash", "applicationOrder", "feeBump")} == {
            "status": "NOT_FOUND",
            "txHash": "cd" * 32,
            "applicationOrder": 0,
            "feeBump": False,
        }
        assert (out["ledger"], out["createdAt"]) == (0, "0")
        assert isinstance(out["latestLedger"], int) and isinstance(out["oldestLedger"], int)
        assert int(out["latestLedgerCloseTime"]) >= int(out["oldestLedgerCloseTime"]) > 0
        assert "envelopeXdr" not in out and "resultXdr" not in out
        parsed = soroban.get_transaction("cd" * 32)
        assert parsed.status == GetTransactionStatus.NOT_FOUND
        assert (parsed.application_order, parsed.fee_bump, parsed.ledger) == (0, False, 0)

    def test_malformed_json_is_http_500_with_jrpc2s_text(self, devnet: DevnetProcess) -> None:
        for body in (b"{", b'{"jsonrpc": "2.0", "id": 1,', b"\xff\xfe", b""):
            resp = _post(devnet, body)
            assert resp.status_code == 500, body
            assert resp.text == "[-32700] invalid request value\n", body
            assert not resp.headers["content-type"].startswith("application/json")

    def test_an_empty_batch_is_204_with_no_body(self, devnet: DevnetProcess) -> None:
        resp = _post(devnet, b"[]")
        assert (resp.status_code, resp.content) == (204, b"")

    def test_unknown_method_is_method_not_found_with_the_name_as_data(
        self, devnet: DevnetProcess
    ) -> None:
        out = _call(devnet, "getEverything", {})
        assert out["id"] == 3
        assert out["error"] == {
            "code": -32601,
            "message": "method not found",
            "data": "getEverything",
        }

    def test_a_memo_is_refused_by_simulation(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        account = soroban.load_account(keeper.public_key)
        tx = (
            TransactionBuilder(account, devnet.info.network_passphrase, base_fee=100)
            .append_invoke_contract_function_op(
                devnet.info.contract_id, "execute", execute_args(keeper.public_key, first)
            )
            .add_text_memo("keeper run")
            .add_time_bounds(0, soroban.get_latest_ledger().close_time + 300)
            .build()
        )
        sim = soroban.simulate_transaction(tx)
        assert sim.error is not None and "memo" in sim.error
        assert sim.transaction_data is None and sim.results is None
        with pytest.raises(PrepareTransactionException):
            soroban.prepare_transaction(tx)
        # the same call without a memo simulates
        plain = invoke_tx(
            soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first)
        )
        assert soroban.simulate_transaction(plain).error is None

    def test_a_non_canonical_base64_key_is_mismatching_key_in_result(
        self, devnet: DevnetProcess
    ) -> None:
        first, _ = devnet.seed_tasks(count=1)
        key = sc.task_ledger_key_b64(devnet.info.contract_id, first)
        assert key.endswith("E=")  # 80 bytes: the last character carries 2 unused bits
        sloppy = key[:-2] + "F="  # the same bytes, with an unused bit set
        found = _call(devnet, "getLedgerEntries", {"keys": [key]})["result"]["entries"]
        assert [e["key"] for e in found] == [key]
        out = _call(devnet, "getLedgerEntries", {"keys": [sloppy]})
        assert out["error"] == {"code": -32603, "message": "mismatching key in result"}
        # a sloppy key for an entry that does not exist finds nothing, as before
        missing = sc.task_ledger_key_b64(devnet.info.contract_id, 10**12)
        none = _call(devnet, "getLedgerEntries", {"keys": [missing[:-2] + "F="]})
        assert none["result"]["entries"] == []
