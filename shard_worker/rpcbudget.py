"""The shard's RPC request budget applied to every request it sends.

:class:`BudgetedRpcClient` is the :class:`~shard_worker.rpc.RpcClient` whose every HTTP attempt
(retries included) first takes a token from one :class:`~shard_worker.budget.RequestBudget`
(``max_requests_per_s``); a hedged copy (:mod:`shard_worker.hedge`) starts only if it can take
one at once, and only for due work and a new ledger's reads. The priority of a request is the
one in force where it is made (:func:`priority`, a context variable, so the readers mark their
calls without new arguments through the executor or the helpers): due work (the default:
executions, reading due tasks) first, then a new ledger's events and re-reads, then the sweep,
then full re-reads.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from shard_worker.budget import DUE, LEDGER, PRIORITY_NAMES, RequestBudget
from shard_worker.rpc import RpcClient

__all__ = ["BudgetedRpcClient", "priority"]

_PRIORITY: contextvars.ContextVar[int] = contextvars.ContextVar("rpc_priority", default=DUE)


@contextlib.contextmanager
def priority(level: int) -> Iterator[None]:
    """Requests made inside (in this task and tasks it creates) take tokens at ``level``."""
    token = _PRIORITY.set(level)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


class BudgetedRpcClient(RpcClient):
    """An :class:`RpcClient` whose every attempt waits for the budget first."""

    def __init__(self, url: str, *, budget: RequestBudget, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.budget = budget
        #: attempts that had to wait for a token by priority name (since the last
        #: :meth:`drain_waits`)
        self.waits: dict[str, int] = {}
        #: bytes of answers received by method (since the last :meth:`drain_bytes`)
        self.bytes_in: dict[str, int] = {}

    async def _attempt(
        self, method: str, body: bytes, req_id: int, timeout_s: float, *, prepaid: bool = False
    ) -> Any:
        """One attempt after a token of the budget (``prepaid``: a hedge took it already)."""
        level = _PRIORITY.get()
        if not prepaid and not self.budget.try_acquire(level):
            name = PRIORITY_NAMES[level]
            self.waits[name] = self.waits.get(name, 0) + 1
            await self.budget.acquire(level)
        return await super()._attempt(method, body, req_id, timeout_s)

    def _budget_now(self) -> bool:
        """A hedge takes a token only now, and only for due work and a new ledger's reads
        (a copy of a sweep or rescan read would spend the budget for no one waiting)."""
        level = _PRIORITY.get()
        return level <= LEDGER and self.budget.try_acquire(level)

    def _parse(self, method: str, content: bytes, req_id: int) -> Any:
        self.bytes_in[method] = self.bytes_in.get(method, 0) + len(content)
        return super()._parse(method, content, req_id)

    def drain_bytes(self) -> dict[str, int]:
        """Answer bytes received by method since the last call; resets."""
        n, self.bytes_in = self.bytes_in, {}
        return n

    def drain_waits(self) -> dict[str, int]:
        """Attempts that waited for a token since the last call, by priority; resets."""
        n, self.waits = self.waits, {}
        return n
