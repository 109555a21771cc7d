"""Several RPC endpoints under the real supervisor: each endpoint's state in /status, /metrics
(label ``endpoint``) and ``sorotask status``; header values and URL credentials nowhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devnet.process import DevnetProcess
from tests.support.devnet import DevnetOptions
from tests.support.supervisor import ROOT, Supervisor, base_config, keypairs, wait_for, write_yaml

pytestmark = [pytest.mark.timeout(120)]

API_KEY = "k3y-" + "s3cr3t-value-0123456789"


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    return DevnetOptions(replicas=3, close_every=0.25)


def endpoint_states(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    shard = doc["shards"][0]
    return {e["endpoint"]: e for e in (shard.get("endpoints") or {}).get("endpoints") or []}


def test_each_endpoint_state_is_shown_without_credentials(
    tmp_path: Path, devnet: DevnetProcess
) -> None:
    urls = devnet.info.rpc_urls
    kp = keypairs(1)[0]
    devnet.friendbot(kp.public_key)
    first, last = devnet.seed_tasks(count=3, interval=10**9)
    cfg = base_config(
        rpc_url=urls[0], passphrase=devnet.info.network_passphrase, contract=devnet.info.contract_id
    )
    del cfg["network"]["rpc_url"]
    # replica 1's URL carries a key in its query, replica 2 a header from the environment
    cfg["network"]["rpc_urls"] = [
        urls[0],
        {"url": urls[1].rstrip("/") + "/?apikey=" + API_KEY, "weight": 2},
        {"url": urls[2], "headers": {"X-Api-Key": "E2E_RPC_KEY"}, "name": "provider-c"},
    ]
    cfg["worker"]["max_lag_ledgers"] = 2
    cfg["shards"] = [{"name": "a", "range": [first, None], "secret_env": "E2E_KEEPER"}]
    path = write_yaml(tmp_path / "sorotask.yaml", cfg)
    wait_for(lambda: int(devnet.rpc("getLatestLedger")["sequence"]) >= 1008, 20, what="8 ledgers")
    devnet.set_lag(6, replica=2)
    sup = Supervisor(path, {"E2E_KEEPER": kp.secret, "E2E_RPC_KEY": API_KEY})
    try:
        sup.wait_url()
        sup.wait_running(["a"])
        wait_for(
            lambda: len(devnet.executions(list(range(first, last + 1)))) >= 3,
            30,
            what="the three due tasks executed",
        )

        def lagging_shown() -> dict[str, dict[str, Any]] | None:
            eps = endpoint_states(sup.status())
            c = eps.get("provider-c")
            return eps if c is not None and "lagging" in c["reasons"] else None

        eps = wait_for(lagging_shown, 20, interval=0.2, what="provider-c shown lagging")
        labels = [urls[0].rstrip("/"), urls[1].rstrip("/"), "provider-c"]
        assert [k.rstrip("/") for k in eps] == labels
        a, b, c = eps.values()
        assert a["state"] == "up" and b["state"] == "up"
        assert c["state"] == "demoted" and c["lag_ledgers"] >= 3
        assert a["requests"] > 0 and b["requests"] > 0
        assert b["weight"] == 2.0

        code, metrics = sup.get("/metrics")
        assert code == 200
        c_labels = 'endpoint="provider-c",shard="a"'  # the exposition sorts labels
        assert f'sorotask_rpc_endpoint_state{{{c_labels},state="demoted"}} 1.0' in metrics
        assert f"sorotask_rpc_endpoint_lag_ledgers{{{c_labels}}}" in metrics
        assert "sorotask_rpc_endpoint_requests_total{" in metrics
        assert "sorotask_rpc_endpoint_latency_seconds_bucket{" in metrics

        out = subprocess.run(
            [sys.executable, "-m", "sorotask.cli", "status", "--url", sup.url or ""],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
        ).stdout
        assert "RPC endpoints" in out
        row = next(line for line in out.splitlines() if "provider-c" in line)
        assert "demoted" in row and "lagging" in row

        _, status_text = sup.get("/status")
        for text in (str(status_text), metrics, out):
            assert API_KEY not in text
    finally:
        sup.kill_tree()
        devnet.set_lag(0, replica=2)
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
    assert API_KEY not in logs + sup.stdout() + sup.stderr()
    assert "provider-c" in logs  # its state changes are logged by label
