"""JSON-RPC and HTTP edge cases, answered like stellar-rpc answers them."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest
from stellar_sdk import SorobanServer
from stellar_sdk.exceptions import SorobanRpcErrorResponse

from devnet.process import DevnetProcess
from tests.support import reference_contract as sc


def _post(dn: DevnetProcess, body: bytes | str) -> httpx.Response:
    return httpx.post(
        dn.info.rpc_url,
        content=body,
        headers={"content-type": "application/json"},
        timeout=10,
    )


def _call(dn: DevnetProcess, method: str, params: object = None) -> dict:
    body = {"jsonrpc": "2.0", "id": 7, "method": method}
    if params is not None:
        body["params"] = params
    return _post(dn, orjson.dumps(body)).json()


class TestJsonRpcErrors:
    def test_201_keys_is_invalid_params_with_stellar_rpc_message(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keys = [sc.task_ledger_key(devnet.info.contract_id, i) for i in range(1, 202)]
        with pytest.raises(SorobanRpcErrorResponse) as info:
            soroban.get_ledger_entries(keys)
        assert info.value.code == -32602
        assert info.value.message == "key count (201) exceeds maximum supported (200)"

    def test_200_keys_are_answered(self, devnet: DevnetProcess, soroban: SorobanServer) -> None:
        keys = [sc.task_ledger_key(devnet.info.contract_id, i) for i in range(1, 201)]
        resp = soroban.get_ledger_entries(keys)
        assert resp.entries is not None and len(resp.entries) >= 5

    def test_undecodable_key_is_invalid_params(self, devnet: DevnetProcess) -> None:
        out = _call(devnet, "getLedgerEntries", {"keys": ["AAAA", "not base64!"]})
        assert out["error"]["code"] == -32602
        assert out["error"]["message"] == "cannot unmarshal key value AAAA at index 0"

    def test_ttl_key_is_refused(self, devnet: DevnetProcess) -> None:
        ttl_key = base64.b64encode(b"\x00\x00\x00\x09" + b"\x01" * 32).decode()
        out = _call(devnet, "getLedgerEntries", {"keys": [ttl_key]})
        assert out["error"] == {
            "code": -32602,
            "message": "ledger ttl entries cannot be queried directly",
        }

    def test_malformed_json_is_parse_error(self, devnet: DevnetProcess) -> None:
        # stellar-rpc's HTTP bridge fails before any JSON-RPC reply: HTTP 500, a text body
        resp = _post(devnet, b'{"jsonrpc": "2.0", "id": 1, "method": ')
        assert resp.status_code == 500
        assert resp.text == "[-32700] invalid request value\n"

    def test_not_a_request_object_is_invalid_request(self, devnet: DevnetProcess) -> None:
        assert _post(devnet, b'"hello"').json()["error"]["code"] == -32600
        assert _post(devnet, b"[]").status_code == 204  # an empty batch: nothing to answer
        assert _post(devnet, b'{"id": 1, "method": "getHealth"}').json()["error"]["code"] == (
            -32600
        )

    def test_unknown_method_is_method_not_found(self, devnet: DevnetProcess) -> None:
        out = _call(devnet, "getEverything")
        assert out["error"]["code"] == -32601 and out["id"] == 7

    def test_positional_params_are_invalid_params(self, devnet: DevnetProcess) -> None:
        assert _call(devnet, "getLedgerEntries", [["AAAA"]])["error"]["code"] == -32602

    def test_wrong_http_method_is_405(self, devnet: DevnetProcess) -> None:
        assert httpx.get(devnet.info.rpc_url, timeout=10).status_code == 405
        assert httpx.put(devnet.info.rpc_url, content=b"{}", timeout=10).status_code == 405

    def test_non_json_content_type_is_refused_with_415_like_stellar_rpc(
        self, devnet: DevnetProcess
    ) -> None:
        body = b'{"jsonrpc": "2.0", "id": 1, "method": "getHealth"}'
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"content-type": ctype} if ctype else {}
            resp = httpx.post(devnet.info.rpc_url, content=body, headers=headers, timeout=10)
            assert resp.status_code == 415, ctype
            assert "application/json" in resp.text
        ok = httpx.post(
            devnet.info.rpc_url,
            content=body,
            headers={"content-type": "application/json; charset=utf-8"},
            timeout=10,
        )
        assert ok.status_code == 200 and ok.json()["result"]["status"] == "healthy"

    def test_body_over_512_kib_is_413(self, devnet: DevnetProcess) -> None:
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "getHealth", "params": {"x": "a" * 530_000}}
        )
        assert _post(devnet, body).status_code == 413
        assert _call(devnet, "getHealth")["result"]["status"] == "healthy"

    def test_batch_answers_each_call_in_order(self, devnet: DevnetProcess) -> None:
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
            {"jsonrpc": "2.0", "id": 2, "method": "nope"},
            {"jsonrpc": "2.0", "method": "getHealth"},  # notification: no answer
            {"jsonrpc": "2.0", "id": 3, "method": "getLatestLedger"},
        ]
        out = _post(devnet, orjson.dumps(batch)).json()
        assert [o["id"] for o in out] == [1, 2, 3]
        assert out[0]["result"]["status"] == "healthy"
        assert out[1]["error"]["code"] == -32601
        assert "sequence" in out[2]["result"]

    def test_bad_transaction_hashes_are_invalid_params(self, devnet: DevnetProcess) -> None:
        short = _call(devnet, "getTransaction", {"hash": "abc"})
        assert short["error"] == {"code": -32602, "message": "unexpected hash length (3)"}
        bad = _call(devnet, "getTransaction", {"hash": "zz" * 32})
        assert bad["error"]["code"] == -32602
        assert bad["error"]["message"].startswith("incorrect hash")

    def test_unknown_hash_is_not_found_with_ledger_range(self, devnet: DevnetProcess) -> None:
        out = _call(devnet, "getTransaction", {"hash": "ab" * 32})["result"]
        assert out["status"] == "NOT_FOUND"
        assert int(out["latestLedgerCloseTime"]) >= int(out["oldestLedgerCloseTime"])

    def test_send_garbage_is_invalid_xdr(self, devnet: DevnetProcess) -> None:
        out = _call(devnet, "sendTransaction", {"transaction": "AAAA!!"})
        assert out["error"] == {"code": -32602, "message": "invalid_xdr"}

    def test_simulate_garbage_reports_error_in_the_result(self, devnet: DevnetProcess) -> None:
        out = _call(devnet, "simulateTransaction", {"transaction": "AAAA"})
        assert out["result"]["error"] == "Could not unmarshal transaction"

    def test_get_health_reports_the_default_window_and_close_times_as_strings(
        self, devnet: DevnetProcess
    ) -> None:
        health = _call(devnet, "getHealth")["result"]
        assert health["ledgerRetentionWindow"] == 720  # small: tests can outlive it
        assert isinstance(health["latestLedgerCloseTime"], str)  # stellar-rpc since v27.1
        assert isinstance(health["oldestLedgerCloseTime"], str)
        assert health["oldestLedger"] <= health["latestLedger"]

    def test_get_events_validates_start_ledger(self, devnet: DevnetProcess) -> None:
        # stellar-rpc: -32600 (invalid request), not -32602, with the range in the message
        out = _call(devnet, "getEvents", {"startLedger": 1, "filters": []})
        assert out["error"]["code"] == -32600
        assert out["error"]["message"].startswith("startLedger must be within the ledger range: ")
