"""The pool's per-shard rules added for operations, against a real ``sorotask run`` with stand-in
keepers: a failed shard is started again after ``restart.failed_cooldown_s`` (counted, and
reported as CRITICAL every time it fails again), or only by ``sorotask ctl start`` when the
cooldown is null; a worker above ``restart.max_rss_mb`` is drained and replaced (counted, its
RSS logged)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.stand_ins import HOG_MIB
from tests.support.supervisor import (
    FAKE,
    ROOT,
    Supervisor,
    base_config,
    keypairs,
    wait_for,
    write_yaml,
)

pytestmark = pytest.mark.timeout(120)

KEYS = keypairs(3)
ENV = {f"KP_{i}": kp.secret for i, kp in enumerate(KEYS)}
CRASH = "tests.support.stand_ins:crash_keeper"
HOG = "tests.support.stand_ins:memory_hog_keeper"


def start(tmp_path: Path, keeper: str, **restart: Any) -> Supervisor:
    doc = base_config()
    doc["supervisor"]["restart"].update(restart)
    doc["shards"] = [
        {"name": f"s{i}", "range": [1 + 1000 * i, 1000 * (i + 1)], "secret_env": f"KP_{i}"}
        for i in range(3)
    ]
    cfg = write_yaml(tmp_path / "sorotask.yaml", doc)
    sv = Supervisor(cfg, {**ENV, "SOROTASK_TEST_KEEPER": keeper})
    sv.wait_url()
    return sv


def log_of(sv: Supervisor) -> str:
    return (sv.cwd / "logs" / "supervisor.log").read_text()


class TestFailedCooldown:
    def test_a_failed_shard_is_started_again_after_the_cooldown_counted_and_loud(
        self, tmp_path: Path
    ) -> None:
        sv = start(tmp_path, f"{FAKE};s2={CRASH}", max_restarts=1, window_s=30, failed_cooldown_s=1)
        try:
            s2 = wait_for(
                lambda: (
                    (s := sv.shard("s2"))["failed_retries"] >= 2 and s["state"] == "failed" and s
                ),
                40,
                what="s2 failed again after two retries",
            )
            assert "crash loop" in s2["failed_reason"]
            log = log_of(sv)
            failures = re.findall(r"CRITICAL .*SHARD s2 FAILED: crash loop.*", log)
            assert len(failures) >= 3  # the first failure and one after each retry
            assert "started again in 1s (restart.failed_cooldown_s)" in failures[0]
            assert "failed again after 2 retries" in log
            assert "starting it again after restart.failed_cooldown_s (retry #2)" in log
            _, metrics = sv.get("/metrics")
            m = re.search(r'sorotask_failed_retries_total\{shard="s2"\} (\d+)', metrics)
            assert m and int(m.group(1)) >= 2
            assert 'sorotask_failed_retries_total{shard="s0"} 0.0' in metrics
            assert sv.shard("s0")["state"] == "running"
        finally:
            sv.kill_tree()

    def test_with_a_null_cooldown_only_ctl_start_starts_it_again(self, tmp_path: Path) -> None:
        sv = start(tmp_path, f"{FAKE};s2={CRASH}", max_restarts=1, failed_cooldown_s=None)
        try:
            wait_for(lambda: sv.shard("s2")["state"] == "failed", 20, what="s2 failed")
            assert "not started again until `sorotask ctl start` or SIGHUP" in log_of(sv)
            restarts = sv.shard("s2")["restarts"]
            wait_for(lambda: sv.shard("s0")["totals"]["cycles"] >= 4, 20, what="time passes")
            s2 = sv.shard("s2")
            assert (s2["state"], s2["failed_retries"], s2["restarts"]) == ("failed", 0, restarts)
            res = subprocess.run(
                [sys.executable, "-m", "sorotask.cli", "ctl", "-c", str(sv.config), "start", "s2"],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            assert res.returncode == 0, res.stderr
            wait_for(lambda: sv.shard("s2")["restarts"] > restarts, 20, what="s2 started")
            assert "shard s2: started by sorotask ctl (was failed)" in log_of(sv)
            assert sv.shard("s2")["failed_retries"] == 0  # a ctl start is not a cooldown retry
        finally:
            sv.kill_tree()


class TestMemoryGuard:
    def test_a_worker_above_max_rss_is_drained_and_replaced(self, tmp_path: Path) -> None:
        sv = start(tmp_path, f"{FAKE};s1={HOG}", max_rss_mb=HOG_MIB + 8)
        try:
            s1 = wait_for(
                lambda: (s := sv.shard("s1"))["memory_restarts"] >= 1 and s, 30, what="guard"
            )
            first = s1["pid"]
            wait_for(lambda: sv.shard("s1")["pid"] not in (None, first), 30, what="replaced")
            log = log_of(sv)
            m = re.search(
                r"shard s1: worker pid (\d+) uses ([\d.]+) MiB RSS, above restart.max_rss_mb "
                rf"{HOG_MIB + 8}: draining it and starting a new one",
                log,
            )
            assert m, log[-3000:]
            assert float(m.group(2)) > HOG_MIB + 8
            assert "worker pid exited unexpectedly: memory guard: RSS" in log
            _, metrics = sv.get("/metrics")
            assert re.search(r'sorotask_memory_restarts_total\{shard="s1"\} [1-9]', metrics)
            for name in ("s0", "s2"):  # the fake keepers stay well below the limit
                s = sv.shard(name)
                assert (s["memory_restarts"], s["restarts"]) == (0, 0)
        finally:
            sv.kill_tree()
