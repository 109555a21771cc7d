"""The health probes and the start-up network check of a shard's RPC endpoints.

:class:`Probes` sends what :class:`shard_worker.endpoint_pool.EndpointPool` asks for
(``take_probes``: ``getNetwork`` to endpoints not verified yet, ``getLatestLedger`` to idle and
half-open ones), in the background, each through its endpoint's own client and with a token of
its budget, and records the outcomes. At start (:meth:`Probes.check_networks`) every endpoint
must answer the configured passphrase, and each one's latest ledger is asked, so that a lagging
endpoint is known before the first read. :class:`shard_worker.rpc_pool.PooledRpc` owns one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from shard_worker.endpoint_pool import EndpointPool, WrongNetworkError, check_networks
from shard_worker.endpoints import Endpoint
from shard_worker.errors import RpcError
from shard_worker.rpc import RpcClient

__all__ = ["PROBE_TICK_S", "Probes", "ledger_of"]

#: how often the probe loop looks for endpoints to probe
PROBE_TICK_S = 0.25


def ledger_of(method: str, result: Any) -> tuple[int | None, int | None]:
    """The ledger an answer is as of (``latestLedger``; ``sequence`` for getLatestLedger),
    and its close time when the answer has one."""
    if not isinstance(result, dict):
        return None, None
    key = "sequence" if method == "getLatestLedger" else "latestLedger"
    ledger = result.get(key)
    if isinstance(ledger, str) and ledger.isdigit():
        ledger = int(ledger)
    if not isinstance(ledger, int) or isinstance(ledger, bool) or ledger <= 0:
        return None, None
    close = result.get("closeTime" if method == "getLatestLedger" else "latestLedgerCloseTime")
    if isinstance(close, str) and close.isdigit():
        close = int(close)
    return ledger, close if isinstance(close, int) and not isinstance(close, bool) else None


class Probes:
    """The probes of one pool's endpoints (see the module docstring)."""

    def __init__(
        self,
        pool: EndpointPool,
        client_of: Callable[[Endpoint], RpcClient],
        passphrase: str,
        log: Any = logger,
    ) -> None:
        self.pool = pool
        self._client_of = client_of
        self.passphrase = passphrase
        self.log = log
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def check_networks(self) -> list[str]:
        """Every endpoint must serve the configured passphrase: raises
        :class:`WrongNetworkError` naming each one that does not. Then each endpoint's latest
        ledger, so that a lagging one is known before the first read. Returns the labels of
        the endpoints that did not answer (probed until they do). Starts the probe loop."""

        async def ask(ep: Endpoint, method: str) -> Any:
            await self._token(ep)  # the client's errors show the endpoint's label, no secret
            return await self._client_of(ep).call(method, attempts=1)

        down = await check_networks(self.pool, ask, self.passphrase)
        # each endpoint's latest ledger before the first read: a lagging endpoint must not
        # answer the start-up checks (an account funded a few ledgers ago "does not exist")
        await asyncio.gather(
            *(
                self._probe(ep, "getLatestLedger", token=True)
                for ep in self.pool.endpoints
                if ep.verified
            )
        )
        for ep in down:
            self.log.warning(
                "RPC endpoint {} did not answer getNetwork at start: no request goes there "
                "until a probe finds it on network {!r}",
                ep.label,
                self.passphrase,
            )
        self.start()
        return [ep.label for ep in down]

    def start(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._probe_loop(), name="rpc-probes")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._loop_task = None
        self._tasks.clear()

    async def _probe_loop(self) -> None:
        while True:
            for ep, method in self.pool.take_probes():
                if ep.refused:
                    continue
                task = asyncio.create_task(self._probe(ep, method))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(PROBE_TICK_S)

    async def _token(self, ep: Endpoint) -> None:
        """Wait for a token of ``ep``'s budget and take it (a request outside the pool's
        choice: the start-up checks). Bounded: a bucket refills within 1/rate s."""
        bucket = ep.bucket
        if bucket is None:
            return
        for _ in range(100):
            now = self.pool.now()
            if bucket.try_take(1, now):
                return
            await asyncio.sleep(max(0.001, bucket.wait_time(1, now)))

    async def _probe(self, ep: Endpoint, method: str, *, token: bool = False) -> None:
        """One probe of ``ep`` (its token already taken by ``take_probes``, unless
        ``token``), its outcome recorded."""
        if token:
            await self._token(ep)
        started = time.monotonic()
        try:
            result = await self._client_of(ep).call(method, attempts=1)
        except RpcError as exc:
            self.pool.record_error(ep, exc, time.monotonic() - started)
            return
        latency = time.monotonic() - started
        if method == "getNetwork":
            try:
                self.pool.verify_network(ep, result, self.passphrase, latency)
            except WrongNetworkError as exc:
                ep.refused = str(exc)
                self.log.error("{}: the endpoint gets no request", exc)
            except RpcError:
                return
            else:
                self.log.info("RPC endpoint {} is on the network: in use", ep.label)
            return
        ledger, close = ledger_of(method, result)
        self.pool.record_success(ep, latency, ledger=ledger, close_time=close)
