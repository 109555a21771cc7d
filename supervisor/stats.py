"""Aggregation of per-cycle statistics, per shard and in total (the fields of
``sorotask_core.stats``), and the run summary."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sorotask_core.stats import COUNTER, FIELDS_BY_NAME, SUMMARY, TOTALLED

#: the summary's columns (``--summary-json``, the summary table, the progress line)
SUMMARY_FIELDS = ("cycles", *SUMMARY, "restarts")
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


def _bounded_set(values: dict[str, float], latest: dict[str, Any]) -> None:
    """Keep the latest value per label, at most MAX_LABELS short labels (the rest dropped)."""
    for key, value in latest.items():
        k = str(key)[:MAX_LABEL_LEN]
        if k in values or len(values) < MAX_LABELS:
            values[k] = float(value)


class ShardTotals:
    """Everything a shard reported, summed over its cycles (and across its worker restarts).

    One attribute per counter and gauge of ``sorotask_core.stats.CYCLE_FIELDS`` (a labelled one
    is a Counter or dict), plus what the supervisor derives itself: ``cycles``,
    ``cycle_errors``, the cycle durations, the execution time, the latest ledger and the task
    ``events`` counted from event messages.
    """

    __slots__ = (
        "cycle_errors",
        "cycle_seconds_total",
        "cycles",
        "events",
        "execution_seconds_total",
        "last_cycle_duration_s",
        "last_ledger",
        "max_cycle_duration_s",
        *(f.name for f in TOTALLED),
    )

    def __init__(self) -> None:
        self.cycles = 0
        self.cycle_errors = 0
        self.events: Counter[str] = Counter()
        self.cycle_seconds_total = 0.0
        self.last_cycle_duration_s = 0.0
        self.max_cycle_duration_s = 0.0
        self.execution_seconds_total = 0.0  # mean_execution_s * executed, summed
        self.last_ledger = 0
        for f in TOTALLED:
            if f.labelled:
                setattr(self, f.name, Counter() if f.summed else {})
            else:
                setattr(self, f.name, f.make_default())

    def add_cycle(self, stats: dict[str, Any]) -> None:
        """Add one validated ``cycle`` message's stats."""
        self.cycles += 1
        for f in TOTALLED:
            value = stats.get(f.name, f.make_default())
            if not f.labelled:
                if f.kind == COUNTER:
                    setattr(self, f.name, getattr(self, f.name) + f.type(value))
                else:  # a gauge: the latest level
                    setattr(self, f.name, f.type(value))
            elif f.summed:
                bounded_update(getattr(self, f.name), value)
            else:
                _bounded_set(getattr(self, f.name), value)
        if stats.get("cycle_error"):
            self.cycle_errors += 1
        duration = float(stats.get("duration_s", 0.0))
        self.cycle_seconds_total += duration
        self.last_cycle_duration_s = duration
        self.max_cycle_duration_s = max(self.max_cycle_duration_s, duration)
        self.execution_seconds_total += float(stats.get("mean_execution_s", 0.0)) * int(
            stats.get("executed", 0)
        )
        self.last_ledger = max(self.last_ledger, int(stats.get("ledger", 0)))

    def add(self, other: ShardTotals) -> None:
        """Sum another shard's totals into this one (for the overall total).

        Counters, histograms and unlabelled gauges (levels: in flight, queue depth) add up
        (a gauge declared ``across="max"``, e.g. the oldest overdue, takes the largest); a
        labelled gauge (the mean latency by method) does not, and stays out of the overall
        total.
        """
        self.cycles += other.cycles
        self.cycle_errors += other.cycle_errors
        for f in TOTALLED:
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if not f.labelled:
                setattr(self, f.name, max(mine, theirs) if f.across == "max" else mine + theirs)
            elif f.summed:
                mine.update(theirs)
        self.events.update(other.events)
        self.cycle_seconds_total += other.cycle_seconds_total
        self.max_cycle_duration_s = max(self.max_cycle_duration_s, other.max_cycle_duration_s)
        self.execution_seconds_total += other.execution_seconds_total
        self.last_ledger = max(self.last_ledger, other.last_ledger)

    def copy(self) -> ShardTotals:
        out = ShardTotals()
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(out, name, value.copy() if isinstance(value, dict) else value)
        return out

    @property
    def mean_cycle_duration_s(self) -> float:
        return self.cycle_seconds_total / self.cycles if self.cycles else 0.0

    @property
    def mean_execution_s(self) -> float:
        executed: int = self.executed
        return self.execution_seconds_total / executed if executed else 0.0

    @property
    def success_rate(self) -> float | None:
        done: int = self.executed + self.failed
        return self.executed / done if done else None

    def to_dict(self) -> dict[str, Any]:
        """The ``totals`` object of ``/status``."""
        doc: dict[str, Any] = {"cycles": self.cycles}
        for f in TOTALLED:
            value = getattr(self, f.name)
            if f.labelled:
                value = {k: round(v, 6) if f.type is float else v for k, v in value.items()}
            doc[f.name] = value
        doc.update(
            success_rate=self.success_rate,
            cycle_errors=self.cycle_errors,
            mean_cycle_duration_s=round(self.mean_cycle_duration_s, 6),
            last_cycle_duration_s=round(self.last_cycle_duration_s, 6),
            max_cycle_duration_s=round(self.max_cycle_duration_s, 6),
            mean_execution_s=round(self.mean_execution_s, 6),
            last_ledger=self.last_ledger,
            events=dict(self.events),
        )
        return doc


def summary(shards: dict[str, tuple[ShardTotals, int]]) -> dict[str, Any]:
    """The ``--summary-json`` document from ``{name: (totals, restarts)}``."""
    out: dict[str, Any] = dict.fromkeys(SUMMARY_FIELDS, 0)
    out["shards"] = {}
    for name, (t, restarts) in shards.items():
        row = {k: getattr(t, k) for k in SUMMARY_FIELDS[:-1]}
        row["restarts"] = restarts
        out["shards"][name] = row
        for k in SUMMARY_FIELDS:
            f = FIELDS_BY_NAME.get(k)
            out[k] = max(out[k], row[k]) if f and f.across == "max" else out[k] + row[k]
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
