"""The RPC client's further attempts (:class:`Retries`, a part of
:class:`shard_worker.rpc.RpcClient`): a retry's wait and token; hedged requests: a read's
attempts as copies in flight together, copies of an idempotent request the caller judges
(``sendTransaction`` of one envelope), and the check that a copy may start now (a token of the
retry bucket and of the request budget at hand). The policy and the race itself are
:mod:`shard_worker.hedge`'s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from shard_worker.budget import TokenBucket
from shard_worker.errors import RpcError
from shard_worker.hedge import AGAIN, STOP, WIN, HedgePolicy, Race, race
from shard_worker.retry import Backoff

__all__ = ["Retries"]


class Retries:
    """Retries and hedged calls; the client sets what is declared here (:meth:`_init_hedging`
    the hedging's own state) and provides ``_one`` (one counted attempt)."""

    _next_id: int
    timeout_s: float
    retry_bucket: TokenBucket
    _not_before: float
    backoff: Backoff
    retries_denied: int
    retries_by_kind: dict[str, int]
    total_retries: int
    _one: Callable[..., Awaitable[Any]]

    def _init_hedging(self, copies: int) -> None:
        #: hedged requests (:mod:`shard_worker.hedge`): copies at most in flight, the delay
        self.hedge = HedgePolicy(copies)
        #: copies started while another copy of the request was out, by method (since the
        #: last :meth:`drain_hedges`), in all, and hedges refused for want of a token
        self.hedges_by_method: dict[str, int] = {}
        self.total_hedges = 0
        self.hedges_denied = 0

    def _retry_delay(self, retry: int, error: RpcError) -> float:
        """The backoff before retry ``retry``, at least the server's ``Retry-After``."""
        delay = self.backoff.delay(retry)
        if error.retry_after_s is not None:
            delay = max(delay, error.retry_after_s)
        return delay

    def _may_retry(self, error: RpcError, delay: float, deadline: float | None) -> bool:
        """A retry after ``delay`` s: within the caller's deadline, and a token of the retry
        bucket (retries of all requests together stay under ``max_retries_per_s``)."""
        now = time.monotonic()
        if deadline is not None and now + delay >= deadline:
            return False
        if not self.retry_bucket.try_take(1.0, now):
            self.retries_denied += 1
            return False
        self.retries_by_kind[error.kind] = self.retries_by_kind.get(error.kind, 0) + 1
        self.total_retries += 1
        return True

    async def _call_hedged(
        self,
        method: str,
        body: bytes,
        req_id: int,
        timeout_s: float,
        max_attempts: int,
        deadline: float | None,
    ) -> Any:
        """:meth:`call` with its attempts as hedged copies (:func:`~shard_worker.hedge.race`):
        a round of copies until one answers well; when every copy of a round failed, the
        next round starts after the backoff, as a retry would (one attempt less per copy)."""
        left = max_attempts
        last_error: RpcError | None = None
        retry = 0
        while left > 0:
            if last_error is not None:
                delay = self._retry_delay(retry, last_error)
                if not self._may_retry(last_error, delay, deadline):
                    raise last_error
                retry += 1
                await asyncio.sleep(delay)
            got = await self._race(method, body, req_id, timeout_s, deadline, _judge_read, left)
            left -= got.started
            answer = got.last
            if got.won:
                return answer
            if not isinstance(answer, RpcError) or not answer.retryable:
                raise answer
            last_error = answer
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
        """Copies of one request the caller knows to be idempotent (``sendTransaction`` of
        one signed envelope), one attempt each, hedged as the policy allows, a failed copy
        replaced at once (at most ``3 * max_copies`` copies), judged by ``judge``; the caller
        reads the answers."""
        self._next_id += 1
        req_id = self._next_id
        body = orjson.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params})
        total = 3 * self.hedge.max_copies if self.hedge.enabled else 1
        return await self._race(
            method, body, req_id, timeout_s or self.timeout_s, None, judge, total, refill=True
        )

    async def _race(
        self,
        method: str,
        body: bytes,
        req_id: int,
        timeout_s: float,
        deadline: float | None,
        judge: Callable[[Any], str],
        max_copies: int,
        *,
        refill: bool = False,
    ) -> Race:
        """One round of hedged copies; the first copy waits for the budget like any attempt,
        the others start only with a token at hand (:meth:`hedge_token`)."""
        n = 0

        def start() -> Awaitable[Any]:
            nonlocal n
            n += 1
            return self._one(method, body, req_id, timeout_s, deadline, prepaid=n > 1)

        got = await race(
            start,
            judge,
            delay_s=lambda: self.hedge.delay_s(method),
            max_in_flight=self.hedge.max_copies,
            max_copies=max_copies,
            may_add=lambda: self.hedge_token(method, deadline),
            refill=refill,
        )
        if got.hedged:
            self.hedges_by_method[method] = self.hedges_by_method.get(method, 0) + got.hedged
            self.total_hedges += got.hedged
        return got

    def hedge_token(self, method: str, deadline: float | None = None) -> bool:
        """Whether another copy of a ``method`` request may start now (a hedge): not past
        the ``deadline`` or inside a server's ``Retry-After``, a token of the retry bucket
        at hand (shared with the retries) and of the request budget (:meth:`_budget_now`).
        Takes the tokens when it says yes."""
        now = time.monotonic()
        if (deadline is not None and now >= deadline) or now < self._not_before:
            return False
        if self.retry_bucket.wait_time(1.0, now) > 0:
            self.hedges_denied += 1
            return False
        if not self._budget_now():
            self.hedges_denied += 1
            return False
        return self.retry_bucket.try_take(1.0, now)

    def _budget_now(self) -> bool:
        """A token of the shard's request budget now, for a hedge (no budget here)."""
        return True

    def drain_hedges(self) -> dict[str, int]:
        """Hedged copies by method since the last call; resets."""
        n, self.hedges_by_method = self.hedges_by_method, {}
        return n


def _judge_read(answer: Any) -> str:
    """A read's copy: an answer wins; a retryable failure may be replaced; any other
    failure is final."""
    if not isinstance(answer, BaseException):
        return WIN
    if isinstance(answer, RpcError) and answer.retryable:
        return AGAIN
    return STOP
