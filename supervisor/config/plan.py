"""What a validated config resolves into: the supervisor's settings and every shard's plan."""

from __future__ import annotations

from dataclasses import dataclass, field

from shard_worker.spec import WorkerSpec
from sorotask_core.settings import RESTART, SUPERVISOR
from supervisor.config.problems import Problem

_R = RESTART.defaults()
_S = SUPERVISOR.defaults()

# the fields below are the settings declared once in sorotask_core.settings (SUPERVISOR and
# RESTART); tests/sorotask_core/test_settings.py checks names, types and defaults


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    max_restarts: int = _R["max_restarts"]
    window_s: float = _R["window_s"]
    backoff_base_s: float = _R["backoff_base_s"]
    backoff_max_s: float = _R["backoff_max_s"]
    jitter: float = _R["jitter"]
    stable_after_s: float = _R["stable_after_s"]
    failed_cooldown_s: float | None = _R["failed_cooldown_s"]
    max_rss_mb: float | None = _R["max_rss_mb"]


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    status_address: str | None = _S["status_address"]
    log_dir: str = _S["log_dir"]
    state_dir: str = _S["state_dir"]
    log_level: str = _S["log_level"]
    json_logs: bool = _S["json_logs"]
    log_rotation_mb: float = _S["log_rotation_mb"]
    log_retention: int = _S["log_retention"]
    heartbeat_timeout_s: float = _S["heartbeat_timeout_s"]
    kill_grace_s: float = _S["kill_grace_s"]
    shutdown_grace_s: float = _S["shutdown_grace_s"]
    health_max_cycle_age_s: float | None = _S["health_max_cycle_age_s"]
    orphan_grace_s: float = _S["orphan_grace_s"]
    progress_every_s: float | None = _S["progress_every_s"]
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    host_count: int = _S["host_count"]
    host_index: int = _S["host_index"]

    def status_host_port(self) -> tuple[str, int] | None:
        if self.status_address is None:
            return None
        host, _, port = self.status_address.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """One shard: its worker spec, public keys (never secrets) and host assignment."""

    spec: WorkerSpec
    keeper_public_key: str | None
    channel_public_keys: tuple[str | None, ...]
    host: int
    line: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def range_text(self) -> str:
        last = "open" if self.spec.range_last is None else str(self.spec.range_last)
        return f"{self.spec.range_first}..{last}"


@dataclass(frozen=True, slots=True)
class Plan:
    file: str
    settings: SupervisorSettings
    shards: tuple[ShardPlan, ...]  # every shard of every host
    warnings: tuple[Problem, ...] = ()
    #: loaded for ``sorotask run --dry-run``: every spec has ``dry_run`` set
    dry_run: bool = False

    @property
    def local_shards(self) -> tuple[ShardPlan, ...]:
        return tuple(s for s in self.shards if s.host == self.settings.host_index)

    def shard(self, name: str) -> ShardPlan | None:
        return next((s for s in self.shards if s.name == name), None)
