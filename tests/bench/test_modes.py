"""The read modes table and plot (sorotask/bench/modes.py) from bench JSON documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sorotask.bench.modes import main, rows_of, table


def run_doc(tasks: int, **modes: float) -> dict[str, Any]:
    """A bench JSON with only what the table reads: per mode, reads a ledger = the value."""

    def mode(reads: float) -> dict[str, Any]:
        steady = {
            "read_requests_per_ledger": reads,
            "read_bytes_per_ledger": reads * 2**20,
            "requests_per_ledger": reads + 10,
            "bytes_per_ledger": reads * 2**20 + 5,
            "cpu_ms_per_1k_tasks_per_ledger": 0.05,
            "ledgers": 12,
        }
        return {
            "steady_state": steady,
            "initial_sync_s": 2.5,
            "rss_bytes_max": 40 * 2**20,
            "delay_ledgers": {"p95": 1},
        }

    return {
        "params": {"tasks": tasks, "shards": 4},
        "modes": {m: mode(v) for m, v in modes.items()},
    }


def test_rows_by_task_count_then_mode_with_notes() -> None:
    rows = [
        *rows_of(run_doc(100_000, ledger_entries=520.0, events=9.0)),
        *rows_of(run_doc(1_000, simulate=30.0, events=8.0)),
        *rows_of({"tasks": 100_000, "shards": 4, "read_mode": "simulate", "not_measured": "x"}),
    ]
    lines = table(rows).splitlines()
    assert len(lines) == 2 + 5
    assert [ln.split("|")[1:3] for ln in lines[2:]] == [
        [" 1,000 (4) ", " events "],
        [" 1,000 (4) ", " simulate "],
        [" 100,000 (4) ", " events "],
        [" 100,000 (4) ", " ledger_entries "],
        [" 100,000 (4) ", " simulate "],
    ]
    assert "| 520.0 | 520.000 | 530.0 |" in lines[5]
    assert "not measured: x" in lines[6]


def test_the_command_prints_the_table_and_draws_the_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    runs = []
    for n, reads in ((1_000, 8.0), (10_000, 9.0)):
        path = tmp_path / f"run{n}.json"
        path.write_text(json.dumps(run_doc(n, events=reads, ledger_entries=n / 190)))
        runs.append(str(path))
    png = tmp_path / "modes.png"
    assert main([*runs, "--png", str(png)]) == 0
    assert "| 10,000 (4) | ledger_entries |" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
