"""supervisor.view: /status, /health, /metrics, the summary and the progress line, as pure
functions of a registry snapshot and the time."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from shard_worker.spec import SecretRef, WorkerSpec
from supervisor import inbox
from supervisor.config import ShardPlan
from supervisor.messages import Message
from supervisor.registry import Registry, State, SupervisorFacts
from supervisor.view import (
    View,
    health_document,
    health_report,
    metric_families,
    progress_line,
    status_document,
    summary_document,
)

KEY = "G" + "A" * 55
#: every family a supervisor exports (the Grafana dashboard and alerts use these names)
FAMILIES = {
    "sorotask_budget_waits": "counter",
    "sorotask_cpu_percent": "gauge",
    "sorotask_cycle_duration_seconds": "gauge",
    "sorotask_cycle_errors": "counter",
    "sorotask_cycles": "counter",
    "sorotask_failed_retries": "counter",
    "sorotask_fees_spent_stroops": "counter",
    "sorotask_heartbeat_age_seconds": "gauge",
    "sorotask_in_flight": "gauge",
    "sorotask_last_cycle_age_seconds": "gauge",
    "sorotask_last_ledger": "gauge",
    "sorotask_mean_execution_seconds": "gauge",
    "sorotask_memory_restarts": "counter",
    "sorotask_not_sent_by_simulation": "counter",
    "sorotask_queue_depth": "gauge",
    "sorotask_events_seen": "counter",
    "sorotask_read_errors": "counter",
    "sorotask_rescans": "counter",
    "sorotask_restarts": "counter",
    "sorotask_rpc_calls": "counter",
    "sorotask_rpc_errors": "counter",
    "sorotask_rpc_bytes": "counter",
    "sorotask_rpc_failures": "counter",
    "sorotask_rpc_retries": "counter",
    "sorotask_rpc_hedges": "counter",
    "sorotask_send_results": "counter",
    "sorotask_rpc_latency_seconds": "gauge",
    "sorotask_rss_bytes": "gauge",
    "sorotask_shard_state": "gauge",
    "sorotask_sweep_reads": "counter",
    "sorotask_tasks_checked": "counter",
    "sorotask_tasks_due": "counter",
    "sorotask_tasks_due_now": "gauge",
    "sorotask_oldest_overdue_ledgers": "gauge",
    "sorotask_execution_delay_ledgers": "histogram",
    "sorotask_dry_run_would_execute": "counter",
    "sorotask_dry_run_fees_stroops": "counter",
    "sorotask_tasks_executed": "counter",
    "sorotask_tasks_failed": "counter",
    "sorotask_tasks_skipped": "counter",
    "sorotask_tx_errors": "counter",
    "sorotask_fee_charged_stroops": "histogram",
    "sorotask_escalations": "counter",
    "sorotask_inclusion_fee_offered_stroops": "gauge",
    "sorotask_source_balance_stroops": "gauge",
    "sorotask_accounts_out_of_pool": "gauge",
}
SHARD_KEYS = {
    "name",
    "range",
    "pid",
    "state",
    "restarts",
    "failed_retries",
    "memory_restarts",
    "last_cycle",
    "totals",
    "rss_bytes",
    "cpu_percent",
    "heartbeat_age_s",
    "keeper",
    "uptime_s",
    "failed_reason",
    "last_exit_code",
    "paused",
    "replacement_ms",
    "host",
    "endpoints",
}
TOTALS_KEYS = {
    "cycles",
    "tx_errors",
    "checked",
    "due",
    "due_now",
    "oldest_overdue_ledgers",
    "execution_delay_ledgers",
    "would_execute",
    "dry_run_fees",
    "events_seen",
    "rescans",
    "sweep_reads",
    "budget_waits",
    "rpc_bytes",
    "skipped",
    "read_errors",
    "executed",
    "failed",
    "not_sent_by_simulation",
    "success_rate",
    "fees_spent",
    "cycle_errors",
    "mean_cycle_duration_s",
    "last_cycle_duration_s",
    "max_cycle_duration_s",
    "mean_execution_s",
    "in_flight",
    "queue_depth",
    "last_ledger",
    "rpc_calls",
    "rpc_errors",
    "rpc_failures",
    "rpc_retries",
    "rpc_hedges",
    "send_results",
    "rpc_latency_s",
    "fee_charged",
    "escalations",
    "inclusion_fee",
    "source_balance",
    "accounts_out_of_pool",
    "events",
}


def plan(name: str, first: int, last: int | None) -> ShardPlan:
    spec = WorkerSpec(
        name=name,
        rpc_url="http://127.0.0.1:1",
        network_passphrase="Standalone Network ; February 2017",
        contract_id="C" + "A" * 55,
        secret=SecretRef(env="K"),
        range_first=first,
        range_last=last,
        poll_interval_s=2.0,
    )
    return ShardPlan(spec=spec, keeper_public_key=KEY, channel_public_keys=(), host=0)


def running_registry(health_max_cycle_age_s: float | None = None) -> Registry:
    """Shard a runs (two cycles at t=20, t=22), b failed, c runs but has not cycled yet."""
    facts = SupervisorFacts(
        pid=99,
        started_mono=0.0,
        config_path="/c.yaml",
        host_index=0,
        host_count=1,
        health_max_cycle_age_s=health_max_cycle_age_s,
    )
    reg = Registry(facts, [plan("a", 1, 100), plan("b", 101, 200), plan("c", 201, None)])
    with reg.edit("a") as rec:
        rec.worker_started(1001, 10.0)
        hello = {"pid": 1001, "keeper_public_key": KEY, "channel_public_keys": []}
        inbox.dispatch(rec, Message("hello", hello), 11.0)
        for t, executed, due_now, oldest, delays in (
            (20.0, 1, 3, 4, {"1": 1, "sum": 1}),
            (22.0, 2, 2, 5, {"0": 1, "10": 1, "sum": 7}),
        ):
            stats = {
                "checked": 100,
                "due": 3,
                "due_now": due_now,
                "oldest_overdue_ledgers": oldest,
                "execution_delay_ledgers": delays,
                "executed": executed,
                "duration_s": 0.5,
                "mean_execution_s": 2.0,
                "ledger": int(t),
                "skipped": {"not_due": 97},
                "rpc_calls": {"getLedgerEntries": 1},
                "rpc_latency_s": {"getLedgerEntries": 0.01},
                "in_flight": 1,
                # one fee of 50000 stroops a cycle, and one of 200000 in the second
                "fee_charged": (
                    {"100000": 1, "sum": 50_000}
                    if executed == 1
                    else {"100000": 1, "300000": 1, "sum": 250_000}
                ),
                "fees_spent": 50_000 if executed == 1 else 250_000,
                "source_balance": {"GBAL": 500_000_000},
            }
            inbox.dispatch(rec, Message("cycle", {"stats": stats}), t)
        inbox.dispatch(rec, Message("heartbeat", {}), 23.0)
        rec.rss_bytes, rec.cpu_percent = 50_000_000, 3.5
    reg.update("b", state=State.FAILED, failed_reason="crash loop", restarts=5, last_exit_code=1)
    reg.update("b", failed_retries=2, memory_restarts=1)
    with reg.edit("c") as rec:
        rec.worker_started(1003, 21.0)
        hello = {"pid": 1003, "keeper_public_key": KEY, "channel_public_keys": []}
        inbox.dispatch(rec, Message("hello", hello), 21.5)
    return reg


class TestStatus:
    def test_document_shape_and_values(self) -> None:
        doc = status_document(running_registry().snapshot(), now=24.0, self_rss=123)
        assert doc["supervisor"] == {
            "pid": 99,
            "rss_bytes": 123,
            "uptime_s": 24.0,
            "stopping": False,
            "config": "/c.yaml",
            "host_index": 0,
            "host_count": 1,
        }
        a, b, c = doc["shards"]
        assert all(set(s) == SHARD_KEYS for s in doc["shards"])
        assert set(a["totals"]) == TOTALS_KEYS
        assert set(doc["totals"]) == TOTALS_KEYS | {"restarts"}
        assert (a["name"], a["range"], a["pid"], a["state"]) == ("a", [1, 100], 1001, "running")
        assert c["range"] == [201, None] and c["last_cycle"] is None
        assert a["heartbeat_age_s"] == 1.0 and a["uptime_s"] == 14.0
        assert a["last_cycle"]["age_s"] == 2.0 and a["last_cycle"]["executed"] == 2
        assert a["totals"]["executed"] == 3 and a["totals"]["mean_execution_s"] == 2.0
        assert a["totals"]["rpc_latency_s"] == {"getLedgerEntries": 0.01}
        assert a["keeper"] == KEY and a["rss_bytes"] == 50_000_000
        assert b["pid"] is None and b["heartbeat_age_s"] is None and b["uptime_s"] is None
        assert b["failed_reason"] == "crash loop" and b["last_exit_code"] == 1
        assert (b["failed_retries"], b["memory_restarts"]) == (2, 1)
        assert (a["failed_retries"], a["memory_restarts"]) == (0, 0)
        assert doc["totals"]["restarts"] == 5 and doc["totals"]["cycles"] == 2
        assert doc["totals"]["success_rate"] == 1.0
        # due now and the oldest overdue are the latest levels, not sums over cycles
        assert (a["totals"]["due_now"], a["totals"]["oldest_overdue_ledgers"]) == (2, 5)
        assert (doc["totals"]["due_now"], doc["totals"]["oldest_overdue_ledgers"]) == (2, 5)
        assert a["totals"]["execution_delay_ledgers"] == {"0": 1, "1": 1, "10": 1, "sum": 8}

    def test_removed_shards_stay_in_the_total(self) -> None:
        reg = running_registry()
        reg.retire("a")
        doc = status_document(reg.snapshot(), now=24.0)
        assert [s["name"] for s in doc["shards"]] == ["b", "c"]
        assert doc["totals"]["executed"] == 3 and doc["totals"]["restarts"] == 5


class TestStatusTable:
    def test_shows_due_now_and_the_oldest_overdue_not_the_summed_due(self) -> None:
        from supervisor.table import status_table

        doc = status_document(running_registry().snapshot(), now=24.0)
        lines = status_table(doc, "http://x").splitlines()
        header = lines[1].split()
        assert header[5:10] == ["cycles", "checked", "due_now", "overdue_ledgers", "executed"]
        assert "due" not in header
        row_a = lines[2].split()
        assert row_a[0] == "a" and row_a[5:10] == ["2", "200", "2", "5", "3"]
        total = next(line for line in lines if line.startswith("TOTAL")).split()
        assert total[1:7] == ["5", "2", "200", "2", "5", "3"]


class TestHealth:
    def test_names_every_unhealthy_shard(self) -> None:
        ok, reasons = health_report(running_registry().snapshot(), now=24.0)
        assert not ok
        assert reasons == [
            "shard b is failed: crash loop",
            "shard c has not finished a cycle yet",
        ]

    def test_stale_cycle_by_poll_interval_or_setting(self) -> None:
        snap = running_registry().snapshot()
        # default max age: 3 * poll_interval_s + 10 = 16 s after the last cycle (t=22)
        assert "shard a: last cycle" not in " ".join(health_report(snap, 37.0)[1])
        assert "shard a: last cycle 16.5s ago (max 16s)" in health_report(snap, 38.5)[1]
        snap = running_registry(health_max_cycle_age_s=5).snapshot()
        assert "shard a: last cycle 6.0s ago (max 5s)" in health_report(snap, 28.0)[1]

    def test_healthy_when_every_shard_runs_with_a_fresh_cycle(self) -> None:
        reg = running_registry()
        reg.retire("b")
        reg.retire("c")
        assert health_report(reg.snapshot(), 24.0) == (True, [])
        reg.update_facts(stopping=True)
        assert health_report(reg.snapshot(), 24.0) == (False, ["supervisor is stopping"])

    def test_a_paused_shard_is_alive_and_degraded(self) -> None:
        reg = running_registry()
        reg.retire("b")
        reg.retire("c")
        with reg.edit("a") as rec:
            stats = {"checked": 1, "ledger": 23, "paused": "paused: low balance"}
            inbox.dispatch(rec, Message("cycle", {"stats": stats}), 23.0)
        snap = reg.snapshot()
        # liveness: a restart would fund no account, so /health stays 200 and says why
        assert health_report(snap, 24.0) == (True, [])
        assert health_document(snap, 24.0) == {
            "healthy": True,
            "reasons": [],
            "degraded": ["shard a is paused: low balance"],
        }
        assert health_document(snap, 24.0, strict=True) == {
            "healthy": False,
            "reasons": ["shard a is paused: low balance"],
            "degraded": ["shard a is paused: low balance"],
        }
        with reg.edit("a") as rec:  # topped up: the next cycle is not paused
            inbox.dispatch(rec, Message("cycle", {"stats": {"checked": 1, "ledger": 24}}), 24.0)
        assert health_document(reg.snapshot(), 24.5, strict=True)["healthy"] is True

    def test_no_shards_is_unhealthy(self) -> None:
        reg = running_registry()
        for name in reg.names():
            reg.retire(name)
        assert health_report(reg.snapshot(), 24.0) == (False, ["no shards on this host"])


class TestSummaryAndProgress:
    def test_summary_has_states_failures_and_finals(self) -> None:
        reg = running_registry()
        reg.update("a", final={"cycles": 2})
        doc = summary_document(reg.snapshot())
        assert (doc["cycles"], doc["executed"], doc["restarts"]) == (2, 3, 5)
        assert doc["shards"]["a"]["state"] == "running" and doc["shards"]["a"]["final"]
        assert doc["shards"]["b"]["failed_reason"] == "crash loop"
        assert "failed_reason" not in doc["shards"]["c"]

    def test_progress_line_shows_what_outcomes_and_restarts_gained(self) -> None:
        snap = running_registry().snapshot()
        doc = summary_document(snap)
        line = progress_line(snap, doc, {"executed": 1, "restarts": 5})
        assert line == (
            "progress: 2/3 shards running; cycles 2, checked 200, due now 2, "
            "oldest overdue (ledgers) 5, executed 3 (+2), failed 0 (+0), restarts 5 (+0)"
        )

    def test_live_progress_remembers_the_previous_line(self) -> None:
        view = View(running_registry())
        assert "executed 3 (+3)" in view.progress()
        assert "executed 3 (+0)" in view.progress()


class TestMetrics:
    def families(self) -> dict[str, object]:
        doc = status_document(running_registry().snapshot(), now=24.0)
        return {m.name: m for m in metric_families(doc)}

    def test_exports_exactly_the_known_families(self) -> None:
        fams = self.families()
        assert {n: m.type for n, m in fams.items()} == FAMILIES  # type: ignore[attr-defined]

    def test_help_comes_from_the_field_declarations(self) -> None:
        fams = self.families()
        help_ = fams["sorotask_not_sent_by_simulation"].documentation  # type: ignore[attr-defined]
        assert help_ == "Executions not sent because simulation showed no effect"

    def test_series_per_shard_and_label(self) -> None:
        fams = self.families()

        def samples(name: str) -> dict[tuple[str, ...], float]:
            return {
                tuple(s.labels.values()): s.value
                for s in fams[name].samples  # type: ignore[attr-defined]
                if not s.name.endswith("_created")
            }

        assert samples("sorotask_tasks_executed") == {("a",): 3, ("b",): 0, ("c",): 0}
        assert samples("sorotask_tasks_skipped") == {("a", "not_due"): 194}
        assert samples("sorotask_rpc_latency_seconds") == {("a", "getLedgerEntries"): 0.01}
        assert samples("sorotask_restarts")[("b",)] == 5
        assert samples("sorotask_failed_retries")[("b",)] == 2
        assert samples("sorotask_memory_restarts")[("b",)] == 1
        assert samples("sorotask_rss_bytes") == {("a",): 50_000_000.0}  # None is left out
        assert samples("sorotask_source_balance_stroops") == {("a", "GBAL"): 5e8}
        fee = {
            (s.name, tuple(s.labels.values())): s.value
            for s in fams["sorotask_fee_charged_stroops"].samples  # type: ignore[attr-defined]
        }
        # per-bucket counts 2 (<= 100000) and 1 (<= 300000) made cumulative, and their sum
        assert fee[("sorotask_fee_charged_stroops_bucket", ("a", "30000.0"))] == 0
        assert fee[("sorotask_fee_charged_stroops_bucket", ("a", "100000.0"))] == 2
        assert fee[("sorotask_fee_charged_stroops_bucket", ("a", "300000.0"))] == 3
        assert fee[("sorotask_fee_charged_stroops_bucket", ("a", "+Inf"))] == 3
        assert fee[("sorotask_fee_charged_stroops_count", ("a",))] == 3
        assert fee[("sorotask_fee_charged_stroops_sum", ("a",))] == 300_000
        state = samples("sorotask_shard_state")
        assert state[("a", "running")] == 1.0 and state[("a", "failed")] == 0.0
        assert state[("b", "failed")] == 1.0 and sum(state.values()) == 3.0

    def test_execution_delay_is_a_histogram_per_shard(self) -> None:
        fams = self.families()
        got = {
            (s.name, s.labels.get("le")): s.value
            for s in fams["sorotask_execution_delay_ledgers"].samples  # type: ignore[attr-defined]
            if s.labels["shard"] == "a"
        }
        assert got[("sorotask_execution_delay_ledgers_bucket", "0.0")] == 1
        assert got[("sorotask_execution_delay_ledgers_bucket", "1.0")] == 2
        assert got[("sorotask_execution_delay_ledgers_bucket", "5.0")] == 2
        assert got[("sorotask_execution_delay_ledgers_bucket", "10.0")] == 3
        assert got[("sorotask_execution_delay_ledgers_bucket", "+Inf")] == 3
        assert got[("sorotask_execution_delay_ledgers_count", None)] == 3
        assert got[("sorotask_execution_delay_ledgers_sum", None)] == 8

    def test_the_view_is_a_prometheus_collector(self) -> None:
        collectors = CollectorRegistry(auto_describe=False)
        collectors.register(View(running_registry()))
        text = generate_latest(collectors).decode()
        assert 'sorotask_tasks_executed_total{shard="a"} 3.0' in text
        assert 'sorotask_shard_state{shard="b",state="failed"} 1.0' in text
        assert 'sorotask_execution_delay_ledgers_bucket{le="3.0",shard="a"} 2.0' in text
        assert 'sorotask_execution_delay_ledgers_count{shard="b"} 0.0' in text


@pytest.mark.parametrize("stopping", [False, True])
def test_live_status_reads_the_registry(stopping: bool) -> None:
    reg = running_registry()
    reg.update_facts(stopping=stopping)
    doc = View(reg).status()
    assert doc["supervisor"]["stopping"] is stopping and len(doc["shards"]) == 3
