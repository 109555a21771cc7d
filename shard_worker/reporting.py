"""Reporters for a keeper running outside the supervisor."""

from __future__ import annotations

from typing import Any

from loguru import logger

from shard_worker.spec import CycleStats

__all__ = ["LoggingReporter", "format_cycle"]


def format_cycle(stats: CycleStats) -> str:
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(stats.skipped.items())) or "none"
    calls = sum(stats.rpc_calls.values())
    errors = sum(stats.rpc_errors.values())
    text = (
        f"cycle {stats.cycle} ledger {stats.ledger} ({stats.duration_s * 1000:.0f} ms): "
        f"checked {stats.checked}, due {stats.due}, executed {stats.executed}, "
        f"failed {stats.failed}, not sent {stats.not_sent_by_simulation}, "
        f"read errors {stats.read_errors}, decoded {stats.decoded}, in flight {stats.in_flight}, "
        f"queue {stats.queue_depth}, fees {stats.fees_spent}, rpc {calls} calls/{errors} errors, "
        f"skipped: {skipped}"
    )
    if stats.cycle_error:
        text += f"; cycle error: {stats.cycle_error}"
    return text


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
