"""The figures of a benchmark run (pure functions of what the run collected): percentiles, CPU
per 1k tasks, RPC requests and bytes per cycle, executions per ledger, the ratio to the seed
design; and the table printed for people."""

from __future__ import annotations

import math
import os
import statistics
from typing import Any

from sorotask.bench.params import BenchParams


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[k]


def _ledger_time(seq0: int, t0: int, ledger_seconds: int) -> Any:
    def first_ledger_at_or_after(ts: int) -> int:
        return seq0 + max(0, math.ceil((ts - t0) / ledger_seconds))

    return first_ledger_at_or_after


def execution_figures(
    execs: list[dict[str, Any]], p: BenchParams, seq0: int, t0: int, ceiling: int, due_tasks: int
) -> dict[str, Any]:
    """Executions per ledger against the ceiling, wasted transactions and the due-to-executed
    delay, from the devnet's record (``devnet_executions``)."""
    by_ledger: dict[int, int] = {}
    wasted = 0
    for e in execs:
        if e["effect"] in ("executed", "failed"):
            by_ledger[e["ledger"]] = by_ledger.get(e["ledger"], 0) + 1
        else:
            wasted += 1
    delays: list[int] = []
    due_ledger = _ledger_time(seq0, t0, p.ledger_seconds)
    interval = p.due_interval_ledgers * p.ledger_seconds
    last: dict[int, int] = {}
    for e in sorted(execs, key=lambda e: (e["ledger"], e["task_id"])):
        if e["effect"] != "executed":
            continue
        prev = last.get(e["task_id"])
        if prev is not None:  # repeat execution: due time known exactly
            delays.append(e["ledger"] - due_ledger(prev + interval))
        last[e["task_id"]] = e["timestamp"]
    per_ledger = None
    if by_ledger:
        lo, hi = min(by_ledger), max(by_ledger)
        span = [by_ledger.get(s, 0) for s in range(lo, hi + 1)]
        per_ledger = statistics.fmean(span)
    rate = due_tasks / p.due_interval_ledgers if p.due_interval_ledgers else 0.0
    return {
        "executions": sum(by_ledger.values()),
        "wasted_transactions": wasted,
        "executions_per_ledger": round(per_ledger, 3) if per_ledger is not None else None,
        "ceiling_per_ledger": ceiling,
        "ceiling_utilisation": round(per_ledger / ceiling, 3) if per_ledger else None,
        "due_rate_per_ledger": round(rate, 3),
        "regime": "backlog" if rate > ceiling else "below ceiling",
        "delay_ledgers": {
            "samples": len(delays),
            "p50": _pct([float(d) for d in delays], 50),
            "p95": _pct([float(d) for d in delays], 95),
            "max": max(delays) if delays else None,
        },
    }


def result_figures(
    p: BenchParams,
    ours: dict[str, Any],
    ex: dict[str, Any],
    seed: dict[str, Any],
    seeding_s: float,
) -> dict[str, Any]:
    """The one JSON object of ``sorotask bench --json`` (``ours`` from the run, ``ex`` from
    :func:`execution_figures`, ``seed`` from the seed design's measurement)."""
    measured: dict[str, list[dict[str, Any]]] = ours["measured"]
    rounds = min(len(v) for v in measured.values()) if measured else 0
    per_round = [max(v[r]["duration_s"] for v in measured.values()) for r in range(rounds)]
    all_cycles = [c for v in measured.values() for c in v]
    checked_per_round = sum(v[0]["checked"] for v in measured.values()) if rounds else 0
    unchanged_cpu = [
        c["cpu_s"] / (c["checked"] / 1000.0)
        for c in all_cycles
        if c.get("cpu_s") is not None
        and c["checked"]
        and c.get("decoded", 0) <= c["checked"] * 0.05
    ]
    changed_cpu = [
        c["cpu_s"] / (c["checked"] / 1000.0)
        for c in ours["changed"].values()
        if c and c.get("cpu_s") is not None and c["checked"]
    ]
    rpc_calls = sum(sum(c.get("rpc_calls", {}).values()) for c in all_cycles)
    bytes_window = ours["stats_after"]["bytes_out"] - ours["stats_before"]["bytes_out"]
    requests_window = ours["stats_after"]["requests"] - ours["stats_before"]["requests"]
    p50 = _pct(per_round, 50)
    p95 = _pct(per_round, 95)
    rss = {n: max(v) for n, v in ours["rss"].items() if v}
    cpu_unchanged = statistics.median(unchanged_cpu) if unchanged_cpu else None
    result: dict[str, Any] = {
        "params": {
            "tasks": p.tasks,
            "shards": p.shards,
            "latency_ms": p.latency_ms,
            "due_fraction": p.due_fraction,
            "cycles": p.cycles,
            "source_accounts": p.source_accounts,
            "due_interval_ledgers": p.due_interval_ledgers,
            "close_every_s": p.close_every,
            "ledger_seconds": p.ledger_seconds,
            "fee_strategy": p.fee_strategy,
            "competing_fee": p.competing_fee,
            "cpu_count": os.cpu_count(),
        },
        "seeding_s": round(seeding_s, 3),
        "ours": {
            "cycle_wall_s": {
                "p50": p50,
                "p95": p95,
                "rounds": rounds,
            },
            "tasks_checked_per_s": round(checked_per_round / p50) if p50 else None,
            "checked_per_round": checked_per_round,
            "rpc_requests_per_cycle": round(rpc_calls / rounds, 1) if rounds else None,
            "rpc_bytes_per_cycle": round(bytes_window / rounds) if rounds else None,
            "devnet_requests_per_cycle": round(requests_window / rounds, 1) if rounds else None,
            "cpu_s_per_1k_unchanged": round(cpu_unchanged, 5) if cpu_unchanged else None,
            "cpu_s_per_1k_changed": round(statistics.median(changed_cpu), 5)
            if changed_cpu
            else None,
            "rss_bytes_per_worker": rss,
            "rss_bytes_max": max(rss.values()) if rss else None,
            **ex,
        },
        "seed": seed,
    }
    ratio: dict[str, float | None] = {}
    if p50:
        ratio["cycle_time"] = round(seed["cycle_s"] / p50, 1)
    if cpu_unchanged:
        ratio["cpu_per_1k"] = round(seed["cpu_s_per_1k"] / cpu_unchanged, 1)
    if result["ours"]["rpc_requests_per_cycle"]:
        ratio["rpc_requests_per_cycle"] = round(
            seed["rpc_requests_per_cycle"] / result["ours"]["rpc_requests_per_cycle"], 1
        )
    result["ratio_vs_seed"] = ratio
    return result


def format_report(r: dict[str, Any]) -> str:
    o, s, p = r["ours"], r["seed"], r["params"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f} ms"

    rows = [
        ("tasks / shards / latency", f"{p['tasks']} / {p['shards']} / {p['latency_ms']} ms"),
        (
            "cycle wall time p50 / p95",
            f"{ms(o['cycle_wall_s']['p50'])} / {ms(o['cycle_wall_s']['p95'])}",
        ),
        (
            "seed design cycle",
            f"{s['cycle_s']:.2f} s"
            + (
                f" (scaled from {s['sample_tasks']} tasks: {s['sample_cycle_s']:.2f} s)"
                if s["cycle_s_is_extrapolated"]
                else ""
            ),
        ),
        ("tasks checked per second", str(o["tasks_checked_per_s"])),
        (
            "RPC requests per cycle",
            f"{o['rpc_requests_per_cycle']} (seed: {s['rpc_requests_per_cycle']})",
        ),
        ("RPC bytes per cycle", f"{(o['rpc_bytes_per_cycle'] or 0) / 2**20:.2f} MiB"),
        ("CPU s per 1k tasks unchanged", str(o["cpu_s_per_1k_unchanged"])),
        ("CPU s per 1k tasks changed", str(o["cpu_s_per_1k_changed"])),
        ("CPU s per 1k tasks, seed", str(s["cpu_s_per_1k"])),
        ("RSS per worker (max)", f"{(o['rss_bytes_max'] or 0) / 2**20:.1f} MiB"),
        (
            "executions per ledger",
            f"{o['executions_per_ledger']} of ceiling {o['ceiling_per_ledger']}"
            f" ({o['regime']}, due rate {o['due_rate_per_ledger']}/ledger)",
        ),
        (
            "due-to-executed delay (ledgers)",
            f"p50 {o['delay_ledgers']['p50']} p95 {o['delay_ledgers']['p95']} "
            f"max {o['delay_ledgers']['max']} (n={o['delay_ledgers']['samples']})",
        ),
        ("wasted transactions", str(o["wasted_transactions"])),
        ("ratio vs seed", ", ".join(f"{k} {v}x" for k, v in r["ratio_vs_seed"].items())),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
