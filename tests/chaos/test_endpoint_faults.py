"""``sorotask chaos --endpoint-faults`` end to end, short (real devnet with four replicas, real
supervisor subprocess): one endpoint down, one lagging, one throttled, and the executions go on
within one ledger of the healthy figure, judged from the devnet's record."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.chaos import run_chaos

FAULTS_S = 15

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    work = tmp_path_factory.mktemp("endpoints")
    args = ["--endpoint-faults", "--duration", str(FAULTS_S), "--quiet-s", "4", "--shards", "2"]
    args += ["--tasks", "40", "--hot-interval", "6", "--seed", "3"]
    proc = run_chaos(work, *args)
    return proc, work


def report(run: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    return json.loads((run[1] / "report.json").read_text())


def test_the_soak_passes_with_an_endpoint_down_one_lagging_one_throttled(run) -> None:
    proc, work = run
    r = report(run)
    assert r["mode"] == "endpoints"
    assert r["ok"], r["violations"]
    assert proc.returncode == 0
    assert "sorotask chaos (endpoints): OK" in proc.stdout
    targets = r["hostile"]["targets"]
    assert all(t["met"] for t in targets.values()), targets
    assert targets["lateness_max"]["value"] <= 2
    assert r["hostile"]["lateness"]["repeat"]["samples"] >= 20
    assert r["wasted"] == 0 and r["analysis"]["executed_twice_in_one_window"] == []
    # the shards saw each endpoint's state while the faults were on
    during = r["endpoints"]["during_faults"]
    assert set(during) == {"shard-1", "shard-2"}
    for eps in during.values():
        healthy, down, lagging, throttled = eps
        assert healthy["state"] == "up"
        assert down["state"] in ("open", "demoted") and down["breaker_opens"] >= 1
        assert "lagging" in lagging["reasons"] and lagging["lag_ledgers"] >= 3
        assert throttled["errors"].get("http_429", 0) > 0
    # every endpoint took requests, counted where they arrived
    assert all(n and n > 0 for n in r["endpoints"]["devnet_requests"])
    # the supervisor config named the four replicas as network.rpc_urls
    assert (work / "chaos.yaml").read_text().count("http://127.0.0.1:") == 4
