"""A shard whose source accounts are all below ``min_fee_balance`` (issue 13), under the real
supervisor: ``paused: low balance`` in /status and ``sorotask status``, no restart loop; topped
up, it executes its due task once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devnet.process import DevnetProcess
from shard_worker import chain
from tests.support.supervisor import ROOT, Supervisor, base_config, keypairs, wait_for, write_yaml


def test_all_accounts_low_is_paused_not_a_restart_loop(
    devnet: DevnetProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (kp,) = keypairs(1)
    devnet.friendbot(kp.public_key)
    devnet.rpc(
        "devnet_setBalance", {"address": kp.public_key, "balance": 2 * chain.BASE_RESERVE + 500}
    )
    first, last = devnet.seed_tasks(count=1, interval=10**7)
    cfg = base_config(
        rpc_url=devnet.info.rpc_url,
        passphrase=devnet.info.network_passphrase,
        contract=devnet.info.contract_id,
    )
    cfg["worker"]["balance_refresh_ledgers"] = 1
    cfg["shards"] = [{"name": "low", "range": [first, last], "secret_env": "SW_LOW_BALANCE_SECRET"}]
    path = write_yaml(tmp_path / "sorotask.yaml", cfg)
    sup = Supervisor(path, {"SW_LOW_BALANCE_SECRET": kp.secret})
    try:
        sup.wait_url()
        shard = wait_for(
            lambda: (s := sup.shard("low"))["paused"] == "paused: low balance" and s,
            30,
            what="the shard paused",
        )
        assert shard["state"] == "running"
        assert shard["totals"]["accounts_out_of_pool"] == 1
        time.sleep(3)  # a while paused: still the same worker, never restarted
        again = sup.shard("low")
        assert (again["pid"], again["restarts"], again["paused"]) == (
            shard["pid"],
            0,
            "paused: low balance",
        )
        assert devnet.executions([first]) == []
        # alive for liveness probes (a restart would fund nothing), degraded for the rest
        code, health = sup.get("/health")
        assert (code, health["healthy"]) == (200, True), health
        assert health["degraded"] == ["shard low is paused: low balance"]
        code, strict = sup.get("/health?strict=1")
        assert (code, strict["healthy"]) == (503, False), strict
        assert strict["reasons"] == ["shard low is paused: low balance"]
        out = subprocess.run(
            [sys.executable, "-m", "sorotask.cli", "status", "--url", sup.url or ""],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr
        row = next(line for line in out.stdout.splitlines() if line.startswith("low "))
        assert row.split()[1] == "paused"
        assert "shard low paused: low balance" in out.stdout
        devnet.rpc("devnet_setBalance", {"address": kp.public_key, "balance": 10**11})
        wait_for(lambda: devnet.executions([first]), 30, what="the task executed after a top-up")
        resumed = wait_for(
            lambda: (s := sup.shard("low"))["paused"] is None and s, 10, what="resumed"
        )
        assert resumed["restarts"] == 0 and resumed["pid"] == shard["pid"]
        code, strict = sup.get("/health?strict=1")
        assert (code, strict["degraded"]) == (200, []), strict
        assert [e["effect"] for e in devnet.executions([first])] == ["executed"]
    finally:
        sup.kill_tree()
