"""Aggregation of per-cycle statistics, per shard and in total (the seed's metrics list)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: counters summed over cycles
SUM_FIELDS = (
    "checked",
    "due",
    "read_errors",
    "executed",
    "failed",
    "not_sent_by_simulation",
    "fees_spent",
)
SUMMARY_FIELDS = ("cycles", "checked", "due", "executed", "failed", "restarts")
#: a worker cannot grow the supervisor's memory without bound through label names
MAX_LABELS = 64
MAX_LABEL_LEN = 64
OTHER = "other"


def bounded_update(counter: Counter[str], values: dict[str, int]) -> None:
    """``counter.update(values)`` keeping at most MAX_LABELS short keys (the rest: "other")."""
    for key, value in values.items():
        k = str(key)[:MAX_LABEL_LEN]
        if k not in counter and len(counter) >= MAX_LABELS:
            k = OTHER
        counter[k] += value


@dataclass(slots=True)
class ShardTotals:
    """Everything a shard reported, summed over its cycles (and across its worker restarts)."""

    cycles: int = 0
    checked: int = 0
    due: int = 0
    read_errors: int = 0
    executed: int = 0
    failed: int = 0
    not_sent_by_simulation: int = 0
    fees_spent: int = 0
    cycle_errors: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rpc_calls: Counter[str] = field(default_factory=Counter)
    rpc_errors: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    cycle_seconds_total: float = 0.0
    last_cycle_duration_s: float = 0.0
    max_cycle_duration_s: float = 0.0
    execution_seconds_total: float = 0.0  # mean_execution_s * executed, summed
    in_flight: int = 0
    queue_depth: int = 0
    last_ledger: int = 0
    rpc_latency_s: dict[str, float] = field(default_factory=dict)  # last reported mean

    def add_cycle(self, stats: dict[str, Any]) -> None:
        """Add one validated ``cycle`` message's stats."""
        self.cycles += 1
        for name in SUM_FIELDS:
            setattr(self, name, getattr(self, name) + int(stats.get(name, 0)))
        if stats.get("cycle_error"):
            self.cycle_errors += 1
        bounded_update(self.skipped, stats.get("skipped", {}))
        bounded_update(self.rpc_calls, stats.get("rpc_calls", {}))
        bounded_update(self.rpc_errors, stats.get("rpc_errors", {}))
        duration = float(stats.get("duration_s", 0.0))
        self.cycle_seconds_total += duration
        self.last_cycle_duration_s = duration
        self.max_cycle_duration_s = max(self.max_cycle_duration_s, duration)
        self.execution_seconds_total += float(stats.get("mean_execution_s", 0.0)) * int(
            stats.get("executed", 0)
        )
        self.in_flight = int(stats.get("in_flight", 0))
        self.queue_depth = int(stats.get("queue_depth", 0))
        self.last_ledger = max(self.last_ledger, int(stats.get("ledger", 0)))
        for key, value in stats.get("rpc_latency_s", {}).items():
            k = str(key)[:MAX_LABEL_LEN]
            if k in self.rpc_latency_s or len(self.rpc_latency_s) < MAX_LABELS:
                self.rpc_latency_s[k] = float(value)

    def add(self, other: ShardTotals) -> None:
        """Sum another shard's totals into this one (for the overall total)."""
        self.cycles += other.cycles
        for name in (*SUM_FIELDS, "cycle_errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.rpc_calls.update(other.rpc_calls)
        self.rpc_errors.update(other.rpc_errors)
        self.events.update(other.events)
        self.cycle_seconds_total += other.cycle_seconds_total
        self.max_cycle_duration_s = max(self.max_cycle_duration_s, other.max_cycle_duration_s)
        self.execution_seconds_total += other.execution_seconds_total
        self.in_flight += other.in_flight
        self.queue_depth += other.queue_depth
        self.last_ledger = max(self.last_ledger, other.last_ledger)

    @property
    def mean_cycle_duration_s(self) -> float:
        return self.cycle_seconds_total / self.cycles if self.cycles else 0.0

    @property
    def mean_execution_s(self) -> float:
        return self.execution_seconds_total / self.executed if self.executed else 0.0

    @property
    def success_rate(self) -> float | None:
        done = self.executed + self.failed
        return self.executed / done if done else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "checked": self.checked,
            "due": self.due,
            "skipped": dict(self.skipped),
            "read_errors": self.read_errors,
            "executed": self.executed,
            "failed": self.failed,
            "not_sent_by_simulation": self.not_sent_by_simulation,
            "success_rate": self.success_rate,
            "fees_spent": self.fees_spent,
            "cycle_errors": self.cycle_errors,
            "mean_cycle_duration_s": round(self.mean_cycle_duration_s, 6),
            "last_cycle_duration_s": round(self.last_cycle_duration_s, 6),
            "max_cycle_duration_s": round(self.max_cycle_duration_s, 6),
            "mean_execution_s": round(self.mean_execution_s, 6),
            "in_flight": self.in_flight,
            "queue_depth": self.queue_depth,
            "last_ledger": self.last_ledger,
            "rpc_calls": dict(self.rpc_calls),
            "rpc_errors": dict(self.rpc_errors),
            "rpc_latency_s": {k: round(v, 6) for k, v in self.rpc_latency_s.items()},
            "events": dict(self.events),
        }


def summary(shards: dict[str, tuple[ShardTotals, int]]) -> dict[str, Any]:
    """The ``--summary-json`` document from ``{name: (totals, restarts)}``."""
    out: dict[str, Any] = dict.fromkeys(SUMMARY_FIELDS, 0)
    out["shards"] = {}
    for name, (t, restarts) in shards.items():
        row = {
            "cycles": t.cycles,
            "checked": t.checked,
            "due": t.due,
            "executed": t.executed,
            "failed": t.failed,
            "restarts": restarts,
        }
        out["shards"][name] = row
        for k in SUMMARY_FIELDS:
            out[k] += row[k]
    return out


def summary_table(doc: dict[str, Any], states: dict[str, str] | None = None) -> str:
    """A plain-text table of a summary document."""
    cols = ["shard", *SUMMARY_FIELDS] + (["state"] if states else [])
    rows = []
    for name, row in doc["shards"].items():
        rows.append(
            [name, *(str(row[k]) for k in SUMMARY_FIELDS)]
            + ([states.get(name, "")] if states else [])
        )
    rows.append(["TOTAL", *(str(doc[k]) for k in SUMMARY_FIELDS)] + ([""] if states else []))
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    return "\n".join(lines)
