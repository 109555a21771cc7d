"""Reporters for a keeper running outside the supervisor."""

from __future__ import annotations

import re
from typing import Any

from loguru import logger

from shard_worker.spec import CycleStats
from sorotask_core import stats as stats_registry

__all__ = ["LoggingReporter", "format_cycle", "format_event"]

#: event data keys shown first, in this order; the rest follow sorted
_FIRST_KEYS = ("task_id", "reason", "fee", "tx_hash", "ledger", "source")
#: shorter names in the log line
_SHOWN_AS = {"tx_hash": "tx"}
_PLAIN = re.compile(r"^[^\s=\"\\]+$")


def format_cycle(stats: CycleStats) -> str:
    """One line for the log: the fields that ``sorotask_core.stats`` gives log words."""
    return stats_registry.format_cycle(stats)


def _logfmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if text and _PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_event(kind: str, data: dict[str, Any]) -> str:
    """A task event as one ``key=value`` line: ``executed task_id=172 fee=61234 tx=ab12...``.

    ``task_id`` comes first; a value with spaces, ``=`` or quotes is double-quoted (logfmt).
    """
    keys = [k for k in _FIRST_KEYS if k in data]
    keys += sorted(k for k in data if k not in _FIRST_KEYS)
    parts = [str(kind)]
    parts += [f"{_SHOWN_AS.get(k, k)}={_logfmt_value(data[k])}" for k in keys]
    return " ".join(parts)


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
        level = "INFO" if kind in ("executed", "not_sent", "would_execute") else "WARNING"
        if kind == "not_sent":
            level = "DEBUG"
        self.log.log(level, "{}", format_event(kind, data))

    def fatal(self, code: int, message: str) -> None:
        self.log.error("fatal configuration error (exit {}): {}", code, message)

    def goodbye(self, final: dict[str, Any]) -> None:
        # the would-execute list of a dry run: one would_execute line each already
        shown = {k: v for k, v in final.items() if k != "would_execute"}
        self.log.info("keeper stopped: {}", format_event("", shown).lstrip())
