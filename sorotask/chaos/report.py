"""The chaos report read by people: the summary printed after a run and the paragraph that
explains how late windows are accounted for (the JSON report is built by the soak and target
runs themselves)."""

from __future__ import annotations

import sys
from typing import Any

from sorotask.chaos.params import ChaosParams


def say(quiet: bool, msg: str) -> None:
    """A progress line on stderr (not with ``quiet``)."""
    if not quiet:
        print(f"chaos: {msg}", file=sys.stderr, flush=True)


def accounting_text(p: ChaosParams) -> str:
    return (
        f"Ledgers close every {p.close_every:g} s and advance {p.ledger_seconds} s of ledger time; "
        f"keepers poll every {p.poll_interval_s:g} s (half a ledger), so a task due at ledger D "
        f"can be executed in ledger D+1. A due window longer than {p.late_ledgers} ledgers is "
        "late; it is attributed when it overlaps a recorded cause (a kill or stop of its own "
        "shard until that shard ran a cycle again, a devnet fault phase, start-up) and ends "
        f"within hold ({p.hold_ledgers} ledgers = ceil(tx_timeout_s {p.tx_timeout_s} / "
        f"{p.ledger_seconds}) + 2: a transaction in flight when the cause ended holds its task "
        f"until its time bound passes) + {p.late_ledgers} ledgers of the cause's end. Every "
        "other late window is a violation."
    )


def format_summary(r: dict[str, Any]) -> str:
    """The readable summary of a report."""
    c = r.get("chaos") or {}
    rec = c.get("recover_s") or {}
    lines = [f"sorotask chaos ({r.get('mode')}): {'OK' if r.get('ok') else 'INVARIANT VIOLATED'}"]
    if c:
        lines += [
            f"  kills              {c.get('kills')}",
            f"  stops              {c.get('stops')} ({c.get('hung_stops')} long enough to be "
            f"hung, {c.get('short_stops')} short)",
            f"  restarts           {c.get('restarts')} (expected {c.get('expected_restarts')})",
            f"  time to recover    mean {rec.get('mean')} s, max {rec.get('max')} s "
            f"(kill -> running with a cycle; supervisor-measured first cycle mean "
            f"{(c.get('supervisor_first_cycle_ms') or {}).get('mean')} ms)",
        ]
    st = r.get("status")
    if st:
        lines.append(
            f"  /status            {st['polls']} polls, {st['failures']} failures, max "
            f"{st['max_latency_s']} s"
        )
    if r.get("mode") in ("soak", "hostile", "endpoints") and "analysis" in r:
        a = r["analysis"]
        d = a["delay_ledgers"]
        lw = a["late_windows"]
        lines += [
            f"  ledgers            {r['ledgers']['count']} "
            f"(close every {r['params']['close_every']} s, poll every "
            f"{r['params']['poll_interval_s']} s)",
            f"  executions         {r['executions']}",
            f"  wasted txs         {r['wasted']} {r['wasted_by_effect']}",
            f"  executed twice     {len(a['executed_twice_in_one_window'])}",
            f"  due->executed      max {d['max']} ledgers, mean {d['mean']} "
            f"(histogram {d['histogram']})",
            f"  late windows       {len(lw)} (> {r['params']['late_ledgers']} ledgers): by cause "
            f"{a['late_windows_by_cause']}; violations {len(a['late_violations'])}",
            f"  fault phases       {', '.join(f['fault'] for f in r.get('faults', []))}",
        ]
        for w in lw[:10]:
            lines.append(
                f"    task {w['task_id']} {w['shard']} due {w['due_ledger']} executed "
                f"{w['executed_ledger']} ({w['waited_ledgers']} ledgers): {w['verdict']} "
                f"{', '.join(w['causes'])}"
            )
        if len(lw) > 10:
            lines.append(f"    ... {len(lw) - 10} more in the JSON report")
        lines.append(
            f"  processes left     {len(r.get('processes_left', []))} of "
            f"{r.get('processes_seen')} seen"
        )
        lines.append("  accounting: " + r.get("accounting", ""))
    h = r.get("hostile")
    if h:
        rep, first = h["lateness"]["repeat"], h["lateness"]["first"]
        lines.append(
            f"  hostile mix        ledgers {h['lateness']['window']}, kills every "
            f"{h['kill_every'] or '-'} s: {h['mix']}"
        )
        lines.append(
            f"  lateness (repeat)  p50 {rep['p50']} p95 {rep['p95']} p99 {rep['p99']} max "
            f"{rep['max']} ledgers over {rep['samples']} executions (first executions: p99 "
            f"{first['p99']}, max {first['max']})"
        )
        lines.append(
            "  targets            "
            + ", ".join(
                f"{k} {t['value']}{'' if t['met'] else ' MISSED'} (<= {t['limit']})"
                for k, t in h["targets"].items()
            )
        )
    eps = r.get("endpoints")
    if eps:
        lines.append(f"  devnet requests    per replica {eps.get('devnet_requests')}")
        for shard, figs in sorted((eps.get("during_faults") or {}).items()):
            states = ", ".join(
                f"{e['endpoint']} {e['state']}"
                + (f" ({','.join(e['reasons'])})" if e.get("reasons") else "")
                for e in figs
            )
            lines.append(f"  endpoints {shard:<8} {states}")
    for v in r.get("violations", []):
        lines.append(f"  VIOLATION: {v}")
    return "\n".join(lines)
