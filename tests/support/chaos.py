"""``sorotask chaos`` as a real subprocess, for the end-to-end chaos tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_chaos(work: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``sorotask chaos ARGS --workdir WORK --report WORK/report.json`` run in ``work`` (its
    output printed, the end of stderr too, for a failing test's log)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sorotask.cli",
            "chaos",
            *args,
            "--workdir",
            str(work),
            "--report",
            str(work / "report.json"),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=work,
    )
    print(proc.stdout)
    print(proc.stderr[-3000:])
    return proc
