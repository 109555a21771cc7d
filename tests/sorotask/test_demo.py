"""``sorotask run`` with no config: the README's main command, a demo on an embedded devnet."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    cwd = tmp_path_factory.mktemp("demo")
    summary = cwd / "summary.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sorotask.cli",
            "run",
            "--duration",
            "10",
            "--status-address",
            "127.0.0.1:0",
            "--summary-json",
            str(summary),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    seen: dict[int, psutil.Process] = {}
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 90
    while proc.poll() is None and time.monotonic() < deadline:  # collect every descendant
        with contextlib.suppress(psutil.Error):
            for child in parent.children(recursive=True):
                seen.setdefault(child.pid, child)
        time.sleep(0.2)
    try:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
    res = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert len(seen) >= 4, seen  # devnet, forkserver, three workers at least
    _, alive = psutil.wait_procs(list(seen.values()), timeout=10)
    assert not alive, f"left behind: {alive}"
    return res, json.loads(Path(summary).read_text())


class TestDemo:
    def test_says_it_is_a_demo_on_a_local_devnet(self, demo: tuple) -> None:
        res, _ = demo
        assert res.returncode == 0, res.stderr[-3000:]
        assert "DEMO MODE" in res.stdout
        assert "not testnet or" in res.stdout and "mainnet" in res.stdout
        assert "sorotask: status at http://127.0.0.1:" in res.stdout

    def test_runs_three_shards_that_execute_tasks(self, demo: tuple) -> None:
        _, summary = demo
        assert set(summary["shards"]) == {"demo-1", "demo-2", "demo-3"}
        assert all(s["executed"] > 0 for s in summary["shards"].values())
        assert summary["failed"] == 0 and summary["restarts"] == 0

    def test_uses_every_source_account_of_a_shard(self, demo: tuple) -> None:
        # keeper + 2 channel accounts per shard: up to 3 executions a ledger each; about 10
        # ledgers close in 10 s, so one source alone could never land 15
        _, summary = demo
        assert all(s["executed"] >= 15 for s in summary["shards"].values()), summary

    def test_prints_a_summary_table(self, demo: tuple) -> None:
        res, summary = demo
        assert "sorotask: summary" in res.stdout
        total = (
            rf"TOTAL\s+{summary['cycles']}\s+{summary['checked']}\s+{summary['due_now']}\s+"
            rf"{summary['oldest_overdue_ledgers']}\s+"
        )
        assert re.search(total + rf"{summary['executed']}\s+0\s+0", res.stdout), res.stdout


class TestDispatch:
    def test_run_without_config_is_the_demo_of_the_top_layer(self) -> None:
        from sorotask.cli import COMMANDS

        assert COMMANDS["run"][:2] == ("sorotask.demo", "run_main")

    def test_the_supervisor_alone_needs_a_config(self, capsys: pytest.CaptureFixture[str]) -> None:
        from supervisor.cli import run_main

        with pytest.raises(SystemExit) as exc:
            run_main(["--duration", "1"])
        assert exc.value.code == 64
        assert "--config is required" in capsys.readouterr().err
