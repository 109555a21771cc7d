"""End to end: the supervisor (real subprocess) running the real shard_worker keeper against a
real devnet process on 127.0.0.1. Outcomes are checked from the devnet's own record
(``devnet_executions``), not from the keepers' claims."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
from stellar_sdk import Keypair

from devnet.process import DevnetProcess
from tests.support.supervisor import Supervisor, alive, base_config, keypairs, wait_for, write_yaml

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

NOT_DUE = {"last_run": 2**62, "interval": 10**6}
DUE_ONCE = {"interval": 10**9}  # due now, then not again for 30 years


@pytest.fixture
def devnet():
    with DevnetProcess(close_every=0.25) as dn:
        yield dn


def seed(dn: DevnetProcess, blocks: int, per_block: int, due_per_block: int) -> list[int]:
    """Interleave not-due and due tasks; returns the due ids."""
    due: list[int] = []
    for _ in range(blocks):
        if per_block - due_per_block:
            dn.seed_tasks(count=per_block - due_per_block, **NOT_DUE)
        first, last = dn.seed_tasks(count=due_per_block, **DUE_ONCE)
        due.extend(range(first, last + 1))
    return due


def funded(dn: DevnetProcess, n: int) -> list[Keypair]:
    kps = keypairs(n)
    for kp in kps:
        dn.friendbot(kp.public_key)
    return kps


class Deployment:
    """Keys, config and supervisor for one test."""

    def __init__(
        self,
        tmp_path: Path,
        dn: DevnetProcess,
        *,
        shards: int,
        last: int,
        channels: int = 0,
        unfunded: set[int] = frozenset(),  # type: ignore[assignment]
        **sup: Any,
    ) -> None:
        self.keys = funded(dn, shards * (1 + channels))
        self.env: dict[str, str] = {}
        for i in range(shards):
            kp = self.keys[i * (1 + channels)]
            if i in unfunded:
                kp = Keypair.random()  # never funded: the keeper refuses to start
                self.keys[i * (1 + channels)] = kp
            self.env[f"KEEPER_{i + 1}"] = kp.secret
            for c in range(channels):
                self.env[f"CHAN_{i + 1}_{c + 1}"] = self.keys[i * (1 + channels) + 1 + c].secret
        info = dn.info
        doc = base_config(
            rpc_url=info.rpc_url,
            passphrase=info.network_passphrase,
            contract=info.contract_id,
            **sup,
        )
        doc["worker"] = {
            "poll_interval_s": 0.5,
            "stop_grace_s": 8,
            "max_concurrent_executions": max(1, channels),
            "confirm_poll_s": 0.1,
        }
        split: dict[str, Any] = {
            "range": [1, last],
            "count": shards,
            "name_pattern": "s{index}",
            "secret_env_pattern": "KEEPER_{index}",
        }
        if channels:
            split["channels"] = channels
            split["channel_secret_env_pattern"] = "CHAN_{index}_{channel}"
        doc["split"] = split
        self.config = write_yaml(tmp_path / "sorotask.yaml", doc)
        self.summary = tmp_path / "summary.json"
        self.sv = Supervisor(
            self.config, self.env, extra_args=["--summary-json", str(self.summary)]
        )
        self.sv.wait_url()
        self.names = [f"s{i + 1}" for i in range(shards)]

    @property
    def secrets(self) -> list[str]:
        return list(self.env.values())


def executions(dn: DevnetProcess) -> list[dict[str, Any]]:
    return dn.executions()


def executed_ids(dn: DevnetProcess) -> Counter[int]:
    return Counter(e["task_id"] for e in executions(dn) if e["effect"] == "executed")


def assert_exactly_once(dn: DevnetProcess, due: list[int]) -> None:
    ex = executions(dn)
    effects = Counter(e["effect"] for e in ex)
    assert set(effects) <= {"executed"}, effects  # no wasted transaction
    counts = Counter(e["task_id"] for e in ex)
    assert sorted(counts) == sorted(due)
    assert max(counts.values()) == 1, [t for t, n in counts.items() if n > 1]


class TestExactlyOnce:
    def test_three_shards_execute_every_due_task_exactly_once(
        self, tmp_path: Path, devnet: DevnetProcess
    ) -> None:
        due = seed(devnet, blocks=30, per_block=100, due_per_block=3)  # ids 1..3000, 90 due
        d = Deployment(tmp_path, devnet, shards=3, last=3000, channels=2)
        try:
            d.sv.wait_running(d.names, timeout=30)
            wait_for(
                lambda: len(executed_ids(devnet)) >= len(due),
                60,
                interval=0.5,
                what="every due task executed",
            )
            time.sleep(1.5)  # a few more cycles: nothing may run twice
            d.sv.signal(signal.SIGTERM)
            assert d.sv.wait(30) == 0
        finally:
            d.sv.kill_tree()
        assert_exactly_once(devnet, due)
        # each task was executed by the keeper of the shard that owns its id
        owner = {e["task_id"]: e["keeper"] for e in executions(devnet)}
        keeper_of = {i: d.keys[i * 3].public_key for i in range(3)}
        for tid, keeper in owner.items():
            assert keeper == keeper_of[(tid - 1) // 1000], tid
        doc = json.loads(d.summary.read_text())
        assert doc["executed"] == len(due) and doc["restarts"] == 0
        assert doc["checked"] > 3000 and doc["cycles"] >= 3


def assert_restart_timeline(tmp_path: Path) -> None:
    """The replacement's start, from its shard log: one round of start-up checks, then the
    first cycle and executions; an order, not a timing (issue 16's restart timeline)."""
    [log] = [p for p in tmp_path.rglob("s2.log")]
    lines = log.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if "keeper started" in line]
    assert len(starts) == 2, starts  # the first worker and its replacement
    after = lines[starts[1] :]

    def first(text: str) -> int:
        return next(i for i, line in enumerate(after) if text in line)

    assert sum("start-up checks done" in line for line in after) == 1
    checks = first("start-up checks done")
    # the cycle's line is written when it ends: its first execution may start before
    assert checks < first("| cycle 1 ledger") and checks < first("first execution")
    held = [line for line in after if "journal resolved" in line]
    if any("journaled transaction(s) before reuse" in line for line in after):
        assert held and first("journal resolved") > checks


class TestWorkerDeath:
    def test_killed_worker_is_replaced_and_no_task_runs_twice(
        self, tmp_path: Path, devnet: DevnetProcess
    ) -> None:
        due = seed(devnet, blocks=20, per_block=30, due_per_block=6)  # 600 ids, 120 due
        d = Deployment(tmp_path, devnet, shards=3, last=600, channels=1)
        try:
            d.sv.wait_running(d.names, timeout=30)
            wait_for(
                lambda: sum(1 for t in executed_ids(devnet) if 201 <= t <= 400) >= 3,
                30,
                interval=0.1,
                what="s2 executing",
            )
            old = d.sv.shard("s2")["pid"]
            os.kill(old, signal.SIGKILL)
            t0 = time.monotonic()
            s2 = wait_for(
                lambda: (
                    (s := d.sv.shard("s2"))["pid"] not in (None, old)
                    and s["state"] == "running"
                    and s
                ),
                10,
                interval=0.02,
            )
            print(f"new s2 pid running after {time.monotonic() - t0:.3f}s")
            assert s2["restarts"] == 1
            s2 = wait_for(
                lambda: (s := d.sv.shard("s2"))["replacement_ms"].get("first_cycle_ms") and s, 10
            )
            print("replacement timing (ms):", s2["replacement_ms"])
            wait_for(
                lambda: len(executed_ids(devnet)) >= len(due),
                60,
                interval=0.5,
                what="every due task executed",
            )
            time.sleep(1.5)
            d.sv.signal(signal.SIGTERM)
            assert d.sv.wait(30) == 0
        finally:
            d.sv.kill_tree()
        assert_exactly_once(devnet, due)
        assert json.loads(d.summary.read_text())["shards"]["s2"]["restarts"] == 1
        assert_restart_timeline(tmp_path)

    def test_sigstopped_worker_is_replaced(self, tmp_path: Path, devnet: DevnetProcess) -> None:
        due = seed(devnet, blocks=3, per_block=100, due_per_block=2)
        d = Deployment(
            tmp_path, devnet, shards=3, last=300, heartbeat_timeout_s=1.5, kill_grace_s=2
        )
        try:
            d.sv.wait_running(d.names, timeout=30)
            old = d.sv.shard("s1")["pid"]
            os.kill(old, signal.SIGSTOP)
            wait_for(
                lambda: (
                    (s := d.sv.shard("s1"))["pid"] not in (None, old) and s["state"] == "running"
                ),
                15,
                interval=0.1,
                what="s1 replaced",
            )
            assert d.sv.shard("s1")["restarts"] == 1
            wait_for(lambda: not alive([old]), 5)
            wait_for(lambda: len(executed_ids(devnet)) >= len(due), 30, interval=0.5)
        finally:
            d.sv.kill_tree()
        assert_exactly_once(devnet, due)

    def test_unfunded_shard_fails_while_the_others_keep_working(
        self, tmp_path: Path, devnet: DevnetProcess
    ) -> None:
        due = seed(devnet, blocks=3, per_block=100, due_per_block=2)
        d = Deployment(tmp_path, devnet, shards=3, last=300, unfunded={1})
        try:
            s2 = wait_for(
                lambda: (s := d.sv.shard("s2"))["state"] == "failed" and s, 30, what="s2 failed"
            )
            assert s2["last_exit_code"] == 78 and s2["restarts"] == 0
            assert d.keys[1].public_key in s2["failed_reason"]
            d.sv.wait_running(["s1", "s3"])
            wait_for(
                lambda: (
                    {t for t in executed_ids(devnet) if not 101 <= t <= 200}
                    >= {t for t in due if not 101 <= t <= 200}
                ),
                30,
                interval=0.5,
            )
            assert not any(101 <= t <= 200 for t in executed_ids(devnet))
            code, health = d.sv.get("/health")
            assert code == 503 and any("s2 is failed" in r for r in health["reasons"])
        finally:
            d.sv.kill_tree()


class TestSupervisorShutdown:
    def test_sigterm_mid_execution_finishes_every_transaction(
        self, tmp_path: Path, devnet: DevnetProcess
    ) -> None:
        seed(devnet, blocks=10, per_block=30, due_per_block=20)  # 200 due: busy at SIGTERM
        d = Deployment(tmp_path, devnet, shards=3, last=300, channels=2)
        procs: list[psutil.Process] = []
        try:
            d.sv.wait_running(d.names, timeout=30)
            wait_for(lambda: len(executed_ids(devnet)) >= 10, 30, interval=0.1)
            procs = d.sv.descendants()
            d.sv.signal(signal.SIGTERM)
            assert d.sv.wait(30) == 0
            wait_for(lambda: not alive([p.pid for p in procs]), 10, what="no process left")
        finally:
            d.sv.kill_tree()
        doc = json.loads(d.summary.read_text())
        for name in d.names:
            final = doc["shards"][name]["final"]
            assert final["in_flight_left"] == 0 and final["journal_left"] == 0, final
        # nothing the keepers sent is still pending at the devnet
        devnet.close_ledger(2)
        ex = executions(devnet)
        assert Counter(e["effect"] for e in ex).keys() <= {"executed"}
        assert max(Counter(e["task_id"] for e in ex).values()) == 1
        assert devnet.stats()["pending"] == 0
        # stopped mid-way, and every transaction applied was confirmed and counted by a keeper
        assert 10 <= len(ex) < 200
        assert doc["executed"] == len(ex)

    def test_sigkill_of_the_supervisor_takes_the_workers_down(
        self, tmp_path: Path, devnet: DevnetProcess
    ) -> None:
        seed(devnet, blocks=1, per_block=30, due_per_block=3)
        d = Deployment(tmp_path, devnet, shards=3, last=30)
        try:
            d.sv.wait_running(d.names, timeout=30)
            procs = d.sv.descendants()
            d.sv.signal(signal.SIGKILL)
            d.sv.wait(5)
            t0 = time.monotonic()
            wait_for(lambda: not alive([p.pid for p in procs]), 10, what="workers gone")
            print(f"workers gone {time.monotonic() - t0:.2f}s after the supervisor's SIGKILL")
        finally:
            d.sv.kill_tree()


class TestSecrets:
    def test_secrets_appear_nowhere(self, tmp_path: Path, devnet: DevnetProcess) -> None:
        seed(devnet, blocks=2, per_block=20, due_per_block=2)
        d = Deployment(tmp_path, devnet, shards=2, last=40, channels=1, unfunded=set())
        try:
            d.sv.wait_running(d.names, timeout=30)
            wait_for(lambda: len(executed_ids(devnet)) >= 4, 30, interval=0.2)
            outputs = [
                json.dumps(d.sv.status()),
                str(d.sv.get("/metrics")[1]),
                str(d.sv.get("/health")[1]),
            ]
            for p in [d.sv.ps, *d.sv.descendants()]:
                outputs.append(" ".join(p.cmdline()))
            d.sv.signal(signal.SIGTERM)
            assert d.sv.wait(30) == 0
        finally:
            d.sv.kill_tree()
        outputs += [d.sv.stdout(), d.sv.stderr(), d.summary.read_text()]
        for f in (tmp_path / "logs").iterdir():
            outputs.append(f.read_text(errors="replace"))
        for f in (tmp_path / "state").rglob("*"):
            if f.is_file():
                outputs.append(f.read_text(errors="replace"))
        blob = "\n".join(outputs)
        assert "s1 | " in blob  # the scan did read the shard logs
        for secret in d.secrets:
            assert secret not in blob
