"""Bad input never crashes the devnet: random bytes, random JSON, random and truncated XDR."""

from __future__ import annotations

import base64
import json
import os
import random
import time

import httpx
from stellar_sdk import SorobanServer

from devnet.process import DevnetProcess
from tests.support import reference_contract as sc
from tests.support.devnet import execute_args, funded_keypair, invoke_tx

METHODS = [
    "getHealth",
    "getNetwork",
    "getLatestLedger",
    "getLedgerEntries",
    "simulateTransaction",
    "sendTransaction",
    "getTransaction",
    "getEvents",
    "getFeeStats",
    "getVersionInfo",
    "devnet_seedTasks",
    "devnet_executions",
    "devnet_closeLedger",
    "devnet_stats",
    "devnet_fund",
    "devnet_setBalance",
]
PARAM_NAMES = [
    "keys",
    "transaction",
    "hash",
    "startLedger",
    "filters",
    "pagination",
    "count",
    "task_ids",
    "whitelist",
    "resolver",
    "target",
    "interval",
    "addresses",
    "address",
    "balance",
    "authMode",
]


def _random_json(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**70), rng.randrange(10**6), 3.5])
    if kind == 3:
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(12)))
    if kind == 4:
        return base64.b64encode(rng.randbytes(rng.randrange(64))).decode()
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(PARAM_NAMES): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def _mutate(rng: random.Random, b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    op = rng.randrange(3)
    if op == 0 and raw:
        return base64.b64encode(raw[: rng.randrange(len(raw))]).decode()
    if op == 1 and raw:
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return base64.b64encode(bytes(raw)).decode()
    return base64.b64encode(bytes(raw) + rng.randbytes(rng.randrange(1, 9))).decode()


class TestFuzz:
    def test_random_input_leaves_the_devnet_healthy(self, devnet: DevnetProcess) -> None:
        rng = random.Random(int(os.environ.get("SOROTASK_FUZZ_SEED", "20250901")))
        url = devnet.info.rpc_url
        keeper = funded_keypair(devnet)
        with SorobanServer(url) as srv:
            tx = srv.prepare_transaction(
                invoke_tx(srv, devnet, keeper, "execute", execute_args(keeper.public_key, 1))
            )
            tx.sign(keeper)
        envelope = tx.to_xdr()
        task_key = sc.task_ledger_key_b64(devnet.info.contract_id, 1)
        deadline = time.monotonic() + 15
        statuses: set[int] = set()
        with httpx.Client(timeout=10) as client:
            for i in range(600):
                if time.monotonic() > deadline:
                    break
                kind = i % 4
                if kind == 0:
                    body = rng.randbytes(rng.randrange(200))
                elif kind == 1:
                    body = _dumps(_random_json(rng))
                else:
                    method = rng.choice(METHODS)
                    params: dict[str, object] = {}
                    if kind == 2:
                        params = {
                            "transaction": _mutate(rng, envelope),
                            "keys": [_mutate(rng, task_key) for _ in range(rng.randrange(3))],
                            "hash": rng.randbytes(32).hex()[: rng.randrange(70)],
                        }
                    else:
                        params = {rng.choice(PARAM_NAMES): _random_json(rng) for _ in range(3)}
                    if method == "devnet_seedTasks":
                        params["count"] = rng.randrange(1, 5)
                    if method == "devnet_closeLedger":
                        params.pop("count", None)
                    body = _dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
                resp = client.post(url, content=body, headers=JSON_HEADERS)
                statuses.add(resp.status_code)
                if resp.status_code == 500:  # only an unparsable body, as stellar-rpc's bridge
                    assert kind == 0 and resp.text == "[-32700] invalid request value\n", body
                if resp.status_code == 200 and kind >= 2:
                    out = resp.json()
                    assert (
                        "result" in out
                        or out["error"]["code"] != -32603
                        # a key that decodes but is not canonical XDR, as stellar-rpc answers it
                        or out["error"]["message"] == "mismatching key in result"
                    ), (method, params, out)
        assert statuses <= {200, 204, 500}, statuses
        assert devnet.rpc("getHealth")["status"] == "healthy"
        # and it still does real work afterwards
        first, _ = devnet.seed_tasks(count=1)
        assert devnet.rpc(
            "getLedgerEntries", {"keys": [sc.task_ledger_key_b64(devnet.info.contract_id, first)]}
        )["entries"]


JSON_HEADERS = {"content-type": "application/json"}


def _dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()  # stdlib: big integers allowed, unlike orjson
