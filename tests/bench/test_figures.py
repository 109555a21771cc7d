"""The bench's due-to-executed delay (sorotask/bench/figures.py): the due ledger from the close
times the devnet recorded, not only from the grid."""

from __future__ import annotations

from typing import Any

from sorotask.bench.figures import _ledger_time, execution_figures
from sorotask.bench.params import BenchParams


def ex(task_id: int, ledger: int, ts: int, keeper: str = "us") -> dict[str, Any]:
    return {"task_id": task_id, "ledger": ledger, "timestamp": ts, "keeper": keeper,
            "effect": "executed"}  # fmt: skip


def test_the_due_ledger_follows_recorded_close_times_off_the_grid() -> None:
    """The grid puts ledger 12 at 1060 and 13 at 1065; the devnet closed 12 at 1062 (late):
    a task due at 1061 is due in ledger 12, not 13."""
    due = _ledger_time(10, 1050, 5, {11: 1055, 12: 1062, 13: 1066})
    assert due(1061) == 12
    assert due(1063) == 13
    assert _ledger_time(10, 1050, 5)(1061) == 13  # the grid alone
    # a ledger whose predecessor is not recorded: the grid decides
    assert _ledger_time(10, 1050, 5, {12: 1062})(1061) == 13


def test_delays_count_from_the_recorded_due_ledger() -> None:
    p = BenchParams(due_interval_ledgers=3, ledger_seconds=5)
    # ours at 10 (1046), due at 1061: recorded 12 closed at 1062 -> due in 12, applied in 13
    ours = [ex(1, 10, 1046), ex(1, 13, 1066)]
    others = [ex(2, 11, 1055, "them"), ex(3, 12, 1062, "them")]
    figures = execution_figures(ours, p, 10, 1050, 4, 1, others)
    assert figures["delay_ledgers"]["samples"] == 1
    assert figures["delay_ledgers"]["max"] == 1
