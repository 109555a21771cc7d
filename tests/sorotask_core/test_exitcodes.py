"""The exit codes are a contract with systemd and the supervisor: their numbers never change."""

from __future__ import annotations

from sorotask_core.exitcodes import ExitCode


class TestExitCodes:
    def test_numbers(self) -> None:
        assert {c.name: int(c) for c in ExitCode} == {
            "OK": 0,
            "CRASH": 1,
            "USAGE": 64,
            "CONFIG": 78,  # sysexits EX_CONFIG
            "ORPHANED": 79,
            "SHARDS_FAILED": 80,
        }
