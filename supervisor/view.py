"""The documents the supervisor shows, built from registry snapshots.

``/status`` (JSON), ``/health``, ``/metrics`` (Prometheus families), the run summary and the
periodic progress line. Each is a pure function of a :class:`~supervisor.registry.Snapshot`
and the time; :class:`View` binds them to a live registry (and is the status server's
Prometheus collector). The per-cycle counters and gauges come from
``sorotask_core.stats.TOTALLED``; the rest (cycles, durations, restarts, process samples,
state) are the supervisor's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from sorotask_core.stats import (
    COUNTER,
    FIELDS_BY_NAME,
    HISTOGRAM,
    METRIC_PREFIX,
    OUTCOMES,
    TOTALLED,
    cumulative,
)
from supervisor.registry import Registry, ShardView, Snapshot, State
from supervisor.stats import SUMMARY_FIELDS, ShardTotals, summary

# ------------------------------------------------------------------------------ /status


def paused_reason(s: ShardView) -> str | None:
    """Why a live shard sends nothing (its last cycle says, e.g. ``paused: low balance``)."""
    return (s.last_cycle or {}).get("paused") if s.alive else None


def shard_document(s: ShardView, now: float) -> dict[str, Any]:
    spec = s.plan.spec
    return {
        "name": s.name,
        "range": [spec.range_first, spec.range_last],
        "pid": s.pid,
        "state": str(s.state),
        "restarts": s.restarts,
        "failed_retries": s.failed_retries,
        "memory_restarts": s.memory_restarts,
        "last_cycle": (
            dict(s.last_cycle, age_s=round(now - s.last_cycle_at, 3))
            if s.last_cycle is not None and s.last_cycle_at is not None
            else None
        ),
        "totals": s.totals.to_dict(),
        "rss_bytes": s.rss_bytes,
        "cpu_percent": s.cpu_percent,
        "heartbeat_age_s": round(now - s.last_msg_at, 3) if s.alive else None,
        "keeper": s.keeper,
        "uptime_s": round(now - s.spawned_at, 3) if s.alive else None,
        "failed_reason": s.failed_reason,
        "last_exit_code": s.last_exit_code,
        # the worker says why it sends nothing (e.g. "paused: low balance")
        "paused": paused_reason(s),
        "replacement_ms": {k: round(v, 2) for k, v in s.replacement.items()},
        "host": s.plan.host,
        "endpoints": s.endpoints,
    }


def status_document(snap: Snapshot, now: float, self_rss: int | None = None) -> dict[str, Any]:
    """The ``GET /status`` document (``now``: ``time.monotonic()``)."""
    sup = snap.supervisor
    total = ShardTotals()
    total.add(snap.retired)
    for s in snap.shards:
        total.add(s.totals)
    return {
        "supervisor": {
            "pid": sup.pid,
            "rss_bytes": self_rss,
            "uptime_s": round(now - sup.started_mono, 3),
            "stopping": sup.stopping,
            "config": sup.config_path,
            "host_index": sup.host_index,
            "host_count": sup.host_count,
        },
        "shards": [shard_document(s, now) for s in snap.shards],
        "totals": dict(
            total.to_dict(),
            restarts=snap.retired_restarts + sum(s.restarts for s in snap.shards),
        ),
    }


# ------------------------------------------------------------------------------ /health


def health_report(snap: Snapshot, now: float) -> tuple[bool, list[str]]:
    """(healthy, reasons): every shard running with a fresh cycle."""
    reasons = []
    if snap.supervisor.stopping:
        reasons.append("supervisor is stopping")
    if not snap.shards:
        reasons.append("no shards on this host")
    for s in snap.shards:
        max_age = snap.supervisor.health_max_cycle_age_s or (3 * s.plan.spec.poll_interval_s + 10)
        if s.state != State.RUNNING:
            extra = f": {s.failed_reason}" if s.failed_reason else ""
            reasons.append(f"shard {s.name} is {s.state}{extra}")
        elif s.last_cycle_at is None:
            reasons.append(f"shard {s.name} has not finished a cycle yet")
        elif now - s.last_cycle_at > max_age:
            reasons.append(
                f"shard {s.name}: last cycle {now - s.last_cycle_at:.1f}s ago (max {max_age:g}s)"
            )
    return not reasons, reasons


def degraded_report(snap: Snapshot) -> list[str]:
    """Live shards that cycle but do not execute (paused: every source account below
    ``min_fee_balance``). They are alive for ``/health``: a restart funds no account."""
    return [f"shard {s.name} is {p}" for s in snap.shards if (p := paused_reason(s))]


def health_document(snap: Snapshot, now: float, *, strict: bool = False) -> dict[str, Any]:
    """The ``GET /health`` document: ``healthy`` (liveness: every shard running with a fresh
    cycle), its ``reasons``, and ``degraded`` (paused shards). ``strict``: a degraded shard
    makes it unhealthy too (for a check that must see a paused keeper)."""
    ok, reasons = health_report(snap, now)
    degraded = degraded_report(snap)
    if strict and degraded:
        ok, reasons = False, reasons + degraded
    return {"healthy": ok, "reasons": reasons, "degraded": degraded}


# ------------------------------------------------------------------------------ summary


def summary_document(snap: Snapshot) -> dict[str, Any]:
    """The ``--summary-json`` document (plus each shard's state and final report)."""
    doc = summary({s.name: (s.totals, s.restarts) for s in snap.shards})
    for s in snap.shards:
        row = doc["shards"][s.name]
        row["state"] = str(s.state)
        if s.failed_reason:
            row["failed_reason"] = s.failed_reason
        if s.final is not None:
            row["final"] = s.final
    return doc


def progress_line(snap: Snapshot, doc: dict[str, Any], last: dict[str, int]) -> str:
    """The periodic progress line: the summary's totals, with what each execution outcome
    and the restarts gained since ``last`` (the previous line's ``doc``)."""
    running = sum(1 for s in snap.shards if s.state == State.RUNNING)
    parts = []
    for key in SUMMARY_FIELDS:
        f = FIELDS_BY_NAME.get(key)
        text = f"{f.log if f is not None and f.log else key} {doc[key]}"
        if key in OUTCOMES or key == "restarts":
            text += f" (+{doc[key] - last.get(key, 0)})"
        parts.append(text)
    return f"progress: {running}/{len(snap.shards)} shards running; " + ", ".join(parts)


# ------------------------------------------------------------------------------ /metrics

STATES = tuple(str(s) for s in State)
#: the supervisor's own per-shard gauges: (name, help, value from a /status shard document)
SHARD_GAUGES: tuple[tuple[str, str, Callable[[dict[str, Any]], Any]], ...] = (
    ("cycle_duration_seconds", "Duration of the last poll cycle",
     lambda s: s["totals"]["last_cycle_duration_s"]),
    ("mean_execution_seconds", "Mean time from send to final status",
     lambda s: s["totals"]["mean_execution_s"]),
    ("last_ledger", "Latest ledger seen", lambda s: s["totals"]["last_ledger"]),
    ("rss_bytes", "Worker resident memory", lambda s: s["rss_bytes"]),
    ("cpu_percent", "Worker CPU use", lambda s: s["cpu_percent"]),
    ("heartbeat_age_seconds", "Seconds since the worker's last message",
     lambda s: s["heartbeat_age_s"]),
    ("last_cycle_age_seconds", "Seconds since the last cycle report",
     lambda s: (s["last_cycle"] or {}).get("age_s")),
)  # fmt: skip
#: the supervisor's own per-shard counters: (name, help, value from a /status shard document)
SHARD_COUNTERS: tuple[tuple[str, str, Callable[[dict[str, Any]], Any]], ...] = (
    ("cycles", "Poll cycles completed", lambda s: s["totals"]["cycles"]),
    ("cycle_errors", "Cycles that ended in an error", lambda s: s["totals"]["cycle_errors"]),
    ("restarts", "Worker restarts", lambda s: s["restarts"]),
    ("failed_retries", "Starts of a failed shard after restart.failed_cooldown_s",
     lambda s: s["failed_retries"]),
    ("memory_restarts", "Workers drained and replaced above restart.max_rss_mb",
     lambda s: s["memory_restarts"]),
)  # fmt: skip


def metric_families(status: dict[str, Any]) -> Iterator[Metric]:
    """Every ``sorotask_*`` family, one series per shard, from a ``/status`` document."""
    shards = status["shards"]
    for f in TOTALLED:
        if f.kind == HISTOGRAM:
            h = HistogramMetricFamily(f.metric_name, f.help, labels=["shard"])
            for s in shards:
                buckets, total = cumulative(f, s["totals"][f.name])
                h.add_metric([s["name"]], buckets, total)
            yield h
            continue
        family = CounterMetricFamily if f.kind == COUNTER else GaugeMetricFamily
        labels = ["shard", f.label] if f.label else ["shard"]
        m = family(f.metric_name, f.help, labels=labels)
        for s in shards:
            value = s["totals"][f.name]
            if f.label:
                for k, v in value.items():
                    m.add_metric([s["name"], k], v)
            else:
                m.add_metric([s["name"]], value)
        yield m
    for name, help_, value_of in SHARD_COUNTERS:
        c = CounterMetricFamily(METRIC_PREFIX + name, help_, labels=["shard"])
        for s in shards:
            c.add_metric([s["name"]], value_of(s))
        yield c
    for name, help_, value_of in SHARD_GAUGES:
        g = GaugeMetricFamily(METRIC_PREFIX + name, help_, labels=["shard"])
        for s in shards:
            v = value_of(s)
            if v is not None:
                g.add_metric([s["name"]], float(v))
        yield g
    state = GaugeMetricFamily(
        METRIC_PREFIX + "shard_state", "1 for the shard's current state", labels=["shard", "state"]
    )
    for s in shards:
        for st in STATES:
            state.add_metric([s["name"], st], 1.0 if s["state"] == st else 0.0)
    yield state
    yield from endpoint_families(shards)


#: an RPC endpoint's states (``shard_worker.endpoints.STATES``)
ENDPOINT_STATES = ("up", "demoted", "open")


def endpoint_families(shards: list[dict[str, Any]]) -> Iterator[Metric]:
    """``sorotask_rpc_endpoint_*``: one series per shard and endpoint (label ``endpoint``: the
    URL without credentials, or the endpoint's name) for shards with ``network.rpc_urls``;
    none at all when no shard has several endpoints."""
    p = METRIC_PREFIX + "rpc_endpoint_"
    labels = ["shard", "endpoint"]
    requests = CounterMetricFamily(p + "requests", "RPC requests sent to it", labels=labels)
    errors = CounterMetricFamily(
        p + "errors",
        "Failed RPC requests by kind (timeout, http_429, stale, ...)",
        labels=[*labels, "kind"],
    )
    opens = CounterMetricFamily(p + "breaker_opens", "Times its breaker opened", labels=labels)
    latency = HistogramMetricFamily(p + "latency_seconds", "RPC request latency", labels=labels)
    lag = GaugeMetricFamily(p + "lag_ledgers", "Ledgers behind the freshest", labels=labels)
    latest = GaugeMetricFamily(p + "latest_ledger", "Latest ledger it reported", labels=labels)
    state = GaugeMetricFamily(
        p + "state",
        "1 for the endpoint's current state (up, demoted, open)",
        labels=[*labels, "state"],
    )
    for s in shards:
        for e in (s.get("endpoints") or {}).get("endpoints") or []:
            key = [s["name"], str(e["endpoint"])]
            requests.add_metric(key, e.get("requests", 0))
            for kind, n in (e.get("errors") or {}).items():
                errors.add_metric([*key, kind], n)
            opens.add_metric(key, e.get("breaker_opens", 0))
            lat = e.get("latency") or {}
            buckets = [(str(le), n) for le, n in lat.get("buckets") or []]
            if buckets:
                latency.add_metric(key, buckets, lat.get("sum_s", 0.0))
            lag.add_metric(key, e.get("lag_ledgers", 0))
            if e.get("latest_ledger") is not None:
                latest.add_metric(key, e["latest_ledger"])
            for st in ENDPOINT_STATES:
                state.add_metric([*key, st], 1.0 if e.get("state") == st else 0.0)
    if any((s.get("endpoints") or {}).get("endpoints") for s in shards):
        yield from (requests, errors, opens, latency, lag, latest, state)


# ------------------------------------------------------------------------------ live


def _self_rss() -> int | None:
    try:
        return psutil.Process().memory_info().rss
    except psutil.Error:
        return None


class View:
    """The documents of a live registry (any thread), and its Prometheus collector."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        #: the previous progress line's totals (main thread only)
        self._last_progress: dict[str, int] = {}

    def status(self) -> dict[str, Any]:
        return status_document(self.registry.snapshot(), time.monotonic(), _self_rss())

    def health(self, *, strict: bool = False) -> dict[str, Any]:
        return health_document(self.registry.snapshot(), time.monotonic(), strict=strict)

    def summary(self) -> dict[str, Any]:
        return summary_document(self.registry.snapshot())

    def progress(self) -> str:
        snap = self.registry.snapshot()
        doc = summary_document(snap)
        line = progress_line(snap, doc, self._last_progress)
        self._last_progress = {k: doc[k] for k in SUMMARY_FIELDS}
        return line

    # prometheus_client collector protocol
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        return metric_families(self.status())
