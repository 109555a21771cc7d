"""The supervisor's process model with stand-in keepers (real supervisor subprocess, real
forkserver workers, real pipes, real signals; the keeper selected by the test hook
``SOROTASK_TEST_KEEPER``; no devnet needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.supervisor import (
    FAKE,
    ROOT,
    Supervisor,
    alive,
    base_config,
    keypairs,
    wait_for,
    write_yaml,
)

pytestmark = pytest.mark.timeout(120)

KEYS = keypairs(4)
ENV = {f"KT_{i}": kp.secret for i, kp in enumerate(KEYS)}


def config(tmp_path: Path, shards: int = 3, **sup: Any) -> Path:
    doc = base_config(**sup)
    doc["shards"] = [
        {
            "name": f"s{i}",
            "range": [1 + 1000 * i, 1000 * (i + 1) if i < shards - 1 else None],
            "secret_env": f"KT_{i}",
        }
        for i in range(shards)
    ]
    return write_yaml(tmp_path / "sorotask.yaml", doc)


def start(
    tmp_path: Path, keeper: str = FAKE, shards: int = 3, *, new_session: bool = False, **sup: Any
) -> Supervisor:
    sv = Supervisor(
        config(tmp_path, shards, **sup),
        {**ENV, "SOROTASK_TEST_KEEPER": keeper},
        new_session=new_session,
    )
    sv.wait_url()
    return sv


@pytest.fixture
def running(tmp_path: Path):
    sv = start(tmp_path)
    try:
        sv.wait_running(["s0", "s1", "s2"])
        yield sv
    finally:
        sv.kill_tree()


def pids(sv: Supervisor) -> dict[str, int]:
    return {s["name"]: s["pid"] for s in sv.status()["shards"]}


class TestStatusEndpoints:
    def test_status_lists_every_shard_with_its_fields(self, running: Supervisor) -> None:
        doc = running.status()
        names = [s["name"] for s in doc["shards"]]
        assert names == ["s0", "s1", "s2"]
        s0 = doc["shards"][0]
        for key in (
            "name",
            "range",
            "pid",
            "state",
            "restarts",
            "last_cycle",
            "totals",
            "rss_bytes",
            "cpu_percent",
            "heartbeat_age_s",
            "keeper",
        ):
            assert key in s0
        assert s0["range"] == [1, 1000] and doc["shards"][2]["range"] == [2001, None]
        assert s0["keeper"] == KEYS[0].public_key
        assert s0["heartbeat_age_s"] < 3
        wait_for(lambda: running.shard("s0")["rss_bytes"], 5, what="rss sampled")
        assert doc["totals"]["cycles"] >= 3

    def test_health_is_200_when_all_shards_cycle(self, running: Supervisor) -> None:
        code, doc = running.get("/health")
        assert code == 200 and doc["healthy"] is True

    def test_metrics_has_one_series_per_shard(self, running: Supervisor) -> None:
        code, text = running.get("/metrics")
        assert code == 200
        for name in ("s0", "s1", "s2"):
            assert f'sorotask_cycles_total{{shard="{name}"}}' in text
            assert f'sorotask_shard_state{{shard="{name}",state="running"}} 1.0' in text
        assert 'sorotask_tasks_skipped_total{reason="not_due",shard="s1"}' in text

    def test_status_command_prints_a_table(self, running: Supervisor) -> None:
        res = subprocess.run(
            [sys.executable, "-m", "sorotask.cli", "status", "--url", running.url],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[1].split()[:3] == ["shard", "state", "pid"]
        assert any(line.startswith("s1 ") and " running " in line for line in lines)

    def test_status_command_without_a_supervisor_fails_clearly(self) -> None:
        res = subprocess.run(
            [sys.executable, "-m", "sorotask.cli", "status", "--url", "http://127.0.0.1:9"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert res.returncode == 1 and "no supervisor answering" in res.stderr

    def test_shard_logs_carry_the_shard_name(self, running: Supervisor) -> None:
        log_dir = running.cwd / "logs"
        text = (log_dir / "s1.log").read_text()
        assert " | s1 | worker process" in text
        assert (log_dir / "supervisor.log").exists()


class TestWorkerFailures:
    @pytest.mark.parametrize("bad", ["garbage_keeper", "oversized_keeper", "out_of_order_keeper"])
    def test_bad_pipe_messages_restart_that_worker_only(self, tmp_path: Path, bad: str) -> None:
        sv = start(tmp_path, keeper=f"{FAKE};s1=tests.support.stand_ins:{bad}")
        try:
            sv.wait_running(["s0", "s2"])
            before = pids(sv)
            wait_for(lambda: sv.shard("s1")["restarts"] >= 1, 10, what="s1 restarted")
            after = pids(sv)
            assert after["s0"] == before["s0"] and after["s2"] == before["s2"]
            assert "protocol violation" in (sv.cwd / "logs" / "supervisor.log").read_text()
            assert sv.proc.poll() is None  # the supervisor survived
        finally:
            sv.kill_tree()

    def test_crash_loop_stops_after_the_restart_budget(self, tmp_path: Path) -> None:
        sv = start(tmp_path, keeper=f"{FAKE};s2=tests.support.stand_ins:crash_keeper")
        try:
            s2 = wait_for(
                lambda: (s := sv.shard("s2"))["state"] == "failed" and s, 20, what="s2 failed"
            )
            assert s2["restarts"] == 3  # max_restarts
            assert "crash loop" in s2["failed_reason"]
            doc = sv.wait_running(["s0", "s1"])
            assert {s["name"]: s["state"] for s in doc["shards"]}["s0"] == "running"
            code, health = sv.get("/health")
            assert code == 503 and any("s2 is failed" in r for r in health["reasons"])
            assert "SHARD s2 FAILED" in (sv.cwd / "logs" / "supervisor.log").read_text()
        finally:
            sv.kill_tree()

    def test_config_error_exit_is_not_restarted(self, tmp_path: Path) -> None:
        sv = start(tmp_path, keeper=f"{FAKE};s0=tests.support.stand_ins:config_error_keeper")
        try:
            s0 = wait_for(lambda: (s := sv.shard("s0"))["state"] == "failed" and s, 15)
            assert s0["restarts"] == 0 and s0["last_exit_code"] == 78
            assert "stand-in configuration error" in s0["failed_reason"]
            sv.wait_running(["s1", "s2"])
            time.sleep(1)
            assert sv.shard("s0")["restarts"] == 0
        finally:
            sv.kill_tree()

    def test_sigstopped_worker_is_detected_as_hung_and_replaced(self, tmp_path: Path) -> None:
        sv = start(tmp_path, heartbeat_timeout_s=1.5, kill_grace_s=1)
        try:
            sv.wait_running(["s0", "s1", "s2"])
            old = pids(sv)["s1"]
            os.kill(old, signal.SIGSTOP)
            t0 = time.monotonic()
            new = wait_for(lambda: (p := sv.shard("s1")["pid"]) not in (None, old) and p, 15)
            assert time.monotonic() - t0 < 8
            assert sv.shard("s1")["restarts"] == 1
            wait_for(lambda: not alive([old]), 5, what="old worker gone")
            sv.wait_running(["s1"])
            assert new != old
        finally:
            sv.kill_tree()

    def test_killed_worker_is_replaced_at_once_and_counted(self, tmp_path: Path) -> None:
        sv = start(tmp_path)
        try:
            sv.wait_running(["s0", "s1", "s2"])
            old = pids(sv)["s0"]
            os.kill(old, signal.SIGKILL)
            s0 = wait_for(
                lambda: (
                    (s := sv.shard("s0"))["pid"] not in (None, old)
                    and s["replacement_ms"].get("first_cycle_ms")
                    and s
                ),
                10,
            )
            assert s0["restarts"] == 1
            rep = s0["replacement_ms"]
            print("replacement timing (ms):", rep)
            assert rep["ready_ms"] < 500  # forkserver: ready in tens of ms
            assert rep["first_cycle_ms"] < 1500
        finally:
            sv.kill_tree()


class TestSupervisorSignals:
    def test_sigterm_stops_everything_with_exit_0(self, running: Supervisor) -> None:
        procs = running.descendants()
        assert len(procs) >= 4  # forkserver + 3 workers (+ resource tracker)
        running.signal(signal.SIGTERM)
        assert running.wait(20) == 0
        wait_for(lambda: not alive([p.pid for p in procs]), 10, what="no process left")
        assert "sorotask: summary" in running.stdout()

    def test_one_ctrl_c_to_the_process_group_drains_every_worker(self, tmp_path: Path) -> None:
        # a terminal's Ctrl-C reaches the workers too: the supervisor drains them. (Workers
        # took it as a second SIGINT and exited 1 at once, or stopped before the supervisor
        # saw its own SIGINT, which then restarted them as if they had crashed.)
        sv = start(tmp_path, new_session=True)
        try:
            sv.wait_running(["s0", "s1", "s2"])
            sv.signal_group(signal.SIGINT)
            assert sv.wait(20) == 0
            log = (tmp_path / "logs" / "supervisor.log").read_text()
            assert "unexpectedly" not in log and "started" not in log.split("shutting down")[1]
            stopped = [line for line in log.splitlines() if "worker stopped (exit code" in line]
            assert len(stopped) == 3, log
            assert all("(exit code 0)" in line for line in stopped), stopped
        finally:
            sv.kill_tree()

    def test_second_sigint_stops_at_once(self, tmp_path: Path) -> None:
        sv = start(
            tmp_path,
            keeper="tests.support.stand_ins:hang_keeper",
            heartbeat_timeout_s=60,
            shutdown_grace_s=60,
        )
        try:
            wait_for(lambda: all(s["state"] == "running" for s in sv.status()["shards"]), 15)
            procs = sv.descendants()
            sv.signal(signal.SIGINT)
            time.sleep(0.5)
            assert sv.proc.poll() is None  # the hung workers do not drain
            t0 = time.monotonic()
            sv.signal(signal.SIGINT)
            assert sv.wait(10) == 0
            assert time.monotonic() - t0 < 5
            wait_for(lambda: not alive([p.pid for p in procs]), 10)
        finally:
            sv.kill_tree()

    def test_sigkill_of_the_supervisor_leaves_no_worker(self, running: Supervisor) -> None:
        procs = running.descendants()
        workers = [s["pid"] for s in running.status()["shards"]]
        running.signal(signal.SIGKILL)
        running.wait(5)
        t0 = time.monotonic()
        wait_for(lambda: not alive([p.pid for p in procs]), 10, what="orphans gone")
        print(f"orphaned workers gone after {time.monotonic() - t0:.2f}s")
        assert not alive(workers)

    def test_sighup_restarts_only_changed_shards(self, tmp_path: Path) -> None:
        sv = start(tmp_path)
        try:
            sv.wait_running(["s0", "s1", "s2"])
            before = pids(sv)
            import yaml

            doc = yaml.safe_load(sv.config.read_text())
            doc["shards"][1]["worker"] = {"poll_interval_s": 0.3}
            doc["shards"].pop(2)  # remove s2
            doc["shards"].append({"name": "s3", "range": [5000, 6000], "secret_env": "KT_3"})
            write_yaml(sv.config, doc)
            sv.signal(signal.SIGHUP)
            doc2 = wait_for(
                lambda: (
                    (d := sv.status())
                    and {s["name"] for s in d["shards"]} == {"s0", "s1", "s3"}
                    and all(s["state"] == "running" for s in d["shards"])
                    and d["shards"][1]["pid"] != before["s1"]
                    and d
                ),
                15,
            )
            after = {s["name"]: s["pid"] for s in doc2["shards"]}
            assert after["s0"] == before["s0"]
            assert not alive([before["s2"], before["s1"]])
            assert all(s["restarts"] == 0 for s in doc2["shards"])
        finally:
            sv.kill_tree()

    def test_sighup_with_a_broken_config_keeps_running(self, running: Supervisor) -> None:
        before = pids(running)
        running.config.write_text("network: [\n")
        running.signal(signal.SIGHUP)
        wait_for(
            lambda: (
                "keeping the running one" in (running.cwd / "logs" / "supervisor.log").read_text()
            ),
            10,
        )
        assert pids(running) == before


class TestRunCommand:
    def test_run_with_a_bad_config_names_field_and_line(self, tmp_path: Path) -> None:
        cfg = config(tmp_path)
        text = cfg.read_text().replace("poll_interval_s: 0.5", "poll_interval_s: soon")
        cfg.write_text(text)
        line = next(i for i, t in enumerate(text.splitlines(), 1) if "soon" in t)
        env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
        for cmd in (["run", "--config", str(cfg)], ["check-config", str(cfg)]):
            res = subprocess.run(
                [sys.executable, "-m", "sorotask.cli", *cmd],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            assert res.returncode == 78, res.stderr
            assert f"{cfg}:{line}: worker.poll_interval_s: expected a number" in res.stderr

    def test_check_config_prints_the_plan_with_public_keys_only(self, tmp_path: Path) -> None:
        cfg = config(tmp_path)
        res = subprocess.run(
            [sys.executable, "-m", "sorotask.cli", "check-config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **ENV, "PYTHONPATH": str(ROOT)},
        )
        assert res.returncode == 0, res.stderr
        assert KEYS[1].public_key in res.stdout and "1001..2000" in res.stdout
        assert all(kp.secret not in res.stdout + res.stderr for kp in KEYS)

    def test_duration_and_summary_json(self, tmp_path: Path) -> None:
        import json

        out = tmp_path / "summary.json"
        sv = Supervisor(
            config(tmp_path),
            {**ENV, "SOROTASK_TEST_KEEPER": FAKE},
            extra_args=["--duration", "2", "--summary-json", str(out)],
        )
        try:
            assert sv.wait(30) == 0
        finally:
            sv.kill_tree()
        doc = json.loads(out.read_text())
        for key in (
            "cycles",
            "checked",
            "due_now",
            "oldest_overdue_ledgers",
            "executed",
            "failed",
            "restarts",
            "shards",
        ):
            assert key in doc
        assert set(doc["shards"]) == {"s0", "s1", "s2"}
        assert doc["cycles"] == sum(s["cycles"] for s in doc["shards"].values()) > 0
        assert "TOTAL" in sv.stdout()


class TestLogsCommand:
    def test_logs_tail_and_follow_across_rotation(self, tmp_path: Path) -> None:
        sv = start(tmp_path, log_rotation_mb=0.002, log_level="DEBUG")
        follower = None
        try:
            sv.wait_running(["s0"])
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            res = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sorotask.cli",
                    "logs",
                    "supervisor",
                    "-n",
                    "3",
                    "--log-dir",
                    str(sv.cwd / "logs"),
                ],
                capture_output=True,
                text=True,
                timeout=30,
                env=env,
            )
            assert res.returncode == 0 and len(res.stdout.splitlines()) == 3
            follower = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sorotask.cli",
                    "logs",
                    "supervisor",
                    "-f",
                    "-n",
                    "0",
                    "--config",
                    str(sv.config),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=sv.cwd,
            )
            time.sleep(1.0)
            # many supervisor log lines (and so rotations): restarts via SIGKILLed workers
            for _ in range(3):
                pid = sv.shard("s1")["pid"]
                if pid:
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.7)
            wait_for(
                lambda: len(list((sv.cwd / "logs").glob("supervisor.*.log"))) >= 1,
                10,
                what="a rotated supervisor log",
            )
            time.sleep(1.0)
        finally:
            if follower is not None:
                follower.terminate()
                out, _ = follower.communicate(timeout=10)
            sv.kill_tree()
        assert out.count("worker pid") >= 3, out  # lines from before and after rotations


class TestExitCodes:
    def test_supervisor_exits_80_when_every_shard_failed(self, tmp_path: Path) -> None:
        sv = start(tmp_path, keeper="tests.support.stand_ins:config_error_keeper")
        try:
            assert sv.wait(30) == 80
            assert "every shard has failed" in sv.stderr()
        finally:
            sv.kill_tree()


class TestJsonLogs:
    def test_json_lines_carry_the_shard_and_logs_command_shows_text(self, tmp_path: Path) -> None:
        import json

        sv = Supervisor(
            config(tmp_path, 2, json_logs=True),
            {**ENV, "SOROTASK_TEST_KEEPER": FAKE},
            extra_args=["--duration", "1.5"],
        )
        try:
            assert sv.wait(30) == 0
        finally:
            sv.kill_tree()
        lines = (tmp_path / "logs" / "s1.log").read_text().splitlines()
        records = [json.loads(line)["record"] for line in lines]
        assert records and all(r["extra"]["shard"] == "s1" for r in records)
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "sorotask.cli",
                "logs",
                "s1",
                "-n",
                "2",
                "--log-dir",
                str(tmp_path / "logs"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert res.returncode == 0
        out = res.stdout.splitlines()
        assert len(out) == 2 and all(" | s1 | " in line for line in out)


class TestReloadRetriesFailedShards:
    def test_sighup_gives_a_failed_shard_another_start(self, tmp_path: Path) -> None:
        sv = start(tmp_path, keeper=f"{FAKE};s0=tests.support.stand_ins:config_error_keeper")
        log = tmp_path / "logs" / "supervisor.log"
        try:
            wait_for(lambda: sv.shard("s0")["state"] == "failed", 15)
            assert log.read_text().count("shard s0: worker pid") == 1
            sv.signal(signal.SIGHUP)
            wait_for(lambda: log.read_text().count("shard s0: worker pid") == 2, 10)
            wait_for(lambda: sv.shard("s0")["state"] == "failed", 15)
            assert "reload: 1 changed, 0 added, 0 removed, 2 unchanged" in log.read_text()
        finally:
            sv.kill_tree()
