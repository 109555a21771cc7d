"""Reporters for a keeper running outside the supervisor."""

from __future__ import annotations

from typing import Any

from loguru import logger

from shard_worker.spec import CycleStats
from sorotask_core import stats as stats_registry

__all__ = ["LoggingReporter", "format_cycle"]


def format_cycle(stats: CycleStats) -> str:
    """One line for the log: the fields that ``sorotask_core.stats`` gives log words."""
    return stats_registry.format_cycle(stats)


class LoggingReporter:
    """Reports through loguru (the foreground ``sorotask worker`` mode). Never raises."""

    def __init__(self, shard: str = "worker", *, log_heartbeats: bool = False) -> None:
        self.log = logger.bind(shard=shard)
        self.log_heartbeats = log_heartbeats

    def hello(self, pid: int, keeper_public_key: str, channel_public_keys: list[str]) -> None:
        channels = ", ".join(channel_public_keys) or "none"
        self.log.info(
            "keeper started: pid {} keeper {} channel accounts: {}",
            pid,
            keeper_public_key,
            channels,
        )

    def heartbeat(self) -> None:
        if self.log_heartbeats:
            self.log.debug("heartbeat")

    def cycle(self, stats: CycleStats) -> None:
        if stats.cycle_error:
            self.log.warning(format_cycle(stats))
        elif not stats.new_ledger:  # no new ledger, nothing read: not worth an INFO line
            self.log.debug(format_cycle(stats))
        else:
            self.log.info(format_cycle(stats))

    def event(self, kind: str, data: dict[str, Any]) -> None:
        level = "INFO" if kind in ("executed", "not_sent") else "WARNING"
        if kind == "not_sent":
            level = "DEBUG"
        self.log.log(level, "{} {}", kind, data)

    def fatal(self, code: int, message: str) -> None:
        self.log.error("fatal configuration error (exit {}): {}", code, message)

    def goodbye(self, final: dict[str, Any]) -> None:
        self.log.info("keeper stopped: {}", final)
