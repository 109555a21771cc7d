"""Lateness in ledgers from the devnet's execution record (pure functions), for ``sorotask chaos
--hostile``: how far past its due time each repeat execution of a task landed, as percentiles,
and which due windows were never executed; then the run's figures against its targets."""

from __future__ import annotations

import math
import statistics
from typing import Any

from sorotask.chaos.analysis import LedgerClock, TaskSeed


def percentile(sorted_values: list[int], q: float) -> int | None:
    """Nearest-rank percentile ``q`` (0 < q <= 100) of ascending ``sorted_values``."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def summarize(samples: list[int]) -> dict[str, Any]:
    """p50/p95/p99/max, mean and a histogram of lateness samples (ledgers)."""
    s = sorted(samples)
    return {
        "samples": len(s),
        "p50": percentile(s, 50),
        "p95": percentile(s, 95),
        "p99": percentile(s, 99),
        "max": s[-1] if s else None,
        "mean": round(statistics.fmean(s), 3) if s else None,
        "histogram": {str(k): s.count(k) for k in sorted(set(s))},
    }


def lateness(
    *,
    seeds: list[TaskSeed],
    executions: list[dict[str, Any]],
    clock: LedgerClock,
    window: tuple[int, int],
    end_ledger: int,
    open_after: int,
) -> dict[str, Any]:
    """Lateness of every due window that opened in ``window`` (ledgers, inclusive).

    A task's due window opens at the first ledger closing at or after ``last_run + interval``
    (the seed's, then each execution's timestamp + interval); its lateness is the executing
    ledger minus that one. ``repeat`` holds the windows after a task's first execution (the
    figure the targets are about), ``first`` the first ones. A window that opened in ``window``
    and is still open at ``end_ledger`` more than ``open_after`` ledgers later was never
    executed."""
    by_task: dict[int, list[dict[str, Any]]] = {}
    for e in executions:
        if e.get("effect") == "executed":
            by_task.setdefault(int(e["task_id"]), []).append(e)
    lo, hi = window
    repeat: list[int] = []
    first: list[int] = []
    open_windows: list[dict[str, Any]] = []
    without: list[int] = []
    for seed in seeds:
        done = sorted(by_task.get(seed.task_id, []), key=lambda e: (e["ledger"], e["tx_hash"]))
        if not done:
            without.append(seed.task_id)
        due_ts = seed.last_run + seed.interval
        for i, e in enumerate(done):
            due = clock.first_ledger_at_or_after(due_ts)
            if lo <= due <= hi:
                (repeat if i else first).append(int(e["ledger"]) - due)
            due_ts = int(e["timestamp"]) + seed.interval
        due = clock.first_ledger_at_or_after(due_ts)
        if lo <= due <= hi and end_ledger - due > open_after:
            open_windows.append(
                {
                    "task_id": seed.task_id,
                    "shard": seed.shard,
                    "due_ledger": due,
                    "open_ledgers": end_ledger - due,
                }
            )
    return {
        "window": [lo, hi],
        "end_ledger": end_ledger,
        "repeat": summarize(repeat),
        "first": summarize(first),
        "never_executed": len(open_windows),
        "never_executed_windows": open_windows[:20],
        "tasks_without_execution": without[:50],
    }


def target_figures(
    lat: dict[str, Any], *, wasted: int, doubled: int, targets: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Each target with its figure and whether it was met: lateness p99 and max of repeat
    executions (``targets``), and zero wasted, doubled and never-executed windows."""
    rep = lat["repeat"]
    out: dict[str, dict[str, Any]] = {}
    for name, limit in targets.items():
        value = rep.get(name)
        out[f"lateness_{name}"] = {
            "value": value,
            "limit": limit,
            "met": value is not None and value <= limit,
        }
    for name, value in (
        ("wasted", wasted),
        ("doubled", doubled),
        ("never_executed", lat["never_executed"]),
    ):
        out[name] = {"value": value, "limit": 0, "met": value == 0}
    return out


def target_violations(figures: dict[str, dict[str, Any]]) -> list[str]:
    """The missed targets as readable lines."""
    return [
        f"{name} {f['value']} (target <= {f['limit']})"
        for name, f in figures.items()
        if not f["met"]
    ]
