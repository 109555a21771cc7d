"""One benchmark run: the devnet seeded, the seed design measured, our supervisor run for the
measured cycles (watching ``/status``), then every figure computed by
:mod:`sorotask.bench.figures`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sorotask.bench.figures import execution_figures, result_figures
from sorotask.bench.params import (
    SURGE_CAPACITY,
    SURGE_LOAD,
    BenchParams,
    seed_calls,
    strategy_of,
)
from sorotask.toolkit import (
    StatusWatcher,
    network_section,
    provision_split_secrets,
    secret_files,
    seed_tasks,
    split_section,
    start_supervisor,
    temporary_secrets,
    terminate,
    wait_status_url,
    write_yaml,
)


def measure_seed_design(dn: Any, p: BenchParams) -> dict[str, Any]:
    """Two cycles of the seed design over an evenly spaced sample; the second one counts."""
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


def bench_config(p: BenchParams, info: Any, tmp: Path, secrets_dir: Path) -> dict[str, Any]:
    doc = _bench_config(p, info, tmp, secrets_dir)
    if p.fee_strategy == "both":  # the split's shards listed, each with its own strategy
        del doc["split"], doc["worker"]["fee_strategy"]
        doc["shards"] = [
            _shard(p, i, secrets_dir, {"fee_strategy": strategy_of(p, i)}) for i in range(p.shards)
        ]
    return doc


def _shard(p: BenchParams, i: int, secrets_dir: Path, worker: dict[str, Any]) -> dict[str, Any]:
    keeper, channels = secret_files(secrets_dir, i + 1, p.source_accounts - 1)
    shard: dict[str, Any] = {
        "name": f"shard-{i + 1}",
        "range": [1 + i * p.tasks // p.shards, (i + 1) * p.tasks // p.shards],
        "secret_file": str(keeper),
        "worker": worker,
    }
    if channels:
        shard["channels"] = [{"secret_file": str(c)} for c in channels]
    return shard


def _bench_config(p: BenchParams, info: Any, tmp: Path, secrets_dir: Path) -> dict[str, Any]:
    return {
        "network": network_section(info),
        "worker": {
            "poll_interval_s": p.poll_interval_s,
            "read_mode": "ledger_entries",
            "max_concurrent_reads": p.max_concurrent_reads,
            "max_concurrent_executions": p.source_accounts,
            "fee_strategy": p.fee_strategy,
        },
        "supervisor": {
            "status_address": "127.0.0.1:0",
            "log_dir": str(tmp / "logs"),
            "state_dir": str(tmp / "state"),
            "log_level": "WARNING",
            "heartbeat_timeout_s": 30,
        },
        "split": split_section(p.tasks, p.shards, secrets_dir, p.source_accounts - 1),
    }


@dataclass(slots=True)
class _ShardCycles:
    read: list[dict[str, Any]] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)


class CycleWatcher:
    """Collects every read cycle and RSS sample of every shard from ``/status`` (polled every
    50 ms while waiting)."""

    def __init__(self, url: str) -> None:
        self.status = StatusWatcher(url)
        self.status.on_doc.append(self._collect)
        self.shards: dict[str, _ShardCycles] = {}
        self.rss: dict[str, list[int]] = {}

    def _collect(self, doc: dict[str, Any], _now: float) -> None:
        for s in doc["shards"]:
            rec = self.shards.setdefault(s["name"], _ShardCycles())
            if s.get("rss_bytes"):
                self.rss.setdefault(s["name"], []).append(int(s["rss_bytes"]))
            cyc = s.get("last_cycle")
            if not cyc or cyc.get("cycle") in rec.seen:
                continue
            rec.seen.add(cyc["cycle"])
            if cyc.get("new_ledger", True) and not cyc.get("cycle_error") and cyc.get("checked"):
                rec.read.append(cyc)

    def wait(self, pred: Callable[[], bool], timeout: float, proc: Any) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"supervisor exited early with code {proc.returncode}")
            self.status.poll_once()
            if pred():
                return True
            time.sleep(0.05)
        return False

    def rounds_at_least(self, shards: int, n: int) -> Callable[[], bool]:
        return lambda: (
            len(self.shards) == shards and all(len(s.read) >= n for s in self.shards.values())
        )

    def close(self) -> None:
        self.status.stop()


def run_ours(dn: Any, p: BenchParams, tmp: Path) -> dict[str, Any]:
    """Our supervisor on the devnet: ``p.cycles`` measured rounds after one warm-up round,
    then one round after every task entry changed."""
    out_path = tmp / "supervisor.out"
    with temporary_secrets(tmp) as secrets_dir:
        keepers = provision_split_secrets(dn, secrets_dir, p.shards, p.source_accounts - 1)
        cfg = write_yaml(tmp / "bench.yaml", bench_config(p, dn.info, tmp, secrets_dir))
        proc = start_supervisor(cfg, out_path, cwd=tmp)
        watcher: CycleWatcher | None = None
        warmup = 1
        try:
            watcher = CycleWatcher(wait_status_url(proc, out_path, 60))
            # the devnet's byte counter at the start and end of the measured rounds
            watcher.wait(watcher.rounds_at_least(p.shards, warmup), p.timeout_s, proc)
            stats_before = dn.stats()
            ok = watcher.wait(
                watcher.rounds_at_least(p.shards, warmup + p.cycles), p.timeout_s, proc
            )
            stats_after = dn.stats()
            measured = {n: s.read[warmup : warmup + p.cycles] for n, s in watcher.shards.items()}
            # one cycle in which every entry changed
            dn.rpc("devnet_touchTasks", {"first_id": 1, "last_id": p.tasks, "gas_delta": 1})
            before = {n: len(s.read) for n, s in watcher.shards.items()}
            shards = watcher.shards
            watcher.wait(
                lambda: all(len(s.read) > before[n] for n, s in shards.items()),
                min(120.0, p.timeout_s),
                proc,
            )
            changed = {
                n: next((c for c in s.read[before[n] :] if c.get("decoded", 0) > 0), None)
                for n, s in watcher.shards.items()
            }
        finally:
            terminate(proc, 60)
            if watcher is not None:
                watcher.close()
    if not ok:
        raise RuntimeError(
            f"timed out after {p.timeout_s:.0f}s waiting for {p.cycles} cycles per shard; "
            f"see {out_path}"
        )
    return {
        "measured": measured,
        "changed": changed,
        "rss": watcher.rss,
        "stats_before": stats_before,
        "stats_after": stats_after,
        "strategies": {k: strategy_of(p, i) for i, k in enumerate(keepers)},
    }


def run_bench(p: BenchParams) -> dict[str, Any]:
    """Run one benchmark and return every figure (see :mod:`sorotask.bench`)."""
    import tempfile

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
        calls, due_tasks = seed_calls(p)
        # one JSON-RPC batch per 1000 seed calls: the injected latency is paid once per batch
        seed_tasks(dn.info.rpc_url, calls, per_request=1000)
        seeding_s = time.perf_counter() - t_seed
        seed = measure_seed_design(dn, p)
        ceiling = p.shards * p.source_accounts
        surge = start_surge(dn, p, ceiling)
        latest = dn.rpc("getLatestLedger", {})
        seq0, t0 = int(latest["sequence"]), int(latest["closeTime"])
        ours = run_ours(dn, p, tmp)
        execs = dn.executions()
        ex = execution_figures(execs, p, seq0, t0, ceiling, due_tasks)
        if surge is not None:
            ex.update(surge_figures(execs, ours, p.source_accounts, surge))
    return result_figures(p, ours, ex, seed, seeding_s)


def start_surge(dn: Any, p: BenchParams, ceiling: int) -> dict[str, Any] | None:
    """With ``--competing-fee F``: a ledger capacity below demand and a competing load at F,
    until getFeeStats shows F (so a keeper reading it knows the price from its start)."""
    if p.competing_fee is None:
        return None
    capacity, load = SURGE_CAPACITY * ceiling, SURGE_LOAD * ceiling
    dn.rpc("devnet_setCapacity", {"capacity": capacity})
    dn.rpc("devnet_setLoad", {"count": load, "fee": p.competing_fee})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fees = dn.rpc("getFeeStats", {})["sorobanInclusionFee"]
        if int(fees["transactionCount"]) and int(fees["p10"]) >= p.competing_fee:
            break
        time.sleep(0.2)
    return {"capacity": capacity, "load_per_ledger": load, "competing_fee": p.competing_fee}


def surge_figures(
    execs: list[dict[str, Any]], ours: dict[str, Any], sources: int, surge: dict[str, Any]
) -> dict[str, Any]:
    """Under a surge the utilisation counts every ledger of the measured rounds (a strategy
    that lands nothing scores 0, not "no figure"); ``by_strategy`` splits it by the shards'
    fee strategy (``--fee-strategy both``: side by side in one run)."""
    lo = int(ours["stats_before"]["ledger"])
    hi = int(ours["stats_after"]["ledger"])
    ledgers = max(1, hi - lo)
    strategies: dict[str, str] = ours["strategies"]
    landed = [
        e
        for e in execs
        if lo < e["ledger"] <= hi and e["effect"] == "executed" and e["keeper"] in strategies
    ]
    after = ours["stats_after"]["fees"]
    before = ours["stats_before"]["fees"]
    fees = sum(after.values()) - sum(before.values())

    def figures(keepers: int, n: int) -> dict[str, Any]:
        return {
            "shards": keepers,
            "executions_per_ledger": round(n / ledgers, 3),
            "ceiling_utilisation": round(n / (ledgers * keepers * sources), 3),
        }

    by_strategy = {
        name: figures(
            sum(1 for s in strategies.values() if s == name),
            sum(1 for e in landed if strategies[e["keeper"]] == name),
        )
        for name in sorted(set(strategies.values()))
    }
    return {
        "surge": {**surge, "measured_ledgers": ledgers},
        **figures(len(strategies), len(landed)),
        "by_strategy": by_strategy,
        "fee_per_execution_stroops": round(fees / len(landed)) if landed else None,
    }
