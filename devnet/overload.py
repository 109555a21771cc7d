"""stellar-rpc's request limits, for real: per-method queues, execution limits, the HTTP backlog.

stellar-rpc counts, per method, the requests in flight (executing or waiting for the server's
workers); one past the method's queue limit is answered at once with JSON-RPC **-32098**
("rpc queue for M surpassed queue limit of N requests": a plain Go error, which jrpc2 reports
with its system-error code). A request that runs past its method's execution limit is answered
**-32001** "request exceeded processing limit threshold". In front of both, the HTTP backlog
limiter answers **HTTP 503** with an empty body once 5000 requests are in flight.

The devnet answers instantly, so nothing queues unless a test asks for it: ``devnet_setLimits``
sets, per method, a concurrency cap (how many run at once; the rest wait in the queue), a
simulated ``service_ms`` (how long each holds its slot), the queue limit and the execution limit
(which counts the wait for a slot, as a client sees it). ``{}`` restores stellar-rpc's defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: stellar-rpc's default per-method queue limits (config/options.go, request-backlog-*-queue-limit)
QUEUE_LIMITS = {
    "getHealth": 1000,
    "getEvents": 1000,
    "getNetwork": 1000,
    "getVersionInfo": 1000,
    "getLatestLedger": 1000,
    "getLedgerEntries": 1000,
    "getTransaction": 1000,
    "getTransactions": 1000,
    "getLedgers": 1000,
    "sendTransaction": 500,
    "simulateTransaction": 100,
    "getFeeStats": 100,
}
#: stellar-rpc's default execution limits in seconds (max-*-execution-duration)
EXECUTION_LIMITS_S = {
    "getEvents": 10.0,
    "getLedgers": 10.0,
    "sendTransaction": 15.0,
    "simulateTransaction": 15.0,
}
DEFAULT_EXECUTION_LIMIT_S = 5.0
#: request-backlog-global-queue-limit: HTTP requests in flight before HTTP 503
GLOBAL_LIMIT = 5000

QUEUE_FULL = -32098
EXCEEDED_LIMIT = -32001
EXCEEDED_LIMIT_MESSAGE = "request exceeded processing limit threshold"


class LimitParamError(ValueError):
    pass


class Overloaded(Exception):
    """A JSON-RPC error answer from the limiter (-32098 or -32001)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def queue_full(method: str, limit: int) -> Overloaded:
    return Overloaded(
        QUEUE_FULL, f"rpc queue for {method} surpassed queue limit of {limit} requests"
    )


def exceeded_limit() -> Overloaded:
    return Overloaded(EXCEEDED_LIMIT, EXCEEDED_LIMIT_MESSAGE)


@dataclass(slots=True)
class MethodLimit:
    queue: int
    timeout_s: float
    concurrency: int | None = None
    service_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "timeout_ms": self.timeout_s * 1000,
            "concurrency": self.concurrency,
            "service_ms": self.service_ms,
        }


def default_limit(method: str) -> MethodLimit:
    return MethodLimit(
        queue=QUEUE_LIMITS.get(method, 1000),
        timeout_s=EXECUTION_LIMITS_S.get(method, DEFAULT_EXECUTION_LIMIT_S),
    )


class Limiter:
    """Per-method in-flight counts and slots, plus the HTTP backlog count."""

    def __init__(self) -> None:
        self.http_limit = GLOBAL_LIMIT
        self.http_in_flight = 0
        self.custom: dict[str, MethodLimit] = {}
        self.in_flight: dict[str, int] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}

    def limit(self, method: str) -> MethodLimit:
        return self.custom.get(method) or default_limit(method)

    def configure(self, params: dict[str, Any]) -> dict[str, Any]:
        """``devnet_setLimits``: ``{http_limit, methods: {name: {queue, concurrency, timeout_ms,
        service_ms}}}``; anything left out is stellar-rpc's default."""
        unknown = set(params) - {"http_limit", "methods"}
        if unknown:
            raise LimitParamError(f"unknown limit fields: {', '.join(sorted(unknown))}")
        http_limit = params.get("http_limit", GLOBAL_LIMIT)
        if isinstance(http_limit, bool) or not isinstance(http_limit, int) or http_limit < 1:
            raise LimitParamError("http_limit must be an integer >= 1")
        methods = params.get("methods") or {}
        if not isinstance(methods, dict):
            raise LimitParamError("methods must map method names to limits")
        custom = {name: _parse_limit(name, spec) for name, spec in methods.items()}
        if self.in_flight and any(self.in_flight.values()):
            raise LimitParamError("requests are in flight: set limits when the devnet is idle")
        self.http_limit = http_limit
        self.custom = custom
        self._slots = {}
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        return {
            "http_limit": self.http_limit,
            "methods": {name: lim.to_json() for name, lim in sorted(self.custom.items())},
        }

    async def run(self, method: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` within ``method``'s limits; raises :class:`Overloaded`."""
        lim = self.limit(method)
        pending = self.in_flight.get(method, 0)
        if pending >= lim.queue:
            raise queue_full(method, lim.queue)
        if lim.concurrency is None and not lim.service_ms:
            return fn()  # the common case: nothing can wait, nothing to count
        self.in_flight[method] = pending + 1
        try:
            async with asyncio.timeout(lim.timeout_s):
                slot = self._slot(method, lim)
                if slot is None:
                    await asyncio.sleep(lim.service_ms / 1000)
                    return fn()
                async with slot:
                    if lim.service_ms:
                        await asyncio.sleep(lim.service_ms / 1000)
                    return fn()
        except TimeoutError:
            raise exceeded_limit() from None
        finally:
            self.in_flight[method] -= 1

    def _slot(self, method: str, lim: MethodLimit) -> asyncio.Semaphore | None:
        if lim.concurrency is None:
            return None
        slot = self._slots.get(method)
        if slot is None:
            slot = self._slots[method] = asyncio.Semaphore(lim.concurrency)
        return slot


def _parse_limit(method: str, spec: Any) -> MethodLimit:
    if not isinstance(spec, dict):
        raise LimitParamError(f"limits of {method} must be an object")
    unknown = set(spec) - {"queue", "concurrency", "timeout_ms", "service_ms"}
    if unknown:
        raise LimitParamError(f"unknown limit fields for {method}: {', '.join(sorted(unknown))}")
    base = default_limit(method)
    out = MethodLimit(queue=base.queue, timeout_s=base.timeout_s)
    for name in ("queue", "concurrency"):
        value = spec.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LimitParamError(f"{method}.{name} must be an integer >= 1")
        setattr(out, name, value)
    for name in ("timeout_ms", "service_ms"):
        value = spec.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 6e5:
            raise LimitParamError(f"{method}.{name} must be a number of milliseconds")
        if name == "timeout_ms":
            if value <= 0:
                raise LimitParamError(f"{method}.timeout_ms must be > 0")
            out.timeout_s = value / 1000
        else:
            out.service_ms = float(value)
    return out
