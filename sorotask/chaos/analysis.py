"""Analysis of the devnet's own execution record (pure functions): the ledger clock, due
windows, wasted and double executions, and the attribution of every late window to a recorded
cause (invariants 1 and 2 of :mod:`sorotask.chaos`)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

WASTED_EFFECTS = ("noop_not_due", "resolver_skipped", "unauthorized", "failed")


@dataclass(frozen=True, slots=True)
class TaskSeed:
    task_id: int
    shard: str
    interval: int
    last_run: int


@dataclass(frozen=True, slots=True)
class LedgerClock:
    """The devnet's ledger clock: ledger ``L`` closes at ``t0 + (L - seq0) * ledger_seconds``."""

    seq0: int
    t0: int
    ledger_seconds: int

    def first_ledger_at_or_after(self, ts: int) -> int:
        return self.seq0 + max(0, math.ceil((ts - self.t0) / self.ledger_seconds))

    def close_time(self, seq: int) -> int:
        return self.t0 + (seq - self.seq0) * self.ledger_seconds


@dataclass(frozen=True, slots=True)
class Cause:
    """A recorded disturbance: ledgers ``start..end``; ``shard`` None means every shard."""

    kind: str
    shard: str | None
    start: int
    end: int
    detail: str = ""


def analyze(
    *,
    seeds: list[TaskSeed],
    executions: list[dict[str, Any]],
    clock: LedgerClock,
    causes: list[Cause],
    end_ledger: int,
    late_ledgers: int = 3,
    hold_ledgers: int = 3,
) -> dict[str, Any]:
    """Check invariants 1 and 2 against the devnet's execution record (pure function)."""
    by_task: dict[int, list[dict[str, Any]]] = {}
    for e in executions:
        by_task.setdefault(int(e["task_id"]), []).append(e)
    wasted: dict[str, int] = {k: 0 for k in WASTED_EFFECTS}
    wasted_examples: list[dict[str, Any]] = []
    doubles: list[dict[str, Any]] = []
    clock_mismatch = 0
    delays: list[int] = []
    late: list[dict[str, Any]] = []
    executed = 0
    known = {s.task_id for s in seeds}
    foreign = sorted(t for t in by_task if t not in known)

    def judge(seed: TaskSeed, due_ledger: int, done_ledger: int, executed_at: int | None) -> None:
        delay = done_ledger - due_ledger
        if executed_at is not None:
            delays.append(delay)
        if delay <= late_ledgers:
            return
        hits = [
            c
            for c in causes
            if (c.shard is None or c.shard == seed.shard)
            and c.start <= done_ledger
            and due_ledger <= c.end + hold_ledgers
        ]
        excused_until = max((c.end + hold_ledgers for c in hits), default=None)
        if excused_until is None:
            verdict = "unexplained"
        elif done_ledger <= excused_until + late_ledgers:
            verdict = "attributed"
        else:
            verdict = "beyond accounted window"
        late.append(
            {
                "task_id": seed.task_id,
                "shard": seed.shard,
                "due_ledger": due_ledger,
                "executed_ledger": executed_at,
                "waited_ledgers": delay,
                "causes": sorted({f"{c.kind}({c.detail})" if c.detail else c.kind for c in hits}),
                "excused_until": excused_until,
                "verdict": verdict,
            }
        )

    for seed in seeds:
        due_ts = seed.last_run + seed.interval
        last_exec_ts: int | None = None
        for e in sorted(by_task.get(seed.task_id, []), key=lambda e: (e["ledger"], e["tx_hash"])):
            if clock.close_time(int(e["ledger"])) != int(e["timestamp"]):
                clock_mismatch += 1
            effect = e["effect"]
            if effect != "executed":
                wasted[effect] = wasted.get(effect, 0) + 1
                if len(wasted_examples) < 20:
                    wasted_examples.append(dict(e, shard=seed.shard))
                continue
            executed += 1
            ts = int(e["timestamp"])
            if last_exec_ts is not None and ts < last_exec_ts + seed.interval:
                doubles.append(dict(e, shard=seed.shard, previous_timestamp=last_exec_ts))
            judge(seed, clock.first_ledger_at_or_after(due_ts), int(e["ledger"]), int(e["ledger"]))
            last_exec_ts = ts
            due_ts = ts + seed.interval
        due_ledger = clock.first_ledger_at_or_after(due_ts)
        if due_ledger + late_ledgers < end_ledger:
            judge(seed, due_ledger, end_ledger, None)
    late.sort(key=lambda w: (w["due_ledger"], w["task_id"]))
    violations = [w for w in late if w["verdict"] != "attributed"]
    by_cause: dict[str, int] = {}
    for w in late:
        for c in w["causes"] or ["none"]:
            kind = c.split("(", 1)[0]
            by_cause[kind] = by_cause.get(kind, 0) + 1
    return {
        "executions": executed,
        "wasted": wasted,
        "wasted_total": sum(wasted.values()),
        "wasted_examples": wasted_examples,
        "executed_twice_in_one_window": doubles,
        "foreign_task_ids": foreign[:20],
        "clock_mismatches": clock_mismatch,
        "delay_ledgers": {
            "samples": len(delays),
            "max": max(delays) if delays else None,
            "mean": round(statistics.fmean(delays), 3) if delays else None,
            "histogram": {str(k): delays.count(k) for k in sorted(set(delays))},
        },
        "late_windows": late,
        "late_windows_by_cause": by_cause,
        "late_violations": violations,
    }


def analysis_violations(ana: dict[str, Any], *, late_windows: bool = True) -> list[str]:
    """Invariants 1 and 2 as readable lines, from :func:`analyze`'s result (invariant 2 only
    with ``late_windows``: ``--hostile`` judges lateness by percentiles instead)."""
    violations: list[str] = []
    if ana["wasted_total"]:
        violations.append(f"{ana['wasted_total']} wasted transactions: {ana['wasted']}")
    if ana["executed_twice_in_one_window"]:
        violations.append(
            f"{len(ana['executed_twice_in_one_window'])} tasks executed twice in one window"
        )
    if ana["foreign_task_ids"]:
        violations.append(f"executions of unknown task ids {ana['foreign_task_ids']}")
    if ana["clock_mismatches"]:
        violations.append(f"{ana['clock_mismatches']} executions off the ledger clock")
    if not late_windows:
        return violations
    for w in ana["late_violations"][:20]:
        violations.append(
            f"task {w['task_id']} ({w['shard']}) waited {w['waited_ledgers']} ledgers from "
            f"ledger {w['due_ledger']}: {w['verdict']}"
            + (f" (causes {', '.join(w['causes'])})" if w["causes"] else "")
        )
    if len(ana["late_violations"]) > 20:
        violations.append(f"... {len(ana['late_violations']) - 20} more late windows")
    return violations
