"""The supervisor logs a periodic progress line (totals and what changed since the last one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.supervisor import FAKE, Supervisor, base_config, keypairs, write_yaml

pytestmark = pytest.mark.timeout(60)

KEYS = keypairs(2)
ENV = {f"KP_{i}": kp.secret for i, kp in enumerate(KEYS)}
LINE = re.compile(
    r"progress: (\d+)/(\d+) shards running; cycles (\d+), checked \d+, due now \d+, "
    r"oldest overdue \(ledgers\) \d+, "
    r"executed (\d+) \(\+(\d+)\), failed \d+ \(\+\d+\), restarts \d+ \(\+\d+\)"
)


def _run(tmp_path: Path, progress_every_s: float | None) -> list[re.Match[str]]:
    doc = base_config(log_dir=str(tmp_path / "logs"), progress_every_s=progress_every_s)
    doc["shards"] = [
        {"name": f"p{i}", "range": [1 + 100 * i, 100 * (i + 1)], "secret_env": f"KP_{i}"}
        for i in range(2)
    ]
    cfg = write_yaml(tmp_path / "c.yaml", doc)
    sv = Supervisor(cfg, {**ENV, "SOROTASK_TEST_KEEPER": FAKE}, extra_args=["--duration", "3"])
    try:
        assert sv.wait(30) == 0, sv.stderr()
    finally:
        sv.kill_tree()
    text = (tmp_path / "logs" / "supervisor.log").read_text()
    return list(LINE.finditer(text))


class TestProgressLine:
    def test_logs_totals_and_increments_at_the_configured_period(self, tmp_path: Path) -> None:
        lines = _run(tmp_path, 0.5)
        assert len(lines) >= 3
        last = lines[-1]
        assert last.group(2) == "2"  # shards
        executed = [int(m.group(4)) for m in lines]
        increments = [int(m.group(5)) for m in lines]
        assert executed == sorted(executed) and executed[-1] > 0
        assert sum(increments) == executed[-1]  # increments add up to the total

    def test_null_turns_it_off(self, tmp_path: Path) -> None:
        assert _run(tmp_path, None) == []


class TestShardLog:
    def test_shard_log_has_a_line_per_cycle_and_per_event(self, tmp_path: Path) -> None:
        _run(tmp_path, None)
        text = (tmp_path / "logs" / "p0.log").read_text()
        assert re.search(r"\| p0 \| keeper started: pid \d+ keeper G[A-Z2-7]{55}", text)
        assert re.search(r"\| p0 \| cycle 1 ledger 101 \(\d+ ms\): checked 100, due 1", text)
        assert re.search(r"\| p0 \| executed task_id=1 tx=0{64}\n", text)
        assert "keeper stopped:" in text
