"""A shard's RPC endpoints as one pool: which endpoint a request goes to, and the freshest ledger.

* **Reads** go to healthy endpoints, spread by weight (smooth weighted round robin, so three
  endpoints of weight 2, 1, 1 get requests in the ratio 2:1:1 over every four). Tiers, the first
  one with a member decides: ``up``; then endpoints demoted only for recent failures; then one
  half-open probe. A throttled endpoint (429 + ``Retry-After``, 503, -32098, -32001) gets nothing
  until its wait is over; a lagging one gets no read and no send.
* **A transaction** is sent through one endpoint (same tiers, no half-open probe); resending
  the same signed transaction elsewhere after a lost answer is safe (same hash: DUPLICATE).
  **Its status** may be polled through any endpoint, lagging ones as a last resort: a lagging
  endpoint's NOT_FOUND comes with its own older ``latestLedgerCloseTime``, so it can never make
  an unexpired transaction look expired.
* **The freshest ledger** seen on any endpoint (:attr:`EndpointPool.freshest_ledger`) is the
  one time bounds come from, so a lagging endpoint can never cause a stale transaction.
* ``max_requests_per_s`` is a token bucket per endpoint: an endpoint without a token is skipped
  for another of its tier, or the caller waits (:meth:`EndpointPool.acquire`).
* At start every endpoint must answer the configured network passphrase
  (:func:`check_networks`); one on another network is refused by name. An endpoint not verified
  yet (down at start) gets no request but ``getNetwork`` probes (:meth:`EndpointPool.take_probes`).

The clock is injected (the event loop's ``time`` in the worker, a fake one in tests).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from shard_worker.endpoint_config import EndpointConfig, resolve_headers
from shard_worker.endpoints import Endpoint, HealthPolicy, classify_error
from shard_worker.errors import FatalConfigError, RpcError, RpcMalformedError, RpcTransportError

__all__ = [
    "POLL",
    "READ",
    "SEND",
    "EndpointPool",
    "NoEndpointError",
    "WrongNetworkError",
    "check_networks",
    "purpose_of",
]

READ, SEND, POLL = "read", "send", "poll"


def purpose_of(method: str) -> str:
    """``sendTransaction`` is a send, ``getTransaction`` a poll, anything else a read."""
    if method == "sendTransaction":
        return SEND
    return POLL if method == "getTransaction" else READ


class WrongNetworkError(FatalConfigError):
    """An endpoint serves another network than the configured passphrase."""


class NoEndpointError(RpcTransportError):
    """No endpoint could take the request within the wait allowed."""


class EndpointPool:
    """The endpoints of one shard; see the module docstring."""

    def __init__(
        self,
        configs: Sequence[EndpointConfig],
        *,
        policy: HealthPolicy | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float],
    ) -> None:
        """Reads each endpoint's header variables from ``environ`` (default ``os.environ``)
        once, here. Raises ``ValueError`` for no endpoint or two with the same label."""
        if not configs:
            raise ValueError("at least one RPC endpoint is needed")
        labels = [c.label for c in configs]
        for label in labels:
            if labels.count(label) > 1:
                raise ValueError(
                    f"two RPC endpoints are both shown as {label}: give one of them a name"
                )
        self.policy = policy or HealthPolicy()
        self._clock = clock
        env = os.environ if environ is None else environ
        now = clock()
        self.endpoints: tuple[Endpoint, ...] = tuple(
            Endpoint(c, resolve_headers(c, env), self.policy, now) for c in configs
        )
        #: smooth weighted round robin: each endpoint's current weight
        self._current = [0.0] * len(self.endpoints)
        #: the freshest ledger any endpoint reported, and its close time
        self.freshest_ledger: int | None = None
        self.freshest_close_time: int | None = None

    def __repr__(self) -> str:
        return f"EndpointPool({[e.label for e in self.endpoints]!r})"

    __str__ = __repr__

    def now(self) -> float:
        return self._clock()

    def by_label(self, label: str) -> Endpoint:
        for ep in self.endpoints:
            if ep.label == label:
                return ep
        raise KeyError(label)

    # ------------------------------------------------------------------ choosing

    def _tier(self, purpose: str, exclude: Collection[Endpoint], now: float) -> list[int]:
        """Indexes of the first non-empty tier of endpoints able to take ``purpose`` now."""
        tiers: list[list[int]] = [[], [], [], []]
        for i, ep in enumerate(self.endpoints):
            if ep in exclude or not ep.verified or ep.is_throttled(now) or ep.is_open(now):
                continue
            if ep.lagging:
                if purpose == POLL and ep.open_until is None:
                    tiers[3].append(i)
                continue
            if ep.open_until is not None:  # half-open: one probe at a time
                if purpose != SEND and not self._probing(ep, now):
                    tiers[2].append(i)
                continue
            tiers[1 if ep.is_failing(now) else 0].append(i)
        return next((t for t in tiers if t), [])

    def _probing(self, ep: Endpoint, now: float) -> bool:
        return ep.probe_in_flight and now - ep.probe_started < self.policy.open_s

    def pick(self, purpose: str = READ, exclude: Collection[Endpoint] = ()) -> Endpoint | None:
        """The endpoint for one request now (its token taken), or None: see :meth:`wait_s`."""
        now = self.now()
        tier = self._tier(purpose, exclude, now)
        ready = [i for i in tier if _has_token(self.endpoints[i], now)]
        if not ready:
            return None
        total = 0.0
        best = ready[0]
        for i in ready:
            self._current[i] += self.endpoints[i].weight
            total += self.endpoints[i].weight
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= total
        ep = self.endpoints[best]
        if ep.bucket is not None:
            ep.bucket.try_take(1, now)
        if ep.open_until is not None:
            ep.probe_in_flight = True
            ep.probe_started = now
        return ep

    def wait_s(self, purpose: str = READ, exclude: Collection[Endpoint] = ()) -> float | None:
        """Seconds until :meth:`pick` may succeed; None when no endpoint can ever take it
        (all excluded or none verified)."""
        now = self.now()
        tier = self._tier(purpose, exclude, now)
        if tier:
            return min(_token_wait(self.endpoints[i], now) for i in tier)
        waits = [
            ep.available_at(now) - now
            for ep in self.endpoints
            if ep not in exclude and ep.verified and ep.available_at(now) > now
        ]
        if waits:
            return max(0.0, min(waits))
        if any(ep not in exclude and ep.verified for ep in self.endpoints):
            return self.policy.probe_interval_s  # lagging or probing: wait for news
        return None

    async def acquire(
        self,
        method: str,
        *,
        exclude: Collection[Endpoint] = (),
        max_wait_s: float = 30.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> Endpoint:
        """An endpoint for one ``method`` request, waiting (at most ``max_wait_s``) for a
        token, a throttle to end or a breaker to half-open; else :class:`NoEndpointError`."""
        purpose = purpose_of(method)
        waited = 0.0
        for _ in range(1000):  # bounded: each round waits or returns
            ep = self.pick(purpose, exclude)
            if ep is not None:
                return ep
            wait = self.wait_s(purpose, exclude)
            if wait is None or waited + wait > max_wait_s:
                break
            wait = max(wait, 0.001)
            await sleep(wait)
            waited += wait
        raise NoEndpointError(method, f"no RPC endpoint available ({self.describe()})")

    def describe(self) -> str:
        """One line: each endpoint's label and state, for errors and logs."""
        now = self.now()
        parts = []
        for ep in self.endpoints:
            reasons = ep.reasons(now)
            extra = f" ({', '.join(reasons)})" if reasons else ""
            parts.append(f"{ep.label}: {ep.state(now)}{extra}")
        return "; ".join(parts)

    # ------------------------------------------------------------------ outcomes

    def record_success(
        self,
        ep: Endpoint,
        latency_s: float,
        *,
        ledger: int | None = None,
        close_time: int | None = None,
    ) -> int:
        """An answer from ``ep``; ``ledger`` is its ``latestLedger`` when it has one. Returns
        the answer's lag behind the freshest ledger (0 without a ledger)."""
        ep.record_success(self.now(), latency_s)
        return 0 if ledger is None else self.observe_ledger(ep, ledger, close_time)

    def record_error(
        self,
        ep: Endpoint,
        error: BaseException | str,
        latency_s: float,
        *,
        retry_after_s: float | None = None,
    ) -> str:
        """A failed request (an exception, or an error kind); returns the kind. The
        ``Retry-After`` of an HTTP 429 is taken from ``retry_after_s`` or the exception's
        ``retry_after_s`` attribute."""
        if isinstance(error, str):
            kind = error
        else:
            kind = classify_error(error)
            if retry_after_s is None:
                retry_after_s = getattr(error, "retry_after_s", None)
        ep.record_error(self.now(), kind, latency_s, retry_after_s)
        return kind

    def observe_ledger(self, ep: Endpoint, ledger: int, close_time: int | None = None) -> int:
        """``ep`` answered as of ``ledger``: updates the freshest ledger and ``ep``'s lag;
        returns how many ledgers ``ep`` is behind the freshest (an answer that far behind
        is stale: the caller should not trust it for reads). A lagging answer is also
        counted as a ``stale`` error of ``ep``."""
        if self.freshest_ledger is None or ledger > self.freshest_ledger:
            self.freshest_ledger = ledger
            if close_time is not None:
                self.freshest_close_time = close_time
        elif (
            ledger == self.freshest_ledger
            and close_time is not None
            and (self.freshest_close_time is None or close_time > self.freshest_close_time)
        ):
            self.freshest_close_time = close_time
        ep.observe_ledger(self.now(), ledger, self.freshest_ledger)
        if ep.lagging:
            ep.errors["stale"] = ep.errors.get("stale", 0) + 1
        return ep.lag_ledgers

    # ------------------------------------------------------------------ probes

    def take_probes(self) -> list[tuple[Endpoint, str]]:
        """The health probes to send now, as ``(endpoint, method)``: ``getNetwork`` to an
        endpoint not verified yet, ``getLatestLedger`` to a half-open one and to one not heard
        from for ``probe_interval_s`` (a lagging endpoint gets no reads, so this is how it
        shows it caught up). Each probe takes a token and is marked in flight; record its
        outcome with :meth:`record_success` / :meth:`record_error` / :meth:`verify_network`."""
        now = self.now()
        out = []
        for ep in self.endpoints:
            if ep.refused or ep.is_throttled(now) or ep.is_open(now) or self._probing(ep, now):
                continue
            if not ep.verified:
                method = "getNetwork"
            elif ep.open_until is not None or (
                ep.heard_at is None or now - ep.heard_at >= self.policy.probe_interval_s
            ):
                method = "getLatestLedger"
            else:
                continue
            if not _has_token(ep, now):
                continue
            if ep.bucket is not None:
                ep.bucket.try_take(1, now)
            ep.probe_in_flight = True
            ep.probe_started = now
            out.append((ep, method))
        return out

    def verify_network(self, ep: Endpoint, answer: Any, expected: str, latency_s: float) -> None:
        """Check a ``getNetwork`` answer: the endpoint becomes usable when it serves
        ``expected``; :class:`WrongNetworkError` (naming the endpoint and both passphrases)
        when it serves another network; :class:`RpcMalformedError` without a passphrase."""
        passphrase = answer.get("passphrase") if isinstance(answer, dict) else None
        if not isinstance(passphrase, str):
            ep.record_error(self.now(), "malformed", latency_s)
            raise RpcMalformedError("getNetwork", f"endpoint {ep.label}: no passphrase")
        ep.record_success(self.now(), latency_s)
        if passphrase != expected:
            raise WrongNetworkError(
                f"RPC endpoint {ep.label} serves network {passphrase!r} but the shard is "
                f"configured for {expected!r}: remove it from network.rpc_urls or fix "
                "network_passphrase"
            )
        ep.verified = True

    # ------------------------------------------------------------------ figures

    def status(self) -> dict[str, Any]:
        """JSON-safe figures of every endpoint (labels only: no URL, no header value)."""
        now = self.now()
        return {
            "freshest_ledger": self.freshest_ledger,
            "freshest_close_time": self.freshest_close_time,
            "endpoints": [ep.status(now) for ep in self.endpoints],
        }


def _has_token(ep: Endpoint, now: float) -> bool:
    return ep.bucket is None or ep.bucket.wait_time(1, now) <= 1e-9


def _token_wait(ep: Endpoint, now: float) -> float:
    return 0.0 if ep.bucket is None else ep.bucket.wait_time(1, now)


async def check_networks(
    pool: EndpointPool,
    call: Callable[[Endpoint, str], Awaitable[Any]],
    expected: str,
) -> list[Endpoint]:
    """Ask every endpoint not verified yet for ``getNetwork`` (concurrently) and verify it.
    ``call(endpoint, method)`` only sends the request: the outcome is recorded here.

    Raises :class:`WrongNetworkError` naming every endpoint on another network (a
    configuration error: the keeper must not start). Returns the endpoints that did not answer
    (left unverified: they get ``getNetwork`` probes and no request until they pass)."""
    todo = [ep for ep in pool.endpoints if not ep.verified]

    async def one(ep: Endpoint) -> tuple[Any, float]:
        started = pool.now()
        return await call(ep, "getNetwork"), started

    results = await asyncio.gather(*(one(ep) for ep in todo), return_exceptions=True)
    wrong: list[str] = []
    unreachable: list[Endpoint] = []
    for ep, res in zip(todo, results, strict=True):
        if isinstance(res, BaseException):
            if not isinstance(res, RpcError):
                raise res
            pool.record_error(ep, res, 0.0)
            unreachable.append(ep)
            continue
        answer, started = res
        try:
            pool.verify_network(ep, answer, expected, pool.now() - started)
        except WrongNetworkError as exc:
            wrong.append(str(exc))
        except RpcMalformedError:
            unreachable.append(ep)
    if wrong:
        raise WrongNetworkError("; ".join(wrong))
    return unreachable
