"""One RPC endpoint of a shard at run time: where to send, its health and its figures.

The settings of an endpoint are :class:`shard_worker.endpoint_config.EndpointConfig`; its URL
and header values are kept out of every repr and status (only its label is shown).

Health, as seen by the shard (pure logic; the time is passed in):

* a **failure** (timeout, connection error, HTTP error, malformed answer, -32603) demotes the
  endpoint for ``error_demote_s``; ``failure_threshold`` failures in a row open its circuit
  breaker for ``open_s`` (doubling at each reopening, up to ``open_max_s``); after the cool-off
  the breaker is half-open: one probe at a time, a success closes it, a failure reopens it;
* **throttling** (HTTP 429 honouring ``Retry-After``, HTTP 503, JSON-RPC -32098 queue full,
  -32001 execution limit) means "busy, try later": no request goes there until the wait is over
  (``Retry-After``, else ``throttle_first_s`` doubling up to ``throttle_max_s``); the breaker is
  not involved;
* **lag**: an answer whose latest ledger is behind the freshest ledger seen on any endpoint by
  more than ``max_lag_ledgers`` demotes the endpoint until an answer shows it caught up.

States: ``up``, ``demoted`` (throttled, lagging or failing), ``open`` (breaker open or
half-open). :mod:`shard_worker.endpoint_pool` chooses among endpoints with these.
"""

from __future__ import annotations

import bisect
import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shard_worker.budget import TokenBucket
from shard_worker.endpoint_config import EndpointConfig
from shard_worker.errors import (
    RpcError,
    RpcMalformedError,
    RpcResponseError,
    RpcTransportError,
)

__all__ = [
    "FAILURE_KINDS",
    "LATENCY_BUCKETS_S",
    "NEUTRAL_KINDS",
    "STATES",
    "THROTTLE_KINDS",
    "Endpoint",
    "HealthPolicy",
    "LatencyHistogram",
    "classify_error",
    "parse_retry_after",
]

STATES = ("up", "demoted", "open")

#: error kinds that count towards the circuit breaker
FAILURE_KINDS = frozenset({"timeout", "transport", "http_error", "malformed", "internal"})
#: "busy, try again later": wait, do not open the breaker
THROTTLE_KINDS = frozenset({"http_429", "http_503", "queue_full", "exec_timeout"})
#: counted, but the endpoint answered properly (a JSON-RPC error about the request itself,
#: an answer behind the freshest ledger: lag is judged from the ledger, not from this count)
NEUTRAL_KINDS = frozenset({"rpc_error", "stale"})
ERROR_KINDS = FAILURE_KINDS | THROTTLE_KINDS | NEUTRAL_KINDS

#: JSON-RPC codes of stellar-rpc's overload answers (see SOROBAN_FACTS.md, "Round two")
QUEUE_FULL = -32098
EXEC_TIMEOUT = -32001
INTERNAL_ERROR = -32603

#: upper bounds (seconds) of the latency histogram's buckets; +Inf is implied
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def parse_retry_after(value: str | None, now_unix: float) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value: delay-seconds or an HTTP-date
    (``now_unix`` is the wall clock for the latter). None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_unix)


def classify_error(exc: BaseException) -> str:
    """The error kind of a failed call (one of ``ERROR_KINDS``)."""
    if isinstance(exc, RpcTransportError):
        if exc.status == 429:
            return "http_429"
        if exc.status == 503:
            return "http_503"
        if exc.status is not None:
            return "http_error"
        return "timeout" if "timeout" in str(exc).partition(": ")[2] else "transport"
    if isinstance(exc, RpcResponseError):
        if exc.code == QUEUE_FULL:
            return "queue_full"
        if exc.code == EXEC_TIMEOUT:
            return "exec_timeout"
        if exc.code == INTERNAL_ERROR:
            return "internal"
        return "rpc_error"
    if isinstance(exc, RpcMalformedError):
        return "malformed"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, RpcError):
        return "transport"
    raise TypeError(f"not an RPC failure: {type(exc).__name__}")


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """When an endpoint is demoted, opened and brought back (seconds and ledgers)."""

    #: an answer more than this many ledgers behind the freshest seen demotes the endpoint
    max_lag_ledgers: int = 2
    #: failures in a row that open the breaker
    failure_threshold: int = 3
    #: first cool-off of an open breaker; doubles at each reopening up to open_max_s
    open_s: float = 10.0
    open_max_s: float = 120.0
    #: a single failure demotes the endpoint this long
    error_demote_s: float = 5.0
    #: throttled without Retry-After: first wait, doubling up to throttle_max_s
    throttle_first_s: float = 1.0
    throttle_max_s: float = 30.0
    #: a Retry-After longer than this is cut to it
    max_retry_after_s: float = 300.0
    #: an endpoint not heard from for this long is probed (getLatestLedger)
    probe_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_lag_ledgers < 0 or self.failure_threshold < 1:
            raise ValueError("max_lag_ledgers >= 0 and failure_threshold >= 1")
        if not 0 < self.open_s <= self.open_max_s:
            raise ValueError("0 < open_s <= open_max_s")
        if not 0 < self.throttle_first_s <= self.throttle_max_s:
            raise ValueError("0 < throttle_first_s <= throttle_max_s")
        if self.error_demote_s < 0 or self.max_retry_after_s <= 0 or self.probe_interval_s <= 0:
            raise ValueError("error_demote_s >= 0, max_retry_after_s > 0, probe_interval_s > 0")


class LatencyHistogram:
    """Cumulative-style latency buckets (Prometheus ``le``), their sum and count."""

    __slots__ = ("counts", "sum_s")

    def __init__(self) -> None:
        #: one count per bucket of LATENCY_BUCKETS_S, then +Inf (not cumulative here)
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.sum_s += max(0.0, seconds)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, observations <= le)]`` ending with ``("+Inf", count)``."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*map(str, LATENCY_BUCKETS_S), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class Endpoint:
    """An endpoint at run time: where to send (URL and headers, kept out of every repr), its
    request budget, its health and its figures. Times are the pool's clock (seconds)."""

    def __init__(
        self,
        config: EndpointConfig,
        headers: Mapping[str, str],
        policy: HealthPolicy,
        now: float,
    ) -> None:
        self.config = config
        self.label = config.label
        self.weight = config.weight
        self.policy = policy
        self._headers = dict(headers)
        rate = config.max_requests_per_s
        self.bucket = None if rate is None else TokenBucket(rate, max(1.0, rate), now)
        #: getNetwork answered the configured passphrase
        self.verified = False
        #: why the endpoint is refused for good (another network), else None
        self.refused: str | None = None
        # --- health
        self.consecutive_failures = 0
        self.consecutive_throttles = 0
        self.failing_until = 0.0
        self.throttled_until = 0.0
        self.open_until: float | None = None
        self.open_s = policy.open_s
        self.probe_in_flight = False
        self.probe_started = 0.0
        self.latest_ledger: int | None = None
        self.lag_ledgers = 0
        self.heard_at: float | None = None
        # --- figures
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.latency = LatencyHistogram()
        self.opens = 0

    def __repr__(self) -> str:
        return f"Endpoint({self.label!r}, weight={self.weight})"

    __str__ = __repr__

    @property
    def url(self) -> str:
        """Where requests go (may hold credentials: never log it; use :attr:`label`)."""
        return self.config.url

    @property
    def headers(self) -> dict[str, str]:
        """The extra request headers (values are secrets: never log them)."""
        return dict(self._headers)

    # ------------------------------------------------------------------ state

    def is_open(self, now: float) -> bool:
        """Breaker open and still cooling off (not yet half-open)."""
        return self.open_until is not None and now < self.open_until

    def is_half_open(self, now: float) -> bool:
        return self.open_until is not None and now >= self.open_until

    def is_throttled(self, now: float) -> bool:
        return now < self.throttled_until

    def is_failing(self, now: float) -> bool:
        return now < self.failing_until

    @property
    def lagging(self) -> bool:
        return self.lag_ledgers > self.policy.max_lag_ledgers

    def reasons(self, now: float) -> list[str]:
        """Why the endpoint is not ``up`` (empty when it is)."""
        out = []
        if self.open_until is not None:
            out.append("half_open" if self.is_half_open(now) else "breaker_open")
        if self.refused is not None:
            out.append("wrong_network")
        elif not self.verified:
            out.append("unverified")
        if self.is_throttled(now):
            out.append("throttled")
        if self.lagging:
            out.append("lagging")
        if self.is_failing(now):
            out.append("failing")
        return out

    def state(self, now: float) -> str:
        if self.open_until is not None:
            return "open"
        return "demoted" if self.reasons(now) else "up"

    def available_at(self, now: float) -> float:
        """When the breaker and throttling let a request through (``now`` if they do)."""
        at = max(now, self.throttled_until)
        if self.open_until is not None:
            at = max(at, self.open_until)
        return at

    # ------------------------------------------------------------------ outcomes

    def record_success(self, now: float, latency_s: float) -> None:
        """An answer (including a JSON-RPC error about the request itself)."""
        self._count(latency_s)
        self.heard_at = now
        self.consecutive_failures = 0
        self.consecutive_throttles = 0
        self.failing_until = 0.0
        self.probe_in_flight = False
        if self.open_until is not None:
            self.open_until = None
            self.open_s = self.policy.open_s

    def record_error(
        self, now: float, kind: str, latency_s: float, retry_after_s: float | None = None
    ) -> None:
        """A failed request of ``kind`` (see :func:`classify_error`)."""
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        if kind in NEUTRAL_KINDS:
            self.record_success(now, latency_s)
            self.errors[kind] = self.errors.get(kind, 0) + 1
            return
        self._count(latency_s)
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.probe_in_flight = False
        if kind in THROTTLE_KINDS:
            self.heard_at = now
            self._throttle(now, retry_after_s)
            return
        self.consecutive_failures += 1
        self.failing_until = now + self.policy.error_demote_s
        if self.is_open(now):  # a late answer to a request sent before it opened
            return
        if self.open_until is not None:  # half-open: the probe failed, cool off longer
            self.open_s = min(self.policy.open_max_s, self.open_s * 2)
            self.open_until = now + self.open_s
            self.opens += 1
        elif self.consecutive_failures >= self.policy.failure_threshold:
            self.open_until = now + self.open_s
            self.opens += 1

    def _throttle(self, now: float, retry_after_s: float | None) -> None:
        p = self.policy
        if retry_after_s is not None and retry_after_s >= 0:
            wait = min(p.max_retry_after_s, retry_after_s)
        else:
            doubling = 2.0 ** min(self.consecutive_throttles, 30)
            wait = min(p.throttle_max_s, p.throttle_first_s * doubling)
        self.consecutive_throttles += 1
        self.throttled_until = max(self.throttled_until, now + wait)

    def observe_ledger(self, now: float, ledger: int, freshest: int) -> None:
        """The endpoint answered as of ``ledger`` while the freshest seen anywhere is
        ``freshest``."""
        self.heard_at = now
        if self.latest_ledger is None or ledger >= self.latest_ledger:
            self.latest_ledger = ledger
        self.lag_ledgers = max(0, freshest - ledger)

    def _count(self, latency_s: float) -> None:
        self.requests += 1
        self.latency.observe(latency_s)

    # ------------------------------------------------------------------ figures

    def status(self, now: float) -> dict[str, Any]:
        """JSON-safe figures for /status and /metrics (no URL, no header value)."""
        return {
            "endpoint": self.label,
            "state": self.state(now),
            "reasons": self.reasons(now),
            "weight": self.weight,
            "max_requests_per_s": self.config.max_requests_per_s,
            "requests": self.requests,
            "errors": dict(sorted(self.errors.items())),
            "latency": {
                "buckets": self.latency.cumulative(),
                "sum_s": round(self.latency.sum_s, 6),
                "count": self.latency.count,
            },
            "latest_ledger": self.latest_ledger,
            "lag_ledgers": self.lag_ledgers,
            "consecutive_failures": self.consecutive_failures,
            "breaker_opens": self.opens,
            "retry_in_s": round(max(0.0, self.available_at(now) - now), 3),
        }
