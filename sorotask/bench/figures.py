"""The figures of a benchmark run (pure functions of what the run collected): percentiles, CPU
per 1k tasks, RPC requests and bytes per cycle, executions per ledger, the ratio to the seed
design; and the table printed for people."""

from __future__ import annotations

import bisect
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


def _ledger_time(
    seq0: int, t0: int, ledger_seconds: int, closes: dict[int, int] | None = None
) -> Any:
    """The first ledger whose close time reaches a time: from ``closes`` (ledger -> close time,
    as the devnet recorded them with executions) when it holds that ledger and the one before
    (a devnet's close times drift from the grid by its apply time and round to seconds); else
    from the grid ``t0 + (ledger - seq0) * ledger_seconds``."""
    known = sorted((closes or {}).items())
    times = [t for _, t in known]

    def first_ledger_at_or_after(ts: int) -> int:
        i = bisect.bisect_left(times, ts)
        if 0 < i < len(known) and known[i - 1][0] == known[i][0] - 1:
            return known[i][0]
        return seq0 + max(0, math.ceil((ts - t0) / ledger_seconds))

    return first_ledger_at_or_after


def execution_figures(
    execs: list[dict[str, Any]],
    p: BenchParams,
    seq0: int,
    t0: int,
    ceiling: int,
    due_tasks: int,
    foreign: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Executions per ledger against the ceiling, wasted transactions and the due-to-executed
    delay, from the devnet's record (``devnet_executions``). ``foreign``: other keepers'
    executions; each moves its task's due time (the delay of our next execution of it counts
    from there, and is also reported apart: how soon another keeper's execution is
    reflected)."""
    by_ledger: dict[int, int] = {}
    wasted = 0
    for e in execs:
        if e["effect"] in ("executed", "failed"):
            by_ledger[e["ledger"]] = by_ledger.get(e["ledger"], 0) + 1
        else:
            wasted += 1
    delays: list[int] = []
    after_foreign: list[int] = []
    interval = p.due_interval_ledgers * p.ledger_seconds
    last: dict[int, tuple[int, bool]] = {}
    theirs = [dict(e, foreign=True) for e in foreign or () if e["effect"] == "executed"]
    closes = {e["ledger"]: e["timestamp"] for e in [*execs, *theirs] if "timestamp" in e}
    due_ledger = _ledger_time(seq0, t0, p.ledger_seconds, closes)
    for e in sorted([*execs, *theirs], key=lambda e: (e["ledger"], e["task_id"])):
        if e["effect"] != "executed":
            continue
        prev = last.get(e["task_id"])
        if prev is not None and not e.get("foreign"):  # ours, due time known exactly
            delays.append(e["ledger"] - due_ledger(prev[0] + interval))
            if prev[1]:
                after_foreign.append(delays[-1])
        last[e["task_id"]] = (e["timestamp"], bool(e.get("foreign")))
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
        "delay_ledgers": _spread(delays),
        "delay_after_foreign_execution_ledgers": _spread(after_foreign),
    }


def _spread(values: list[int]) -> dict[str, Any]:
    return {
        "samples": len(values),
        "p50": _pct([float(d) for d in values], 50),
        "p95": _pct([float(d) for d in values], 95),
        "max": max(values) if values else None,
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
            "warmup_ledgers": p.warmup_ledgers,
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
    result["ratio_vs_seed"] = _seed_ratio(seed, result["ours"])
    return result


def _seed_ratio(seed: dict[str, Any], o: dict[str, Any]) -> dict[str, float | None]:
    ratio: dict[str, float | None] = {}
    p50 = o["cycle_wall_s"]["p50"]
    if p50 and seed.get("cycle_s"):
        ratio["cycle_time"] = round(seed["cycle_s"] / p50, 1)
    if o["cpu_s_per_1k_unchanged"] and seed.get("cpu_s_per_1k"):
        ratio["cpu_per_1k"] = round(seed["cpu_s_per_1k"] / o["cpu_s_per_1k_unchanged"], 1)
    if o["rpc_requests_per_cycle"] and seed.get("rpc_requests_per_cycle"):
        ratio["rpc_requests_per_cycle"] = round(
            seed["rpc_requests_per_cycle"] / o["rpc_requests_per_cycle"], 1
        )
    return ratio


#: the seed design's keys when it was not measured (``--skip-seed``)
NO_SEED: dict[str, Any] = {
    "sample_tasks": 0,
    "sample_cycle_s": None,
    "sample_checked": 0,
    "sample_read_errors": 0,
    "cycle_s": None,
    "cycle_s_is_extrapolated": False,
    "cpu_s_per_1k": None,
    "rpc_requests_per_cycle": None,
}


def mode_figures(
    p: BenchParams,
    runs: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]],
    seed: dict[str, Any] | None,
    seeding_s: float,
) -> dict[str, Any]:
    """The JSON of a run over one or more read modes: today's keys for the first mode, with
    ``rpc_requests_per_cycle`` and ``rpc_bytes_per_cycle`` per ledger in steady state (every
    shard, from the shards' totals) and ``initial_sync_s``; ``modes`` holds each mode's
    ``ours``; ``events_vs_ledger_entries`` the ratios when both ran."""
    seed = seed or dict(NO_SEED)
    first: dict[str, Any] | None = None
    modes: dict[str, dict[str, Any]] = {}
    for mode, ours, ex, latency in runs:
        r = result_figures(p, ours, ex, seed, seeding_s)
        o = r["ours"]
        o["read_mode"] = mode
        o["rpc_requests_per_cycle"] = ours["steady"]["requests_per_ledger"]
        o["rpc_bytes_per_cycle"] = ours["steady"]["bytes_per_ledger"]
        o["initial_sync_s"] = ours["initial_sync_s"]
        o["steady_state"] = ours["steady"]
        o["change_to_action_ledgers"] = latency
        r["ratio_vs_seed"] = _seed_ratio(seed, o)
        modes[mode] = o
        if first is None:
            first = r
    assert first is not None
    first["params"]["read_modes"] = [m for m, *_ in runs]
    first["params"]["change_fraction"] = p.change_fraction
    first["modes"] = modes
    if "events" in modes and "ledger_entries" in modes:
        ev, le = modes["events"]["steady_state"], modes["ledger_entries"]["steady_state"]

        def ratio(key: str) -> float | None:
            return round(le[key] / ev[key], 1) if ev[key] else None

        first["events_vs_ledger_entries"] = {
            "requests": ratio("requests_per_ledger"),
            "bytes": ratio("bytes_per_ledger"),
            "read_requests": ratio("read_requests_per_ledger"),
            "read_bytes": ratio("read_bytes_per_ledger"),
        }
    return first


def format_report(r: dict[str, Any]) -> str:
    o, s, p = r["ours"], r["seed"], r["params"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f} ms"

    rows = [
        ("tasks / shards / latency", f"{p['tasks']} / {p['shards']} / {p['latency_ms']} ms"),
        ("read mode", str(o.get("read_mode", "ledger_entries"))),
        ("initial sync", f"{o.get('initial_sync_s')} s"),
        (
            "cycle wall time p50 / p95",
            f"{ms(o['cycle_wall_s']['p50'])} / {ms(o['cycle_wall_s']['p95'])}",
        ),
        (
            "seed design cycle",
            "-"
            if s["cycle_s"] is None
            else f"{s['cycle_s']:.2f} s"
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
    for mode, m in r.get("modes", {}).items():
        lat = m["change_to_action_ledgers"]
        reg = lat.get("registered") or {}
        fx = m.get("delay_after_foreign_execution_ledgers") or {}
        rows.append(
            (
                f"{mode}: per ledger",
                f"{m['rpc_requests_per_cycle']} requests, "
                f"{(m['rpc_bytes_per_cycle'] or 0) / 2**20:.3f} MiB (reads: "
                f"{m['steady_state']['read_requests_per_ledger']} requests, "
                f"{m['steady_state']['read_bytes_per_ledger'] / 2**20:.3f} MiB); initial sync "
                f"{m['initial_sync_s']} s; change-to-action p50 {lat['p50']} p95 {lat['p95']}"
                f" (n={lat['samples']}), registered p50 {reg.get('p50')} p95 {reg.get('p95')}"
                f" (n={reg.get('samples')}); delay p95 {m['delay_ledgers']['p95']}, after "
                f"another keeper's execution p95 {fx.get('p95')} (n={fx.get('samples')}); "
                f"CPU {m['steady_state'].get('cpu_ms_per_1k_tasks_per_ledger')} ms per 1k "
                f"tasks a ledger; RSS max {(m['rss_bytes_max'] or 0) / 2**20:.1f} MiB",
            )
        )
    if r.get("events_vs_ledger_entries"):
        ratio = r["events_vs_ledger_entries"]
        rows.append(
            (
                "events vs ledger_entries",
                f"{ratio['requests']}x fewer requests, {ratio['bytes']}x fewer bytes (reads: "
                f"{ratio['read_requests']}x, {ratio['read_bytes']}x)",
            )
        )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
