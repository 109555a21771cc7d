"""What a benchmark run is parametrised by, and its workload: which tasks are due."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    #: the keeper's read modes, each run in turn on the same devnet (the first is ``ours``)
    read_modes: tuple[str, ...] = ("events",)
    #: the fraction of tasks others change each ledger with real contract calls
    change_fraction: float = 0.0
    #: skip the seed design's measurement (a large run comparing read modes)
    skip_seed: bool = False
    #: the keepers' ``fee_strategy`` (``stats`` or ``fixed`` at ``base_fee`` 100); ``both``:
    #: odd shards ``stats``, even shards ``fixed``, side by side in the one run
    fee_strategy: str = "stats"
    #: competing load's inclusion fee per operation; None: no surge. With it the ledger holds
    #: ``SURGE_CAPACITY`` x the ceiling and the load sends ``SURGE_LOAD`` x the ceiling a
    #: ledger, so demand is above capacity
    competing_fee: int | None = None
    #: ledgers after every shard's first full read (and the changing load's start) before the
    #: measured window: the events mode's pacer learns the ledger period over its first ~12
    #: ledgers (1.3 polls a ledger there, 1.1 after)
    warmup_ledgers: int = 1

    @property
    def changes_per_ledger(self) -> int:
        return round(self.tasks * self.change_fraction)

    @property
    def no_gas_pool(self) -> int:
        """Due tasks without gas kept for the deposits of the changing load."""
        if not self.change_fraction:
            return 0
        per_run = (self.changes_per_ledger // 10 + 1) * (self.cycles + 40)
        return min(self.tasks // 4, per_run * len(self.read_modes))


#: a surge's ledger capacity and competing load, in multiples of the execution ceiling
SURGE_CAPACITY = 2
SURGE_LOAD = 4


def strategy_of(p: BenchParams, index: int) -> str:
    """Shard ``index``'s (0-based) fee strategy."""
    if p.fee_strategy != "both":
        return p.fee_strategy
    return "stats" if index % 2 == 0 else "fixed"


def seed_calls(p: BenchParams) -> tuple[list[dict[str, Any]], int]:
    """The ``devnet_seedTasks`` calls for N tasks in blocks of 50, a fraction F of each block
    due (recurring), so the due tasks are spread evenly over the id space and so over the
    shards; and how many tasks are due."""
    block = 50
    due_interval = p.due_interval_ledgers * p.ledger_seconds
    calls: list[dict[str, Any]] = []
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
            calls.append({"count": due, "interval": due_interval, "last_run": 0})
        if n - due:
            calls.append({"count": n - due, "interval": NOT_DUE_INTERVAL, "last_run": 0})
        remaining -= n
    return calls, due_total
