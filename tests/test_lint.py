"""The tree stays ``ruff check`` and ``ruff format`` clean (configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed; it is part of the [test] extra")
    return [found]


class TestRuff:
    def test_check_reports_no_problems(self) -> None:
        res = subprocess.run(
            [*_ruff(), "check", "--no-cache", str(ROOT)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr

    def test_format_leaves_every_file_unchanged(self) -> None:
        res = subprocess.run(
            [*_ruff(), "format", "--check", "--no-cache", str(ROOT)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
