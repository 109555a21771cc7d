"""Several RPC endpoints behind the one ``call`` the keeper's roles use (issue 14, wired).

:class:`PooledRpc` has the interface of :class:`shard_worker.rpc.RpcClient` that the roles use
(``call``, ``note_error``, ``drain_counters``, ``total_calls``, ``total_errors``, ``aclose``),
so the roles do not know whether one endpoint or several answer. Each endpoint has its own
``RpcClient`` (its URL, its header values) asked for one attempt at a time; which endpoint
takes an attempt is :class:`shard_worker.endpoint_pool.EndpointPool`'s choice:

* reads spread by weight over healthy endpoints; a failed attempt is tried again on another
  endpoint at once (the next one, no backoff while there is one left to try);
* a read answer whose ``latestLedger`` is more than ``max_lag_ledgers`` behind the freshest
  ledger seen is not used when another endpoint can answer: it is asked again there;
* ``sendTransaction`` goes through one endpoint (never a half-open or lagging one); when its
  answer is lost it may be sent again elsewhere (the same signed transaction: same hash, at
  most one of them is applied); ``getTransaction`` may be polled through any endpoint;
* health probes (``getNetwork`` to endpoints not verified yet, ``getLatestLedger`` to idle and
  half-open ones) run in the background, each taking a token of its endpoint's budget.

:func:`make_rpc` builds the client a worker spec asks for: a plain ``RpcClient`` for a single
``rpc_url``, a ``PooledRpc`` for ``rpc_endpoints``. Nothing here logs a URL or a header value:
each endpoint's client cleans its errors of the URL and the header values
(:func:`shard_worker.endpoint_config.scrub_url`, as a single ``rpc_url``'s client does) and
endpoints are shown by label.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from shard_worker.budget import RequestBudget
from shard_worker.endpoint_config import EndpointConfig
from shard_worker.endpoint_pool import (
    READ,
    SEND,
    EndpointPool,
    NoEndpointError,
    purpose_of,
)
from shard_worker.endpoints import NEUTRAL_KINDS, Endpoint, HealthPolicy
from shard_worker.errors import RpcError
from shard_worker.hedge import Race, one_copy
from shard_worker.retry import Backoff
from shard_worker.rpc import RpcClient
from shard_worker.rpc_probes import Probes, ledger_of
from shard_worker.rpcbudget import BudgetedRpcClient
from shard_worker.spec import WorkerSpec

__all__ = ["PooledRpc", "make_rpc"]

#: the keyword options ``RpcClient.call`` takes (a ``deadline`` is also honoured here)
_CLIENT_OPTIONS = frozenset(inspect.signature(RpcClient.call).parameters) - {
    "self",
    "method",
    "params",
    "timeout_s",
    "attempts",
}


class PooledRpc:
    """The keeper's RPC over an :class:`EndpointPool` (see the module docstring)."""

    def __init__(
        self,
        pool: EndpointPool,
        clients: list[RpcClient],
        *,
        passphrase: str,
        max_attempts: int = 4,
        max_wait_s: float = 10.0,
        log: Any = logger,
    ) -> None:
        if len(clients) != len(pool.endpoints):
            raise ValueError("one client per endpoint")
        self.pool = pool
        self._clients = {id(ep): c for ep, c in zip(pool.endpoints, clients, strict=True)}
        self.passphrase = passphrase
        self.max_attempts = max(1, max_attempts)
        #: the longest a request waits for an endpoint (a token, a throttle, a breaker)
        self.max_wait_s = max_wait_s
        self.backoff = Backoff(0.1, max_s=2.0, jitter=0.5)
        self.log = log
        #: read answers asked again elsewhere because they were behind the freshest ledger
        self.stale_retries = 0
        #: during the start-up checks a read must come from an endpoint at the freshest
        #: ledger (one a ledger behind says an account funded just now does not exist, and
        #: that is a configuration error); the keeper turns this off once they passed
        self.fresh_reads_only = True
        #: sendTransaction attempts sent again through another endpoint after a lost answer
        self.send_failovers = 0
        #: attempts after a call's first (on another endpoint, or the same after a backoff),
        #: by the kind of the failure they follow, since the last :meth:`drain_kinds`
        self.retries_by_kind: dict[str, int] = {}
        self._retries = 0
        self._states: dict[str, str] = {}
        #: when :meth:`report` last sent the figures
        self._reported_at = 0.0
        self.probes = Probes(pool, self.client_of, passphrase, log)

    def __repr__(self) -> str:
        return f"PooledRpc({self.pool!r})"

    # ------------------------------------------------------------ RpcClient's interface

    @property
    def total_calls(self) -> int:
        return sum(c.total_calls for c in self._clients.values())

    @property
    def total_errors(self) -> int:
        return sum(c.total_errors for c in self._clients.values())

    @property
    def total_retries(self) -> int:
        return self._retries + sum(getattr(c, "total_retries", 0) for c in self._clients.values())

    @property
    def retries_denied(self) -> int:
        return sum(getattr(c, "retries_denied", 0) for c in self._clients.values())

    def drain_kinds(self) -> tuple[dict[str, int], dict[str, int]]:
        """(failed attempts by kind, retries by kind) of every endpoint together since the
        last drain (the clients' own, when they count them, and this pool's retries)."""
        failures: dict[str, int] = {}
        retries, self.retries_by_kind = self.retries_by_kind, {}
        for client in self._clients.values():
            drain = getattr(client, "drain_kinds", None)
            if drain is None:
                continue
            f, r = drain()
            for target, source in ((failures, f), (retries, r)):
                for kind, n in source.items():
                    target[kind] = target.get(kind, 0) + n
        return failures, retries

    def drain_waits(self) -> dict[str, int]:
        """Attempts that waited for the shard's budget by priority, every endpoint together."""
        return self._merged("drain_waits")

    def drain_bytes(self) -> dict[str, int]:
        """Answer bytes by method, every endpoint together."""
        return self._merged("drain_bytes")

    def _merged(self, drain: str) -> dict[str, int]:
        """The clients' ``drain`` counts (``{label: n}``) summed, from those that keep them."""
        total: dict[str, int] = {}
        for client in self._clients.values():
            counts = getattr(client, drain, dict)()
            for label, n in counts.items():
                total[label] = total.get(label, 0) + n
        return total

    def client_of(self, ep: Endpoint) -> RpcClient:
        return self._clients[id(ep)]

    def note_error(self, method: str) -> None:
        self.client_of(self.pool.endpoints[0]).note_error(method)

    def drain_counters(self) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
        """Per-method (calls, errors, mean latency) of every endpoint together."""
        calls: dict[str, int] = {}
        errors: dict[str, int] = {}
        latency_sum: dict[str, float] = {}
        for client in self._clients.values():
            c, e, lat = client.drain_counters()
            for m, n in c.items():
                calls[m] = calls.get(m, 0) + n
                latency_sum[m] = latency_sum.get(m, 0.0) + lat.get(m, 0.0) * n
            for m, n in e.items():
                errors[m] = errors.get(m, 0) + n
        latency = {m: round(latency_sum[m] / calls[m], 6) for m in calls if calls[m]}
        return calls, errors, latency

    async def aclose(self) -> None:
        await self.probes.stop()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()

    async def __aenter__(self) -> PooledRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ calls

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        attempts: int | None = None,
        **options: Any,
    ) -> Any:
        """Call ``method`` on the endpoint the pool chooses; a failed attempt (or a stale
        read) is tried on another endpoint; raises the last :class:`RpcError`. ``options``
        go to each endpoint's ``RpcClient.call`` as they are."""
        purpose = purpose_of(method)
        tried: list[Endpoint] = []
        last_error: RpcError | None = None
        stale: Any = None
        limit = attempts or self.max_attempts
        deadline = options.get("deadline")
        options = {k: v for k, v in options.items() if k in _CLIENT_OPTIONS}
        same_endpoint_retries = 0
        for attempt in range(limit):
            if attempt and last_error is not None:
                if deadline is not None and time.monotonic() >= deadline:
                    break  # the caller's deadline: no new attempt
                kind = getattr(last_error, "kind", None) or "transport"
                self.retries_by_kind[kind] = self.retries_by_kind.get(kind, 0) + 1
                self._retries += 1
            wait = self.max_wait_s
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            ep = await self._choose(method, tried, wait)
            if ep in tried:  # every endpoint tried: back off before asking one again
                await self.backoff.wait(same_endpoint_retries)
                same_endpoint_retries += 1
            if purpose == SEND and attempt:
                self.send_failovers += 1
            tried.append(ep)
            started = time.monotonic()
            try:
                result = await self.client_of(ep).call(
                    method, params, timeout_s=timeout_s, attempts=1, **options
                )
            except RpcError as exc:  # cleaned of the URL and headers by the client
                kind = self.pool.record_error(ep, exc, time.monotonic() - started)
                if kind in NEUTRAL_KINDS:
                    raise  # about the request itself: another endpoint would say the same
                last_error = exc
                continue
            ledger, close = ledger_of(method, result)
            self.pool.record_success(
                ep, time.monotonic() - started, ledger=ledger, close_time=close
            )
            behind = ep.lagging or (self.fresh_reads_only and ep.lag_ledgers > 0)
            if purpose == READ and behind and attempt + 1 < limit and self._others(tried):
                self.stale_retries += 1
                stale = result
                continue
            return result
        if stale is not None:
            return stale  # every endpoint behind: the freshest guard is the caller's
        assert last_error is not None
        raise last_error

    async def copies(
        self,
        method: str,
        params: dict[str, Any],
        judge: Callable[[Any], str],
        *,
        timeout_s: float | None = None,
    ) -> Race:
        """:meth:`RpcClient.copies` through the pool: one copy, on the endpoint the pool
        chooses (no hedging across endpoints: a failed send is sent again by the caller)."""
        return await one_copy(
            lambda: self.call(method, params, timeout_s=timeout_s, attempts=1), judge
        )

    @property
    def total_hedges(self) -> int:
        return sum(c.total_hedges for c in self._clients.values())

    def drain_hedges(self) -> dict[str, int]:
        """Hedged copies by method, every endpoint together."""
        return self._merged("drain_hedges")

    def _others(self, tried: list[Endpoint]) -> bool:
        return any(ep.verified and ep not in tried for ep in self.pool.endpoints)

    async def _choose(self, method: str, tried: list[Endpoint], max_wait_s: float) -> Endpoint:
        """An endpoint not tried yet for this call when one can take it soon, else any."""
        untried = [ep for ep in self.pool.endpoints if ep not in tried]
        if tried and untried:
            wait = self.pool.wait_s(purpose_of(method), exclude=tried)
            if wait is not None and wait <= 0.05:
                with contextlib.suppress(NoEndpointError):
                    return await self.pool.acquire(method, exclude=tried, max_wait_s=0.05)
        return await self.pool.acquire(method, max_wait_s=max_wait_s)

    # ------------------------------------------------------------ start and probes

    async def check_networks(self) -> list[str]:
        """See :meth:`shard_worker.rpc_probes.Probes.check_networks`."""
        return await self.probes.check_networks()

    # ------------------------------------------------------------ figures

    def report(self, send: Callable[[dict[str, Any]], None], every_s: float = 1.0) -> None:
        """:meth:`status` to ``send``, at most every ``every_s``."""
        now = time.monotonic()
        if now - self._reported_at >= every_s:
            self._reported_at = now
            send(self.status())

    def status(self) -> dict[str, Any]:
        """Per-endpoint figures for the supervisor (labels only); logs each endpoint whose
        state changed since the last call (a WARNING when it leaves ``up``)."""
        doc = self.pool.status()
        doc["stale_retries"] = self.stale_retries
        doc["send_failovers"] = self.send_failovers
        for e in doc["endpoints"]:
            label, state = e["endpoint"], e["state"]
            before = self._states.get(label, "up")
            if state != before:
                why = ", ".join(e["reasons"]) or "healthy"
                level = "INFO" if state == "up" else "WARNING"
                self.log.log(level, "RPC endpoint {}: {} -> {} ({})", label, before, state, why)
            self._states[label] = state
        return doc


def make_rpc(
    spec: WorkerSpec,
    *,
    max_connections: int,
    budget: RequestBudget | None = None,
    log: Any = logger,
    **client_kw: Any,
) -> BudgetedRpcClient | PooledRpc:
    """The RPC client of a worker spec: one endpoint (``rpc_url``) or a pool
    (``rpc_endpoints``; header values read from the environment here, once; ``client_kw`` go
    to each endpoint's :class:`RpcClient`, e.g. its attempts and backoff); every attempt,
    on any endpoint, takes a token of the shard's ``budget`` first (default: the spec's
    ``max_requests_per_s``)."""
    if budget is None:
        budget = RequestBudget(spec.max_requests_per_s)
    if not spec.rpc_endpoints:
        return BudgetedRpcClient(
            spec.rpc_url,
            budget=budget,
            timeout_s=spec.rpc_timeout_s,
            hedge_copies=spec.rpc_hedge_copies,
            transport=spec.http_client,
            max_connections=max_connections,
            **client_kw,
        )
    configs = [
        EndpointConfig(
            url=e["url"],
            weight=float(e.get("weight") or 1.0),
            max_requests_per_s=e.get("max_requests_per_s"),
            headers_from_env=dict(e.get("headers_from_env") or {}),
            name=e.get("name"),
        )
        for e in spec.rpc_endpoints
    ]
    policy = HealthPolicy(
        max_lag_ledgers=spec.max_lag_ledgers,
        probe_interval_s=min(5.0, max(0.5, spec.poll_interval_s)),
    )
    pool = EndpointPool(configs, policy=policy, clock=time.monotonic)
    clients: list[RpcClient] = [
        BudgetedRpcClient(
            ep.url,
            budget=budget,
            timeout_s=spec.rpc_timeout_s,
            transport=spec.http_client,
            max_connections=max_connections,
            headers=ep.headers,
            label=ep.label,
            **client_kw,
        )
        for ep in pool.endpoints
    ]
    return PooledRpc(pool, clients, passphrase=spec.network_passphrase, log=log)
