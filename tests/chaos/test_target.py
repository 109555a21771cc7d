"""``sorotask chaos --target URL --yes`` against a supervisor started by the test (stand-in
keepers, real forkserver workers, real pipes and signals), and its safety checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    write_yaml,
)

pytestmark = pytest.mark.timeout(120)

KEYS = keypairs(3)
ENV = {f"KC_{i}": kp.secret for i, kp in enumerate(KEYS)}
RESTART = {
    "max_restarts": 100,
    "window_s": 60,
    "backoff_base_s": 0.1,
    "backoff_max_s": 0.3,
    "stable_after_s": 1,
}


def chaos(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sorotask.cli", "chaos", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    doc = base_config(restart=RESTART)
    doc["shards"] = [
        {"name": f"t{i}", "range": [1 + 100 * i, 100 * (i + 1)], "secret_env": f"KC_{i}"}
        for i in range(3)
    ]
    sv = Supervisor(
        write_yaml(tmp_path / "sorotask.yaml", doc), {**ENV, "SOROTASK_TEST_KEEPER": FAKE}
    )
    try:
        sv.wait_url()
        sv.wait_running(["t0", "t1", "t2"])
        yield sv
    finally:
        sv.kill_tree()


class TestTargetMode:
    def test_kills_workers_and_reports_their_recovery(
        self, supervisor: Supervisor, tmp_path: Path
    ) -> None:
        before = {s["name"]: s["pid"] for s in supervisor.status()["shards"]}
        report_path = tmp_path / "target.json"
        res = chaos(
            "--target",
            supervisor.url or "",
            "--yes",
            "--duration",
            "5",
            "--kill-every",
            "1",
            "--seed",
            "3",
            "--report",
            str(report_path),
        )
        assert res.returncode == 0, res.stdout + res.stderr
        report = json.loads(report_path.read_text())
        c = report["chaos"]
        assert report["ok"] is True and report["violations"] == []
        assert report["supervisor_pid"] == supervisor.proc.pid
        assert c["kills"] >= 3 and c["refused"] == [] and c["not_recovered"] == []
        assert c["restarts"] == c["kills"]
        killed = [a["pid"] for a in c["actions"]]
        assert not alive(killed)  # they really were SIGKILLed
        assert set(before.values()) & set(killed)
        doc = supervisor.status()
        assert all(s["state"] == "running" for s in doc["shards"])
        assert doc["totals"]["restarts"] == c["kills"]
        assert report["status"]["failures"] == 0
        assert supervisor.proc.poll() is None
        assert "sorotask chaos (target): OK" in res.stdout

    def test_refuses_without_yes_and_touches_nothing(self, supervisor: Supervisor) -> None:
        before = {s["name"]: s["pid"] for s in supervisor.status()["shards"]}
        res = chaos("--target", supervisor.url or "", "--duration", "2")
        assert res.returncode == 64
        assert "--yes" in res.stderr
        after = supervisor.status()
        assert {s["name"]: s["pid"] for s in after["shards"]} == before
        assert after["totals"]["restarts"] == 0


class _FakeStatus(BaseHTTPRequestHandler):
    doc: dict[str, Any] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.doc).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class TestTargetSafety:
    def test_pid_that_is_not_a_child_of_the_supervisor_is_never_killed(self) -> None:
        fake_supervisor = subprocess.Popen(["sleep", "60"])
        bystander = subprocess.Popen(["sleep", "60"])  # listed as a "worker", but not its child
        _FakeStatus.doc = {
            "supervisor": {"pid": fake_supervisor.pid},
            "shards": [
                {
                    "name": "x",
                    "pid": bystander.pid,
                    "state": "running",
                    "restarts": 0,
                    "range": [1, 10],
                    "last_cycle": {"cycle": 1, "age_s": 0.1},
                }
            ],
        }
        server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeStatus)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            res = chaos("--target", url, "--yes", "--duration", "2", "--kill-every", "0.5")
            assert res.returncode == 1
            assert "not a descendant of the supervisor" in res.stderr + res.stdout
            assert bystander.poll() is None and fake_supervisor.poll() is None
        finally:
            server.shutdown()
            for p in (bystander, fake_supervisor):
                p.kill()
                p.wait(timeout=5)

    def test_unreachable_target_fails_clearly(self) -> None:
        res = chaos("--target", "http://127.0.0.1:9", "--yes", "--duration", "1")
        assert res.returncode == 1
        assert "no supervisor answering" in res.stdout
