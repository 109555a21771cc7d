"""One keeper shard: a complete SoroTask keeper for a task-id range (see ``keeper``).

``run_keeper`` and ``LoggingReporter`` are imported lazily so that importing
``shard_worker.spec`` does not pay for stellar-sdk's import time.
"""

from __future__ import annotations

from typing import Any

from shard_worker.spec import CycleStats, Reporter, SecretRef, WorkerSpec

__all__ = ["CycleStats", "LoggingReporter", "Reporter", "SecretRef", "WorkerSpec", "run_keeper"]


def __getattr__(name: str) -> Any:
    if name == "run_keeper":
        from shard_worker.keeper import run_keeper

        return run_keeper
    if name == "LoggingReporter":
        from shard_worker.reporting import LoggingReporter

        return LoggingReporter
    raise AttributeError(name)
