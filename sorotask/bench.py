"""``sorotask bench``: our sharded keeper against the seed design, side by side on one devnet.

One run:

1. starts a devnet with ``--latency-ms L`` on every request and seeds N tasks: a fraction
   ``F`` recur every ``--due-interval-ledgers`` ledgers (the due work), the rest are not due;
2. measures the seed design (one process, ``simulateTransaction`` of ``get_task`` per task, 10
   reads in flight) on an evenly spaced sample of the tasks; its cycle is N/10 sequential round
   trips plus per-task work, so it is reported both as measured and scaled linearly to N;
3. runs the real supervisor (``sorotask run --config``) with K shards and S source accounts per
   shard for C read cycles per shard, watching ``/status``; then changes every task entry at
   once (``devnet_touchTasks``) to measure a cycle in which everything changed;
4. reads the devnet's own record (``devnet_stats``, ``devnet_executions``) for RPC requests and
   bytes, executions per ledger and due-to-executed delay.

Nothing here is asserted: it prints figures (``--json``: one object) for people to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sorotask.exitcodes import ExitCode

NOT_DUE_INTERVAL = 10**15  # seconds: never due during a bench (ledger time is ~1.8e9)


@dataclass(slots=True)
class BenchParams:
    tasks: int = 10_000
    shards: int = 4
    latency_ms: float = 50.0
    due_fraction: float = 0.01
    cycles: int = 10
    source_accounts: int = 1
    due_interval_ledgers: int = 3
    seed_sample: int = 1000
    close_every: float = 1.0
    ledger_seconds: int = 5
    poll_interval_s: float = 1.0
    max_concurrent_reads: int = 10
    timeout_s: float = 600.0


@dataclass(slots=True)
class _ShardCycles:
    read: list[dict[str, Any]] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[k]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


def _seed(dn: Any, p: BenchParams) -> int:
    """Seed N tasks in blocks of 50, a fraction F of each block due (recurring), so the due
    tasks are spread evenly over the id space and so over the shards."""
    block = 50
    due_interval = p.due_interval_ledgers * p.ledger_seconds
    batch: list[dict[str, Any]] = []
    due_total = 0
    carry = 0.0
    remaining = p.tasks
    while remaining > 0:
        n = min(block, remaining)
        carry += n * p.due_fraction
        due = min(n, int(carry))
        carry -= due
        due_total += due
        if due:
            batch.append({"count": due, "interval": due_interval, "last_run": 0})
        if n - due:
            batch.append({"count": n - due, "interval": NOT_DUE_INTERVAL, "last_run": 0})
        remaining -= n
    # one JSON-RPC batch per 1000 seed calls: the injected latency is paid once per batch
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(batch), 1000):
            reqs = [
                {"jsonrpc": "2.0", "id": j, "method": "devnet_seedTasks", "params": params}
                for j, params in enumerate(batch[i : i + 1000])
            ]
            resp = client.post(dn.info.rpc_url, json=reqs)
            resp.raise_for_status()
            for item in resp.json():
                if "error" in item:
                    raise RuntimeError(f"devnet_seedTasks: {item['error']}")
    return due_total


def _measure_seed(dn: Any, p: BenchParams) -> dict[str, Any]:
    from sorotask.seed_keeper import SeedKeeper

    sample = min(p.tasks, p.seed_sample)
    step = p.tasks / sample
    ids = sorted({1 + int(i * step) for i in range(sample)})

    async def go() -> list[Any]:
        keeper = SeedKeeper(
            dn.info.rpc_url,
            dn.info.network_passphrase,
            dn.info.contract_id,
            max_concurrent_reads=10,
        )
        try:
            return [await keeper.poll_cycle(ids) for _ in range(2)]
        finally:
            await keeper.close()

    results = asyncio.run(go())
    last = results[-1]
    scale = p.tasks / len(ids)
    return {
        "sample_tasks": len(ids),
        "sample_cycle_s": round(last.duration_s, 4),
        "sample_checked": last.checked,
        "sample_read_errors": last.read_errors,
        "cycle_s": round(last.duration_s * scale, 3),
        "cycle_s_is_extrapolated": scale != 1.0,
        "cpu_s_per_1k": round(last.cpu_s / (len(ids) / 1000.0), 4),
        "rpc_requests_per_cycle": round(last.rpc_calls * scale),
    }


def _keys(n: int) -> list[Any]:
    from stellar_sdk import Keypair

    return [Keypair.random() for _ in range(n)]


def _write_config(tmp: Path, dn: Any, p: BenchParams, status_port: int) -> Path:
    import yaml

    keepers = _keys(p.shards)
    channels = _keys(p.shards * (p.source_accounts - 1))
    dn.rpc("devnet_fund", {"addresses": [k.public_key for k in keepers + channels]})
    for i, kp in enumerate(keepers, 1):
        _write_secret(tmp / f"keeper-{i}", kp.secret)
        for c in range(1, p.source_accounts):
            ch = channels[(i - 1) * (p.source_accounts - 1) + (c - 1)]
            _write_secret(tmp / f"keeper-{i}-ch-{c}", ch.secret)
    split: dict[str, Any] = {
        "range": [1, p.tasks],
        "count": p.shards,
        "name_pattern": "shard-{index}",
        "secret_file_pattern": str(tmp / "keeper-{index}"),
    }
    if p.source_accounts > 1:
        split["channels"] = p.source_accounts - 1
        split["channel_secret_file_pattern"] = str(tmp / "keeper-{index}-ch-{channel}")
    cfg = {
        "network": {
            "rpc_url": dn.info.rpc_url,
            "network_passphrase": dn.info.network_passphrase,
            "contract_id": dn.info.contract_id,
        },
        "worker": {
            "poll_interval_s": p.poll_interval_s,
            "read_mode": "ledger_entries",
            "max_concurrent_reads": p.max_concurrent_reads,
            "max_concurrent_executions": p.source_accounts,
        },
        "supervisor": {
            "status_address": f"127.0.0.1:{status_port}",
            "log_dir": str(tmp / "logs"),
            "state_dir": str(tmp / "state"),
            "log_level": "WARNING",
            "heartbeat_timeout_s": 30,
        },
        "split": split,
    }
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class _Watcher:
    """Collects every read cycle of every shard from ``/status`` (polled every 50 ms)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=5)
        self.shards: dict[str, _ShardCycles] = {}
        self.rss: dict[str, list[int]] = {}
        self.doc: dict[str, Any] = {}

    def poll(self) -> None:
        try:
            resp = self.client.get(self.url + "/status")
            doc = resp.json()
        except (httpx.HTTPError, ValueError):
            return
        self.doc = doc
        for s in doc.get("shards", []):
            rec = self.shards.setdefault(s["name"], _ShardCycles())
            if s.get("rss_bytes"):
                self.rss.setdefault(s["name"], []).append(int(s["rss_bytes"]))
            cyc = s.get("last_cycle")
            if not cyc or cyc.get("cycle") in rec.seen:
                continue
            rec.seen.add(cyc["cycle"])
            if cyc.get("new_ledger", True) and not cyc.get("cycle_error") and cyc.get("checked"):
                rec.read.append(cyc)

    def wait(self, pred: Any, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"supervisor exited early with code {proc.returncode}")
            self.poll()
            if pred():
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.close()


def _run_ours(dn: Any, p: BenchParams, tmp: Path) -> dict[str, Any]:
    port = _free_port()
    cfg = _write_config(tmp, dn, p, port)
    log = (tmp / "supervisor.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sorotask.cli", "run", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    watcher = _Watcher(f"http://127.0.0.1:{port}")
    warmup = 1
    try:
        # the devnet's byte counter at the start and end of the measured rounds
        watcher.wait(
            lambda: (
                len(watcher.shards) == p.shards
                and all(len(s.read) >= warmup for s in watcher.shards.values())
            ),
            p.timeout_s,
            proc,
        )
        stats_before = dn.stats()
        ok = watcher.wait(
            lambda: (
                len(watcher.shards) == p.shards
                and all(len(s.read) >= warmup + p.cycles for s in watcher.shards.values())
            ),
            p.timeout_s,
            proc,
        )
        stats_after = dn.stats()
        measured = {n: s.read[warmup : warmup + p.cycles] for n, s in watcher.shards.items()}
        # one cycle in which every entry changed
        dn.rpc("devnet_touchTasks", {"first_id": 1, "last_id": p.tasks, "gas_delta": 1})
        before = {n: len(s.read) for n, s in watcher.shards.items()}
        watcher.wait(
            lambda: all(len(s.read) > before[n] for n, s in watcher.shards.items()),
            min(120.0, p.timeout_s),
            proc,
        )
        changed = {
            n: next((c for c in s.read[before[n] :] if c.get("decoded", 0) > 0), None)
            for n, s in watcher.shards.items()
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        watcher.close()
    if not ok:
        raise RuntimeError(
            f"timed out after {p.timeout_s:.0f}s waiting for {p.cycles} cycles per shard; "
            f"see {tmp / 'supervisor.out'}"
        )
    return {
        "measured": measured,
        "changed": changed,
        "rss": watcher.rss,
        "stats_before": stats_before,
        "stats_after": stats_after,
        "status": watcher.doc,
    }


def _ledger_time(seq0: int, t0: int, ledger_seconds: int) -> Any:
    def first_ledger_at_or_after(ts: int) -> int:
        return seq0 + max(0, math.ceil((ts - t0) / ledger_seconds))

    return first_ledger_at_or_after


def _execution_figures(
    dn: Any, p: BenchParams, seq0: int, t0: int, ceiling: int, due_tasks: int
) -> dict[str, Any]:
    execs = dn.executions()
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


def run_bench(p: BenchParams) -> dict[str, Any]:
    """Run one benchmark and return every figure (see the module docstring)."""
    from devnet.process import DevnetProcess

    with (
        tempfile.TemporaryDirectory(prefix="sorotask-bench-") as tmpname,
        DevnetProcess(
            tasks=0,
            close_every=p.close_every,
            ledger_seconds=p.ledger_seconds,
            extra_args=("--latency-ms", str(p.latency_ms)),
        ) as dn,
    ):
        tmp = Path(tmpname)
        t_seed = time.perf_counter()
        due_tasks = _seed(dn, p)
        seeding_s = time.perf_counter() - t_seed
        seed = _measure_seed(dn, p)
        latest = dn.rpc("getLatestLedger", {})
        seq0, t0 = int(latest["sequence"]), int(latest["closeTime"])
        ours = _run_ours(dn, p, tmp)
        ex = _execution_figures(dn, p, seq0, t0, p.shards * p.source_accounts, due_tasks)

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


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="sorotask bench", description=__doc__.split("\n")[0])
    d = BenchParams()
    ap.add_argument("--tasks", type=int, default=d.tasks)
    ap.add_argument("--shards", type=int, default=d.shards)
    ap.add_argument("--latency-ms", type=float, default=d.latency_ms)
    ap.add_argument("--due-fraction", type=float, default=d.due_fraction)
    ap.add_argument("--cycles", type=int, default=d.cycles)
    ap.add_argument("--source-accounts", type=int, default=d.source_accounts)
    ap.add_argument("--due-interval-ledgers", type=int, default=d.due_interval_ledgers)
    ap.add_argument(
        "--seed-sample",
        type=int,
        default=d.seed_sample,
        help="tasks the seed design reads (its cycle is scaled linearly to --tasks)",
    )
    ap.add_argument("--close-every", type=float, default=d.close_every)
    ap.add_argument("--poll-interval", type=float, default=d.poll_interval_s)
    ap.add_argument("--timeout", type=float, default=d.timeout_s)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    problems = [
        f"--{n.replace('_', '-')} must be >= 1"
        for n in (
            "tasks",
            "shards",
            "cycles",
            "source_accounts",
            "seed_sample",
            "due_interval_ledgers",
        )
        if getattr(a, n) < 1
    ]
    if not 0.0 <= a.due_fraction <= 1.0:
        problems.append("--due-fraction must be within 0..1")
    if problems:
        print("sorotask bench: " + "; ".join(problems), file=sys.stderr)
        return ExitCode.USAGE
    params = BenchParams(
        tasks=a.tasks,
        shards=a.shards,
        latency_ms=a.latency_ms,
        due_fraction=a.due_fraction,
        cycles=a.cycles,
        source_accounts=a.source_accounts,
        due_interval_ledgers=a.due_interval_ledgers,
        seed_sample=a.seed_sample,
        close_every=a.close_every,
        poll_interval_s=a.poll_interval,
        timeout_s=a.timeout,
    )
    with contextlib.suppress(KeyboardInterrupt):
        result = run_bench(params)
        if a.json:
            print(json.dumps(result))
        else:
            print(format_report(result))
        return ExitCode.OK
    return ExitCode.CRASH
