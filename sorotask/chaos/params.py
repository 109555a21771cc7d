"""What a soak run is parametrised by, and what follows from it: the devnet's fault phases, the
workload plan and the supervisor's config."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sorotask.toolkit import network_section, split_section

#: devnet fault phases, cycled in this order (each for ``fault_s`` seconds)
FAULT_PHASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("latency_spike", {"latency_ms": 250, "jitter_ms": 200}),
    ("http_503", {"http_503_rate": 0.2}),
    ("dropped_connections", {"drop_rate": 0.1}),
    ("try_again_later", {"try_again_later_rate": 0.5, "methods": ["sendTransaction"]}),
    ("never_apply", {"never_apply_rate": 0.3, "methods": ["sendTransaction"]}),
)

#: ``--hostile``: the devnet answering as a busy public RPC does, the whole run (issue 16)
HOSTILE_MIX: dict[str, Any] = {
    "http_503_rate": 0.3,
    "drop_rate": 0.1,
    "try_again_later_rate": 0.3,
    "error_rate": 0.1,
    "latency_ms": 100,
    "jitter_ms": 300,
}
#: ``--hostile``: what "on time" means under the mix (lateness in ledgers past the due time)
HOSTILE_TARGETS: dict[str, int] = {"p99": 5, "max": 10}


@dataclass(slots=True)
class ChaosParams:
    """Everything a soak run is parametrised by (defaults: the issue's figures)."""

    duration: float = 60.0
    shards: int = 4
    tasks: int = 2000
    seed: int | None = None
    hot: int = 80
    hot_interval: int = 40
    cold_rate: float = 2.0
    channels: int = 3
    close_every: float = 0.5
    ledger_seconds: int = 5
    tx_timeout_s: int = 15
    kill_every: float = 3.0
    stop_every: float = 6.0
    short_stop_s: tuple[float, float] = (0.3, 1.0)
    heartbeat_timeout_s: float = 3.0
    kill_grace_s: float = 1.0
    fault_s: float = 2.5
    fault_gap_s: float = 3.5
    faults: bool = True
    warmup_s: float = 2.0
    quiet_s: float = 10.0
    late_ledgers: int = 3
    recover_timeout: float = 15.0
    workdir: str | None = None
    #: ``--hostile``: one fault mix (``devnet_setFaults``) for ``duration`` s instead of the
    #: fault phases, then ``quiet_s`` s calm; lateness percentiles judged against targets
    mix: dict[str, Any] | None = None
    #: devnet ports serving the one chain; more than one: the shards get them all as
    #: ``network.rpc_urls`` (``--endpoint-faults``)
    replicas: int = 1

    @property
    def poll_interval_s(self) -> float:
        return self.close_every / 2

    @property
    def long_stop_s(self) -> float:
        return self.heartbeat_timeout_s + 1.5

    @property
    def hold_ledgers(self) -> int:
        return math.ceil(self.tx_timeout_s / self.ledger_seconds) + 2

    def to_json(self) -> dict[str, Any]:
        """The parameters as the report shows them (with the derived figures)."""
        d = asdict(self)
        d["poll_interval_s"] = self.poll_interval_s
        d["long_stop_s"] = self.long_stop_s
        d["hold_ledgers"] = self.hold_ledgers
        return d


def hostile_params(**overrides: Any) -> ChaosParams:
    """``--hostile``: 4 shards x 5 source accounts (the keeper's and 4 channels), 120 tasks due
    every 12 ledgers (half the execution ceiling of 20 a ledger), the :data:`HOSTILE_MIX` for
    ``duration`` s, no stops, kills only when asked; a keeper's default 30 s time bound (core
    refuses one closer than two ledgers ahead as txTOO_LATE)."""
    base: dict[str, Any] = {
        "shards": 4,
        "channels": 4,
        "tasks": 120,
        "hot": 120,
        "hot_interval": 12,
        "kill_every": 0.0,
        "stop_every": 0.0,
        "faults": False,
        "quiet_s": 8.0,
        "tx_timeout_s": 30,
        "mix": dict(HOSTILE_MIX),
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    return ChaosParams(**base)


def plan_tasks(p: ChaosParams, now_ts: int, start_ledger_offset: int) -> list[dict[str, Any]]:
    """The seed calls (one per task, in id order 1..tasks): hot and cold tasks, staggered."""
    ls = p.ledger_seconds
    hot_every = max(1, p.tasks // max(1, p.hot)) if p.hot else 0
    hot_ids = {1 + k * hot_every for k in range(p.hot)} if p.hot else set()
    cold_n = p.tasks - len(hot_ids)
    cold_interval = max(1, math.ceil(cold_n / p.cold_rate)) if cold_n else 1
    start = now_ts + start_ledger_offset * ls
    # the stream's order is shuffled so that every shard gets its share of it all the time
    cold_ids = [t for t in range(1, p.tasks + 1) if t not in hot_ids]
    random.Random(p.seed).shuffle(cold_ids)
    cold_rank = {t: k for k, t in enumerate(cold_ids)}
    calls: list[dict[str, Any]] = []
    hot_k = 0
    for task_id in range(1, p.tasks + 1):
        if task_id in hot_ids:
            interval = p.hot_interval * ls
            due = start + (hot_k * p.hot_interval // max(1, p.hot)) * ls
            hot_k += 1
        else:
            interval = cold_interval * ls
            due = start + int(cold_rank[task_id] / p.cold_rate) * ls
        calls.append({"count": 1, "interval": interval, "last_run": due - interval})
    return calls


def soak_config(p: ChaosParams, info: Any, work: Path, secrets_dir: Path) -> dict[str, Any]:
    """The supervisor's config: fast polls and restarts, a journal per shard, a split."""
    network = network_section(info)
    if p.replicas > 1:
        del network["rpc_url"]
        network["rpc_urls"] = list(info.rpc_urls)
    return {
        "network": network,
        "worker": {
            "poll_interval_s": p.poll_interval_s,
            "max_concurrent_executions": max(1, p.channels),
            "max_concurrent_reads": 4,
            "rpc_timeout_s": 3,
            "tx_timeout_s": p.tx_timeout_s,
            "stop_grace_s": 3,
            "confirm_poll_s": 0.1,
        },
        "supervisor": {
            "status_address": "127.0.0.1:0",
            "log_dir": str(work / "logs"),
            "state_dir": str(work / "state"),
            "log_level": "INFO",
            "heartbeat_timeout_s": p.heartbeat_timeout_s,
            "kill_grace_s": p.kill_grace_s,
            "shutdown_grace_s": 10,
            "restart": {
                "max_restarts": 10_000,
                "window_s": 60,
                "backoff_base_s": 0.1,
                "backoff_max_s": 0.5,
                "jitter": 0.2,
                "stable_after_s": 2,
            },
        },
        "split": split_section(p.tasks, p.shards, secrets_dir, p.channels),
    }
