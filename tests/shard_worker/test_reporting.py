"""Task events and the goodbye as ``key=value`` log lines (issue 15), not dict reprs."""

from __future__ import annotations

from typing import Any

import pytest
from loguru import logger

from shard_worker.reporting import LoggingReporter, format_event


class TestFormatEvent:
    def test_executed_event_is_key_value_with_task_id_first(self) -> None:
        line = format_event(
            "executed",
            {"source": "GABC", "fee": 61234, "ledger": 105, "tx_hash": "ab12", "task_id": 172},
        )
        assert line == "executed task_id=172 fee=61234 tx=ab12 ledger=105 source=GABC"
        assert "{" not in line and "'" not in line

    def test_values_with_spaces_or_quotes_are_quoted(self) -> None:
        line = format_event(
            "failed", {"task_id": 3, "reason": "error", "error": 'RpcError: bad "x" = 1'}
        )
        assert line == 'failed task_id=3 reason=error error="RpcError: bad \\"x\\" = 1"'

    def test_lists_none_and_bools(self) -> None:
        line = format_event("journal_resolving", {"count": 2, "task_ids": [4, 9], "x": None})
        assert line == "journal_resolving count=2 task_ids=4,9 x=null"
        assert format_event("e", {"ok": True, "empty": ""}) == 'e empty="" ok=true'


@pytest.fixture
def captured() -> Any:
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m).rstrip("\n")), level="DEBUG", format="{message}"
    )
    yield lines
    logger.remove(sink)


class TestLoggingReporter:
    def test_event_and_goodbye_lines(self, captured: list[str]) -> None:
        rep = LoggingReporter("s1")
        rep.event("executed", {"task_id": 172, "fee": 100, "tx_hash": "ff00"})
        rep.goodbye({"cycles": 3, "executed": 1})
        rep.goodbye({"cycles": 2, "would_execute_count": 2, "would_execute": [[4, 100], [5, 9]]})
        assert captured == [
            "executed task_id=172 fee=100 tx=ff00",
            "keeper stopped: cycles=3 executed=1",
            "keeper stopped: cycles=2 would_execute_count=2",
        ]
