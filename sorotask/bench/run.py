"""One benchmark run: the devnet seeded, the seed design measured, our supervisor run for the
measured cycles (watching ``/status``), then every figure computed by
:mod:`sorotask.bench.figures`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sorotask.bench.figures import execution_figures, mode_figures
from sorotask.bench.params import NOT_DUE_INTERVAL, BenchParams, seed_calls, strategy_of
from sorotask.bench.steady import ChangeLoad, change_latency, per_ledger, totals, workers_cpu_s
from sorotask.bench.surge import start_surge, surge_figures
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


def bench_config(
    p: BenchParams, info: Any, tmp: Path, secrets_dir: Path, read_mode: str = "ledger_entries"
) -> dict[str, Any]:
    doc = _bench_config(p, info, tmp, secrets_dir, read_mode)
    if p.fee_strategy == "both":  # the split's shards listed, each with its own strategy
        del doc["split"]
        doc["shards"] = [
            _shard(p, i, secrets_dir, {"fee_strategy": strategy_of(p, i)}) for i in range(p.shards)
        ]
    else:
        doc["worker"]["fee_strategy"] = p.fee_strategy
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


def _bench_config(
    p: BenchParams, info: Any, tmp: Path, secrets_dir: Path, read_mode: str
) -> dict[str, Any]:
    return {
        "network": network_section(info),
        "worker": {
            "poll_interval_s": p.poll_interval_s,
            "read_mode": read_mode,
            "max_concurrent_reads": p.max_concurrent_reads,
            "max_concurrent_executions": p.source_accounts,
        },
        "supervisor": {
            "status_address": "127.0.0.1:0",
            "log_dir": str(tmp / "logs"),
            "state_dir": str(tmp / "state"),
            "log_level": "WARNING",
            "heartbeat_timeout_s": 30,
        },
        # the last shard owns the ids registered during the run
        "split": {
            **split_section(p.tasks, p.shards, secrets_dir, p.source_accounts - 1),
            "open_last": True,
        },
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


def run_ours(
    dn: Any,
    p: BenchParams,
    tmp: Path,
    read_mode: str = "ledger_entries",
    load: Callable[[], ChangeLoad | None] | None = None,
) -> dict[str, Any]:
    """Our supervisor on the devnet in ``read_mode``: ``p.cycles`` measured rounds after one
    warm-up round (the initial full read), under the changing ``load`` if any; then (not in
    ``events`` mode, where no event announces it) one round after every task entry changed."""
    tmp = tmp / read_mode
    tmp.mkdir(parents=True, exist_ok=True)
    out_path = tmp / "supervisor.out"
    change: ChangeLoad | None = None
    with temporary_secrets(tmp) as secrets_dir:
        keepers = provision_split_secrets(dn, secrets_dir, p.shards, p.source_accounts - 1)
        cfg = write_yaml(tmp / "bench.yaml", bench_config(p, dn.info, tmp, secrets_dir, read_mode))
        t_start = time.monotonic()
        proc = start_supervisor(cfg, out_path, cwd=tmp)
        watcher: CycleWatcher | None = None
        warmup = 1
        try:
            watcher = CycleWatcher(wait_status_url(proc, out_path, 60))
            # the devnet's byte counter at the start and end of the measured rounds
            watcher.wait(watcher.rounds_at_least(p.shards, warmup), p.timeout_s, proc)
            initial_sync_s = time.monotonic() - t_start
            change = load() if load is not None else None
            load_from = int(dn.rpc("getLatestLedger")["sequence"])
            if change is not None:
                change.start()
            if change is not None or p.warmup_ledgers > 1:
                # ledgers for the load to get going and the pacer to learn the period
                seq, w = load_from, max(1, p.warmup_ledgers)
                watcher.wait(
                    lambda: int(dn.rpc("getLatestLedger")["sequence"]) > seq + w,
                    60 + 10 * w * p.close_every,
                    proc,
                )
            watcher.status.poll_once()
            totals_before = totals(watcher.status.doc, read_mode)
            cpu_before = workers_cpu_s(proc.pid)
            ledger_before = int(dn.rpc("getLatestLedger")["sequence"])
            stats_before = dn.stats()
            ok = watcher.wait(
                watcher.rounds_at_least(p.shards, warmup + p.cycles), p.timeout_s, proc
            )
            ledger_target = ledger_before + p.cycles
            watcher.wait(
                lambda: int(dn.rpc("getLatestLedger")["sequence"]) >= ledger_target,
                p.timeout_s,
                proc,
            )
            watcher.status.poll_once()
            totals_after = totals(watcher.status.doc, read_mode)
            cpu_after = workers_cpu_s(proc.pid)
            ledger_after = int(dn.rpc("getLatestLedger")["sequence"])
            stats_after = dn.stats()
            if change is not None:
                change.stop()
            measured = {n: s.read[warmup : warmup + p.cycles] for n, s in watcher.shards.items()}
            steady = per_ledger(totals_before, totals_after, ledger_after - ledger_before)
            # every worker's CPU (reads, executions, reporting) a ledger, per 1k tasks
            steady["workers_cpu_ms_per_ledger"] = round(
                1000 * (cpu_after - cpu_before) / steady["ledgers"], 2
            )
            steady["cpu_ms_per_1k_tasks_per_ledger"] = round(
                steady["workers_cpu_ms_per_ledger"] / (p.tasks / 1000), 4
            )
            steady["changes_sent"] = change.sent if change is not None else 0
            steady["change_ledgers"] = change.ledgers if change is not None else 0
            changed: dict[str, Any] = {}
            if read_mode != "events":
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
            if change is not None:
                change.stop()
            terminate(proc, 60)
            if watcher is not None:
                watcher.close()
    if not ok:
        raise RuntimeError(
            f"timed out after {p.timeout_s:.0f}s waiting for {p.cycles} cycles per shard; "
            f"see {out_path}"
        )
    return {
        "read_mode": read_mode,
        "measured": measured,
        "changed": changed,
        "rss": watcher.rss,
        "stats_before": stats_before,
        "stats_after": stats_after,
        "initial_sync_s": round(initial_sync_s, 2),
        "steady": steady,
        "ledgers": (ledger_before, ledger_after),
        "load_from_ledger": load_from,
        "deposited_no_gas": list(change.deposited_no_gas) if change is not None else [],
        "strategies": {k: strategy_of(p, i) for i, k in enumerate(keepers)},
    }


def _recurring_ids(calls: list[dict[str, Any]]) -> list[int]:
    """The ids of the recurring due tasks ``calls`` seed on a fresh devnet (ids from 1)."""
    out: list[int] = []
    next_id = 1
    for c in calls:
        if c["interval"] != NOT_DUE_INTERVAL and c.get("gas_balance", 1):
            out.extend(range(next_id, next_id + c["count"]))
        next_id += c["count"]
    return out


def run_bench(p: BenchParams) -> dict[str, Any]:
    """Run one benchmark and return every figure (see :mod:`sorotask.bench`)."""
    import tempfile

    from devnet.process import DevnetProcess
    from sorotask.bench.changes import Changer

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
        pool = p.no_gas_pool
        calls, due_tasks = seed_calls(replace(p, tasks=p.tasks - pool))
        if pool:  # due, without gas: the deposits of the changing load make them executable
            interval = p.due_interval_ledgers * p.ledger_seconds
            calls.append({"count": pool, "interval": interval, "last_run": 0, "gas_balance": 0})
        # one JSON-RPC batch per 1000 seed calls: the injected latency is paid once per batch
        seed_tasks(dn.info.rpc_url, calls, per_request=1000)
        seeding_s = time.perf_counter() - t_seed
        seed = measure_seed_design(dn, p) if not p.skip_seed else None
        changer = None
        if p.change_fraction:
            changer = Changer(dn, accounts=p.changes_per_ledger + 2, threads=16)
        others = {k.public_key for k in changer.pool} if changer is not None else set()
        no_gas = list(range(p.tasks - pool + 1, p.tasks + 1))
        recurring = _recurring_ids(calls)
        runs: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        surge = start_surge(dn, p, p.shards * p.source_accounts)
        try:
            for mode in p.read_modes:
                latest = dn.rpc("getLatestLedger", {})
                seq0, t0 = int(latest["sequence"]), int(latest["closeTime"])
                load = None
                if changer is not None:
                    ch = changer

                    def load(ch: Any = ch) -> ChangeLoad:
                        return ChangeLoad(
                            dn,
                            ch,
                            per_ledger=p.changes_per_ledger,
                            no_gas_ids=no_gas,
                            due_ids=recurring,
                            all_ids=(1, p.tasks - pool),
                        )

                ours = run_ours(dn, p, tmp, mode, load)
                end = ours["ledgers"][1]
                window = [e for e in dn.executions() if seq0 <= e["ledger"] <= end]
                # another keeper executed the task first in the same ledger: a lost race (our
                # simulation saw it due), not a transaction our design wasted
                theirs = {
                    (e["task_id"], e["ledger"])
                    for e in window
                    if e.get("keeper") in others and e["effect"] == "executed"
                }
                execs = [e for e in window if e.get("keeper") not in others]
                raced = [
                    e
                    for e in execs
                    if e["effect"] not in ("executed", "failed")
                    and (e["task_id"], e["ledger"]) in theirs
                ]
                execs = [e for e in execs if e not in raced]
                ceiling = p.shards * p.source_accounts
                foreign = [e for e in window if e.get("keeper") in others]
                ex = execution_figures(execs, p, seq0, t0, ceiling, due_tasks, foreign)
                ex["lost_races"] = len(raced)
                if surge is not None:
                    ex.update(surge_figures(execs, ours, p.source_accounts, surge))
                lat = change_latency(
                    dn, ours["deposited_no_gas"], ours["load_from_ledger"], others, end
                )
                runs.append((mode, ours, ex, lat))
        finally:
            if changer is not None:
                changer.close()
    return mode_figures(p, runs, seed, seeding_s)
