"""What the supervisor knows about its shards: their state, their reports and their totals.

The arbiter's main loop is the only writer. It changes a shard's record only inside
``with registry.edit(name) as rec:``, which holds the registry's own lock for that moment; it
may read records at any time. Any other thread (the status server's) only calls
:meth:`Registry.snapshot`, which copies everything under the same lock into frozen
:class:`Snapshot` objects, so a reader never sees a half-applied message and never blocks the
main loop for longer than one copy. The registry knows nothing of processes or pipes (that is
the arbiter's job) and builds no documents (that is :mod:`supervisor.view`'s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from supervisor.config import ShardPlan
from supervisor.stats import ShardTotals


class State(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(slots=True)
class ShardRecord:
    """One shard as the supervisor knows it (write only inside :meth:`Registry.edit`)."""

    plan: ShardPlan
    state: State = State.STOPPED
    #: the current worker's pid; None when no worker process is alive
    pid: int | None = None
    spawned_at: float = 0.0
    last_msg_at: float = 0.0
    hello: dict[str, Any] | None = None
    last_cycle: dict[str, Any] | None = None
    last_cycle_at: float | None = None
    restarts: int = 0
    #: starts of this shard after ``restart.failed_cooldown_s`` in the failed state
    failed_retries: int = 0
    #: workers the memory guard drained and replaced (``restart.max_rss_mb``)
    memory_restarts: int = 0
    failed_reason: str | None = None
    fatal: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    last_exit_code: int | None = None
    totals: ShardTotals = field(default_factory=ShardTotals)
    #: this worker process's cycles only (to add what its goodbye reports beyond them)
    life: ShardTotals = field(default_factory=ShardTotals)
    rss_bytes: int | None = None
    cpu_percent: float | None = None
    #: replacement timing (monotonic), for the "ready in tens of ms" figure
    death_at: float | None = None
    replacement: dict[str, float] = field(default_factory=dict)
    #: the worker's latest RPC endpoint figures (``network.rpc_urls``), None without
    endpoints: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def worker_started(self, pid: int, now: float) -> None:
        """A new worker process runs: forget what the previous one said."""
        self.pid = pid
        self.spawned_at = self.last_msg_at = now
        self.state = State.STARTING
        self.hello = self.fatal = self.final = None
        self.rss_bytes = self.cpu_percent = None
        self.life = ShardTotals()
        self.replacement = (
            {} if self.death_at is None else {"spawn_ms": (now - self.death_at) * 1000}
        )

    def worker_exited(self, code: int | None) -> None:
        self.pid = None
        self.last_exit_code = code
        self.rss_bytes = self.cpu_percent = None


@dataclass(frozen=True, slots=True)
class SupervisorFacts:
    """The supervisor-wide facts the view shows."""

    pid: int
    started_mono: float
    config_path: str | None
    host_index: int
    host_count: int
    health_max_cycle_age_s: float | None
    stopping: bool = False


@dataclass(frozen=True, slots=True)
class ShardView:
    """A copy of one :class:`ShardRecord` (its containers copied too)."""

    plan: ShardPlan
    state: State
    pid: int | None
    spawned_at: float
    last_msg_at: float
    keeper: str | None
    last_cycle: dict[str, Any] | None
    last_cycle_at: float | None
    restarts: int
    failed_retries: int
    memory_restarts: int
    failed_reason: str | None
    final: dict[str, Any] | None
    last_exit_code: int | None
    totals: ShardTotals
    rss_bytes: int | None
    cpu_percent: float | None
    replacement: dict[str, float]
    endpoints: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def alive(self) -> bool:
        return self.pid is not None

    @classmethod
    def of(cls, rec: ShardRecord) -> ShardView:
        return cls(
            plan=rec.plan,
            state=rec.state,
            pid=rec.pid,
            spawned_at=rec.spawned_at,
            last_msg_at=rec.last_msg_at,
            keeper=(rec.hello or {}).get("keeper_public_key") or rec.plan.keeper_public_key,
            last_cycle=None if rec.last_cycle is None else dict(rec.last_cycle),
            last_cycle_at=rec.last_cycle_at,
            restarts=rec.restarts,
            failed_retries=rec.failed_retries,
            memory_restarts=rec.memory_restarts,
            failed_reason=rec.failed_reason,
            final=None if rec.final is None else dict(rec.final),
            last_exit_code=rec.last_exit_code,
            totals=rec.totals.copy(),
            rss_bytes=rec.rss_bytes,
            cpu_percent=rec.cpu_percent,
            replacement=dict(rec.replacement),
            endpoints=None if rec.endpoints is None else dict(rec.endpoints),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the view needs, at one moment."""

    supervisor: SupervisorFacts
    shards: tuple[ShardView, ...]
    #: totals and restarts of shards a reload removed (they stay in the overall total)
    retired: ShardTotals
    retired_restarts: int


class Registry:
    """Shard records by name, the supervisor's facts and the totals of removed shards."""

    def __init__(self, facts: SupervisorFacts, plans: Iterable[ShardPlan] = ()) -> None:
        self._lock = threading.Lock()
        self._facts = facts
        self._shards: dict[str, ShardRecord] = {p.name: ShardRecord(p) for p in plans}
        self._retired = ShardTotals()
        self._retired_restarts = 0

    @classmethod
    def for_settings(
        cls, settings: Any, config_path: str | None, plans: Iterable[ShardPlan]
    ) -> Registry:
        """A registry for a supervisor starting now with these ``SupervisorSettings``."""
        facts = SupervisorFacts(
            pid=os.getpid(),
            started_mono=time.monotonic(),
            config_path=config_path,
            host_index=settings.host_index,
            host_count=settings.host_count,
            health_max_cycle_age_s=settings.health_max_cycle_age_s,
        )
        return cls(facts, plans)

    # ---------------------------------------------------------------- reading (main thread)

    @property
    def facts(self) -> SupervisorFacts:
        return self._facts

    def __getitem__(self, name: str) -> ShardRecord:
        return self._shards[name]

    def __contains__(self, name: object) -> bool:
        return name in self._shards

    def __iter__(self) -> Iterator[ShardRecord]:
        return iter(list(self._shards.values()))

    def __len__(self) -> int:
        return len(self._shards)

    def names(self) -> list[str]:
        return list(self._shards)

    # ---------------------------------------------------------------- writing (main thread)

    @contextlib.contextmanager
    def edit(self, name: str) -> Iterator[ShardRecord]:
        """Change one shard's record (the lock is held until the block ends; not reentrant)."""
        with self._lock:
            yield self._shards[name]

    def update(self, name: str, **fields: Any) -> None:
        """Set some fields of one shard's record."""
        with self.edit(name) as rec:
            for key, value in fields.items():
                setattr(rec, key, value)

    def add(self, plan: ShardPlan) -> ShardRecord:
        rec = ShardRecord(plan)
        with self._lock:
            self._shards[plan.name] = rec
        return rec

    def retire(self, name: str) -> None:
        """Remove a shard; its totals and restarts stay in the overall total."""
        with self._lock:
            rec = self._shards.pop(name)
            self._retired.add(rec.totals)
            self._retired_restarts += rec.restarts

    def update_facts(self, **changes: Any) -> None:
        with self._lock:
            self._facts = dataclasses.replace(self._facts, **changes)

    # ---------------------------------------------------------------- any thread

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                supervisor=self._facts,
                shards=tuple(ShardView.of(r) for r in self._shards.values()),
                retired=self._retired.copy(),
                retired_restarts=self._retired_restarts,
            )
