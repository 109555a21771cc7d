"""``sorotask status --watch``: redraws the table from a fresh /status every --interval, bounded
by --count (real supervisor with stand-in keepers)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.supervisor import FAKE, ROOT, Supervisor, base_config, keypairs, write_yaml

pytestmark = pytest.mark.timeout(120)

KEYS = keypairs(2)
ENV = {f"KW_{i}": kp.secret for i, kp in enumerate(KEYS)}


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sorotask.cli", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_watch_redraws_a_fresh_table_count_times(tmp_path: Path) -> None:
    doc = base_config()
    doc["shards"] = [
        {"name": f"w{i}", "range": [1 + 100 * i, 100 * (i + 1)], "secret_env": f"KW_{i}"}
        for i in range(2)
    ]
    sv = Supervisor(write_yaml(tmp_path / "c.yaml", doc), {**ENV, "SOROTASK_TEST_KEEPER": FAKE})
    try:
        url = sv.wait_url()
        sv.wait_running(["w0", "w1"])
        res = status("--url", url, "--watch", "--interval", "0.7", "--count", "3")
        assert res.returncode == 0, res.stderr
        out = res.stdout
        assert "\x1b[2J" not in out  # not a terminal: no screen clearing
        frames = re.split(r"^\d\d:\d\d:\d\d  every 0.7s \(Ctrl-C stops\)$", out, flags=re.M)
        assert frames[0] == "" and len(frames) == 4
        cycles = []
        for frame in frames[1:]:
            lines = frame.strip().splitlines()
            assert lines[0].startswith(f"supervisor pid {sv.proc.pid} at {url}")
            assert lines[1].split()[:3] == ["shard", "state", "pid"]
            w0 = next(ln.split() for ln in lines if ln.startswith("w0 "))
            assert w0[1] == "running"
            cycles.append(int(w0[5]))
        assert cycles[0] < cycles[2]  # each frame is a new /status
    finally:
        sv.kill_tree()


def test_watch_keeps_going_while_nothing_answers() -> None:
    res = status("--url", "http://127.0.0.1:9", "--watch", "--interval", "0.1", "--count", "2")
    assert res.returncode == 0
    assert res.stdout.count("no supervisor answering at http://127.0.0.1:9") == 2


@pytest.mark.parametrize(
    ("args", "why"),
    [(["--interval", "0"], "--interval must be > 0"), (["--count", "0"], "--count must be >= 1")],
)
def test_watch_options_are_checked(args: list[str], why: str) -> None:
    res = status("--url", "http://127.0.0.1:9", "--watch", *args)
    assert res.returncode == 64 and why in res.stderr
