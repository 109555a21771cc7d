"""The statistics a keeper reports for each poll cycle, each field declared once.

A field's declaration gives its name (the keeper's ``CycleStats`` attribute and the key in the
``cycle`` pipe message), its kind, its value type and one line of help. From
:data:`CYCLE_FIELDS` come ``shard_worker.spec.CycleStats``, the check of the ``cycle`` message
(``supervisor.messages``), the shard totals (``supervisor.stats``), ``/status``, ``/metrics``
and the keeper's cycle log line. A new counter is one line here (and the keeper code that
counts it).

Kinds:

``counter``
    How many this cycle. Summed over cycles into the shard's totals (and across shards into the
    supervisor's), shown in ``/status`` totals and exported as the Prometheus counter
    ``sorotask_<metric>_total`` labelled by shard.
``gauge``
    A level at the end of the cycle. The totals keep the latest one (summed across shards;
    a labelled gauge is not summed); exported as the gauge ``sorotask_<metric>``.
``cycle``
    About this cycle only: in the report, ``/status`` ``last_cycle`` and the log line, not
    totalled. (The supervisor derives a few totals from some of them itself: the cycle
    duration, the mean execution time, the latest ledger, the cycles with an error.)
``histogram``
    Observations this cycle, binned by ``buckets``: a ``{upper bound: count}`` dict (each
    observation counted once, in the first bucket it fits; ``"+Inf"`` above the last) with
    the observations' ``"sum"``. Summed like a labelled counter; exported as the Prometheus
    histogram ``sorotask_<metric>`` (cumulative ``_bucket``, ``_sum``, ``_count``) by shard.
    :func:`observe` adds one observation.

A labelled field (``label`` set) is a ``{label value: number}`` dict, e.g. skipped by reason.
Every number is at least 0. A histogram (``buckets`` set) is a labelled counter whose label is
the bucket's upper bound ``le`` (each observation counted in its own bucket only, ``+Inf``
above the last); /metrics exports it as a Prometheus histogram, its sum from the counter named
by ``sum_of``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["counter", "gauge", "cycle", "histogram"]
COUNTER: Kind = "counter"
GAUGE: Kind = "gauge"
CYCLE: Kind = "cycle"
HISTOGRAM: Kind = "histogram"
#: a histogram's key for the sum of its observations, and for those above its last bucket
HIST_SUM = "sum"
HIST_INF = "+Inf"
#: prefix of every exported metric name
METRIC_PREFIX = "sorotask_"
#: "no default given" (then the default is ``{}``, None or the type's zero)
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


@dataclass(frozen=True, slots=True)
class StatField:
    """One field of a cycle's statistics."""

    name: str
    kind: Kind
    #: int, float, bool or str; for a labelled field the type of each value
    type: type
    #: one line; the HELP text of its metric
    help: str
    #: a labelled field is a ``{label value: number}`` dict; this names the label
    label: str | None = None
    #: exported metric name after ``sorotask_`` (counters get ``_total``); default: ``name``
    metric: str | None = None
    #: the words before its value in the keeper's cycle log line (None: not logged)
    log: str | None = None
    #: a column of the run summary (``--summary-json``, the summary table, the progress line)
    summary: bool = False
    #: an execution outcome: it can grow after the last cycle (transactions confirmed while a
    #: worker drains), so the goodbye's final count tops the totals up; the progress line shows
    #: what it gained
    outcome: bool = False
    #: no default: the keeper sets it when it makes the report
    required: bool = False
    #: None is allowed (and is the default)
    nullable: bool = False
    #: the default when not ``required``
    default: Any = UNSET
    #: in the log line only when not zero
    quiet: bool = False
    #: a histogram's bucket upper bounds, ascending
    buckets: tuple[float, ...] = ()
    #: how shards combine in the overall total and the summary: summed, or the largest
    across: Literal["sum", "max"] = "sum"

    @property
    def labelled(self) -> bool:
        return self.label is not None

    @property
    def summed(self) -> bool:
        """Summed over cycles: a counter (labelled or not) or a histogram."""
        return self.kind in (COUNTER, HISTOGRAM)

    @property
    def totalled(self) -> bool:
        """Kept in the shard totals and exported to /metrics."""
        return self.kind != CYCLE

    @property
    def metric_name(self) -> str:
        return METRIC_PREFIX + (self.metric or self.name)

    @property
    def annotation(self) -> Any:
        """The Python type of the attribute."""
        if self.labelled:
            return dict[str, self.type]  # type: ignore[name-defined]
        return self.type | None if self.nullable else self.type

    def make_default(self) -> Any:
        if self.default is not UNSET:
            return self.default
        if self.labelled:
            return {}
        if self.nullable:
            return None
        return self.type()

    def dataclass_field(self) -> tuple[str, Any, Any]:
        """``(name, type, dataclasses.field)`` for ``dataclasses.make_dataclass``."""
        if self.required:
            return (self.name, self.annotation, field())
        if self.labelled:
            return (self.name, self.annotation, field(default_factory=dict))
        return (self.name, self.annotation, field(default=self.make_default()))


def _f(name: str, kind: Kind, type_: type, help_: str, **extra: Any) -> StatField:
    return StatField(name, kind, type_, help_, **extra)


#: the fee-charged histogram's buckets (stroops)
FEE_BUCKETS: tuple[int, ...] = (
    1_000,
    10_000,
    30_000,
    100_000,
    300_000,
    1_000_000,
    3_000_000,
    10_000_000,
)


# fmt: off
#: every field of a cycle's statistics: those without a default first, then in log-line order
CYCLE_FIELDS: tuple[StatField, ...] = (
    _f("shard", CYCLE, str, "Shard name", required=True),
    _f("cycle", CYCLE, int, "Cycle number within this worker process", required=True),
    _f("ledger", CYCLE, int, "Latest ledger at the cycle's start", required=True),
    _f("ledger_time", CYCLE, int, "That ledger's close time (unix seconds)", required=True),
    _f("started_at", CYCLE, float, "Wall-clock start of the cycle (unix seconds)", required=True),
    _f("duration_s", CYCLE, float, "Duration of the cycle in seconds", required=True),
    _f("checked", COUNTER, int, "Tasks checked, summed over cycles", metric="tasks_checked",
       log="checked", summary=True),
    _f("due", COUNTER, int, "Tasks found due, summed over cycles", metric="tasks_due",
       log="due"),
    _f("due_now", GAUGE, int, "Tasks due at the latest ledger read and not yet executed",
       metric="tasks_due_now", log="due now", summary=True),
    _f("oldest_overdue_ledgers", GAUGE, int,
       "Ledgers since the most overdue of the tasks due now became due",
       log="oldest overdue (ledgers)",
       summary=True, across="max"),
    _f("executed", COUNTER, int, "Execute transactions that succeeded", metric="tasks_executed",
       log="executed", summary=True, outcome=True),
    _f("failed", COUNTER, int, "Execute transactions that failed", metric="tasks_failed",
       log="failed", summary=True, outcome=True),
    _f("not_sent_by_simulation", COUNTER, int,
       "Executions not sent because simulation showed no effect", log="not sent", outcome=True),
    _f("read_errors", COUNTER, int, "Task read errors", log="read errors"),
    _f("decoded", CYCLE, int, "Task entries decoded (changed since the last cycle)",
       log="decoded"),
    _f("in_flight", GAUGE, int, "Transactions in flight", log="in flight"),
    _f("queue_depth", GAUGE, int, "Execution queue depth", log="queue"),
    _f("fees_spent", COUNTER, int, "Fees spent", metric="fees_spent_stroops", log="fees",
       outcome=True),
    _f("skipped", COUNTER, int, "Tasks skipped, by reason", label="reason",
       metric="tasks_skipped", log="skipped"),
    _f("rpc_calls", COUNTER, int, "RPC calls by method", label="method", log="rpc calls"),
    _f("rpc_errors", COUNTER, int, "RPC errors by method", label="method", log="rpc errors"),
    _f("rpc_failures", COUNTER, int,
       "Failed RPC attempts by kind (queue_full, exec_timeout, http_503, http_429, timeout, ...)",
       label="kind", log="rpc failures"),
    _f("rpc_retries", COUNTER, int, "RPC attempts retried, by the kind of the failure",
       label="kind", log="rpc retries"),
    _f("rpc_hedges", COUNTER, int,
       "RPC copies started while another copy of the request was out (hedged), by method",
       label="method", log="rpc hedges"),
    _f("send_results", COUNTER, int,
       "Answers to sendTransaction by name (PENDING, DUPLICATE, TRY_AGAIN_LATER, txTOO_LATE, ...)",
       label="result", log="sends"),
    _f("rpc_latency_s", GAUGE, float, "Mean RPC latency by method (last cycle)",
       label="method", metric="rpc_latency_seconds"),
    _f("mean_execution_s", CYCLE, float,
       "Mean time from send to final status of the executions finished this cycle"),
    _f("cycle_error", CYCLE, str, "Why the cycle ended early, if it did", nullable=True,
       log="cycle error"),
    _f("cpu_s", CYCLE, float, "CPU seconds the worker process used during the cycle"),
    _f("archived", CYCLE, int,
       "Task entries seen archived (executed or skipped per execute_archived)"),
    _f("new_ledger", CYCLE, bool, "False when the ledger had not advanced (nothing was read)",
       default=True),
    _f("tx_errors", COUNTER, int,
       "Transactions rejected by sendTransaction (ERROR) or expired unapplied"),
    _f("would_execute", COUNTER, int,
       "Due tasks a dry run would have executed (simulated, never signed or sent)",
       metric="dry_run_would_execute", log="would execute", quiet=True),
    _f("dry_run_fees", COUNTER, int, "Fees the dry run's would-be executions would offer",
       metric="dry_run_fees_stroops", log="would cost", quiet=True),
    _f("execution_delay_ledgers", HISTOGRAM, int,
       "Ledgers from a task becoming due to its successful execution", label="le",
       buckets=(0, 1, 2, 3, 5, 10, 20, 50)),
    _f("fee_charged", HISTOGRAM, int, "Fee charged per applied transaction (stroops)",
       label="le", metric="fee_charged_stroops", buckets=FEE_BUCKETS),
    _f("escalations", COUNTER, int,
       "Resends with a higher inclusion fee after txINSUFFICIENT_FEE or expiry",
       log="escalations"),
    _f("inclusion_fee", GAUGE, int, "Inclusion fee offered by the latest transaction sent",
       metric="inclusion_fee_offered_stroops"),
    _f("source_balance", GAUGE, int, "Balance of each source account (stroops)",
       label="account", metric="source_balance_stroops"),
    _f("accounts_out_of_pool", GAUGE, int,
       "Source accounts below min_fee_balance (out of the pool)", log="accounts out"),
    _f("paused", CYCLE, str, "Why the shard sends nothing (paused: low balance), if it does not",
       nullable=True, log="paused"),
    _f("events_seen", COUNTER, int, "Contract events (register, deposit, withdraw) followed"),
    _f("rescans", COUNTER, int, "Full re-reads of every task entry (start, lost events position)"),
    _f("sweep_reads", COUNTER, int, "Task entries re-read by the background sweep"),
    _f("budget_waits", COUNTER, int,
       "RPC requests that waited for the max_requests_per_s budget, by priority (due, ledger, "
       "sweep, rescan)", label="priority"),
    _f("rpc_bytes", COUNTER, int, "Bytes of RPC answers received (HTTP bodies) by method",
       label="method"),
)
# fmt: on

FIELDS_BY_NAME: dict[str, StatField] = {f.name: f for f in CYCLE_FIELDS}
#: the fields kept in the totals and exported to /metrics (counters, gauges, histograms)
TOTALLED: tuple[StatField, ...] = tuple(
    f for kind in (COUNTER, GAUGE, HISTOGRAM) for f in CYCLE_FIELDS if f.kind == kind
)
#: the summary's columns between ``cycles`` and ``restarts``
SUMMARY: tuple[str, ...] = tuple(f.name for f in CYCLE_FIELDS if f.summary)
#: the counts a worker's goodbye may top up
OUTCOMES: tuple[str, ...] = tuple(f.name for f in CYCLE_FIELDS if f.outcome)


def problem(f: StatField, value: Any) -> str | None:
    """Why ``value`` (decoded from JSON) is not a valid value of ``f``; None if it is."""
    if value is None:
        return None if f.nullable else "is null"
    if f.labelled:
        if not isinstance(value, dict):
            return "is not an object"
        for k, v in value.items():
            if not isinstance(k, str) or _scalar_problem(f.type, v):
                return f"[{k!r}] is not a number >= 0"
        return None
    return _scalar_problem(f.type, value)


def _scalar_problem(type_: type, v: Any) -> str | None:
    if type_ is bool:
        return None if isinstance(v, bool) else "is not a boolean"
    if type_ is str:
        return None if isinstance(v, str) else "is not a string"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return "is not a number"
    if type_ is int and not isinstance(v, int):
        return "is not an integer"
    if not (0 <= v < float("inf")):
        return "is not a finite number >= 0"
    return None


def bucket_key(bound: float) -> str:
    """A bucket's key in a histogram dict (``"5"``, ``"0.25"``)."""
    return f"{bound:g}"


def observe(f: StatField, hist: dict[str, Any], value: float) -> None:
    """Add one observation ``value`` (>= 0) to the histogram dict ``hist`` of field ``f``."""
    key = next((bucket_key(b) for b in f.buckets if value <= b), HIST_INF)
    hist[key] = hist.get(key, 0) + 1
    hist[HIST_SUM] = hist.get(HIST_SUM, 0) + value


def cumulative(f: StatField, hist: dict[str, Any]) -> tuple[list[tuple[str, float]], float]:
    """``([(le, cumulative count), ... ("+Inf", count)], sum)`` of a histogram dict, for
    Prometheus (``le`` written as the client library writes it: ``"1.0"``)."""
    out: list[tuple[str, float]] = []
    running = 0.0
    for b in f.buckets:
        running += hist.get(bucket_key(b), 0)
        out.append((str(float(b)), running))
    running += hist.get(HIST_INF, 0)
    out.append((HIST_INF, running))
    return out, float(hist.get(HIST_SUM, 0))


def format_cycle(stats: Any) -> str:
    """The cycle's log line, from any object with the fields as attributes."""
    head = (
        f"cycle {stats.cycle} ledger {stats.ledger} ({stats.duration_s * 1000:.0f} ms): "
        + ", ".join(
            f"{f.log} {getattr(stats, f.name)}"
            for f in CYCLE_FIELDS
            if f.log
            and not f.labelled
            and not f.nullable
            and not (f.quiet and not getattr(stats, f.name))
        )
    )
    parts = [head]
    for f in CYCLE_FIELDS:
        if not f.log:
            continue
        value = getattr(stats, f.name)
        if f.labelled and value:
            parts.append(f"{f.log}: " + ", ".join(f"{k}={v}" for k, v in sorted(value.items())))
        elif f.nullable and value is not None:
            parts.append(f"{f.log}: {value}")
    return "; ".join(parts)
