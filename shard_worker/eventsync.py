"""Following the SoroTask contract's events from call to call: which tasks changed, and when
only a full re-read is safe.

Only three calls change what a keeper decides on, and each emits an event naming the task
(../shared/SOROBAN_FACTS.md, "Events of the SoroTask contract"): ``register``
("TaskRegistered", id), ``deposit_gas`` ("GasDeposited", id), ``withdraw_gas`` ("GasWithdrawn",
id). ``execute`` emits nothing and only moves ``last_run`` forward, which the due index covers.

:class:`EventSync` keeps the position (cursor and its ledger), deduplicates by event id, and
decides, with a reason for the log, that only a full re-read is safe: no position yet, a
position older than the RPC's oldest ledger (retention), a -32600 "startLedger must be within
the ledger range" below the range, a getEvents failure, a saved position for a network reset
since. The wire format (params, answers, topics) is :mod:`shard_worker.eventwire`.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from shard_worker.errors import RpcError, RpcMalformedError, RpcResponseError
from shard_worker.eventwire import MAX_LIMIT, EventBatch, events_request, parse_events

__all__ = ["EventSync", "Position", "window_reason"]

#: JSON-RPC "invalid request": what stellar-rpc answers for a start outside its ledger range
INVALID_REQUEST = -32600
_RANGE_RE = re.compile(r"startLedger must be within the ledger range:\s*(\d+)\s*-\s*(\d+)")


# ---------------------------------------------------------------------- the follower


@dataclass(frozen=True, slots=True)
class Position:
    """Where the next getEvents call starts: right after ``cursor``, or at ``ledger`` itself
    when there is no cursor (just after a full scan). ``ledger`` is what retention is checked
    against."""

    ledger: int
    cursor: str | None = None


class EventSync:
    """One shard's event follower: builds each request, digests each answer, and says when
    only a full re-read is safe.

    Usage, once a ledger::

        if sync.rescan_reason: full scan (noting the latest ledger L0 first); sync.start_at(L0)
        params = sync.request()
        try: batch = sync.accept(await rpc.call("getEvents", params))
        except RpcError as exc: sync.fail(exc)   # may set rescan_reason
        re-read batch.ids (and the Counter when batch.registered); repeat while batch.more

    ``rescan_after_failures`` consecutive getEvents failures (default 1: any failure, as issue
    12 asks) drop the position. A node whose latest ledger is up to ``lag_tolerance`` ledgers
    behind the position (a lagging replica behind a load balancer) is not a failure: the same
    request is made again later; further behind, it is taken for a reset network.
    """

    def __init__(
        self,
        contract_id: str,
        *,
        limit: int = 1000,
        recent_ids: int = 20_000,
        rescan_after_failures: int = 1,
        lag_tolerance: int = 10,
    ) -> None:
        if not 0 < limit <= MAX_LIMIT or recent_ids < 1 or rescan_after_failures < 1:
            raise ValueError("limit 1..10000, recent_ids >= 1, rescan_after_failures >= 1")
        if lag_tolerance < 0:
            raise ValueError("lag_tolerance >= 0")
        #: how far ahead of a node's latest ledger the position may be before it is taken for
        #: a reset network rather than a lagging node
        self.lag_tolerance = lag_tolerance
        self.contract_id = contract_id
        self.limit = limit
        self.rescan_after_failures = rescan_after_failures
        self.position: Position | None = None
        #: why a full re-read is needed (None while the events can be followed)
        self.rescan_reason: str | None = "no events position yet (first start)"
        self.failures = 0
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._recent = recent_ids

    # ------------------------------------------------------------------ position

    def start_at(self, ledger: int) -> None:
        """A full scan that began at ``ledger`` (the latest ledger seen before its first read)
        is done: follow events from that ledger on (its events may be seen twice: harmless)."""
        if ledger <= 0:
            raise ValueError("ledger must be positive")
        self.position = Position(ledger)
        self.rescan_reason = None
        self.failures = 0

    def resume(self, position: Position, *, oldest_ledger: int, latest_ledger: int) -> str | None:
        """Resume from a saved position after a restart, given the RPC's ledger range (from
        getHealth). Returns None when resumed; else the reason a full re-read is needed
        (also left in :attr:`rescan_reason`)."""
        reason = window_reason(
            position.ledger, oldest_ledger, latest_ledger, lag_tolerance=self.lag_tolerance
        )
        if reason is not None:
            self._drop(f"restart: {reason}")
            return self.rescan_reason
        self.position = position
        self.rescan_reason = None
        self.failures = 0
        return None

    def check_window(self, oldest_ledger: int, latest_ledger: int) -> str | None:
        """Check the position against the RPC's range (getHealth's oldestLedger, say): drops
        it and returns the reason when events between it and now are gone."""
        if self.position is None:
            return self.rescan_reason
        if self.position.ledger < oldest_ledger:
            self._drop(window_reason(self.position.ledger, oldest_ledger, latest_ledger) or "")
        return self.rescan_reason

    def _drop(self, reason: str) -> None:
        self.position = None
        self.rescan_reason = reason
        self.failures = 0

    # ------------------------------------------------------------------ calls

    def request(self) -> dict[str, Any]:
        """The params of the next getEvents call."""
        pos = self.position
        if pos is None:
            raise RuntimeError(f"no events position: full re-read needed ({self.rescan_reason})")
        if pos.cursor is not None:
            return events_request(self.contract_id, cursor=pos.cursor, limit=self.limit)
        return events_request(self.contract_id, start_ledger=pos.ledger, limit=self.limit)

    def accept(self, result: object) -> EventBatch:
        """Digest a getEvents answer to :meth:`request`: moves the position to its cursor.
        A malformed answer counts as a failure (see :meth:`fail`) and is raised."""
        if self.position is None:
            raise RuntimeError("accept() without a position")
        try:
            batch = parse_events(result, self.contract_id, limit=self.limit, seen=self._seen)
        except RpcMalformedError as exc:
            self.fail(exc)
            raise
        if batch.oldest_ledger is not None and self.position.ledger < batch.oldest_ledger:
            # the server answered although our start is gone: events may be missing
            self._drop(
                window_reason(self.position.ledger, batch.oldest_ledger, batch.latest_ledger) or ""
            )
            return batch
        self.position = Position(batch.cursor_ledger, batch.cursor)
        self.failures = 0
        self._remember_seen(batch.event_ids)
        return batch

    def _remember_seen(self, event_ids: list[str]) -> None:
        """Keep the most recent ``recent_ids`` event ids (older ones lie behind the cursor)."""
        seen, order = self._seen, self._order
        order.extend(event_ids)
        while len(order) > self._recent:
            seen.discard(order.popleft())

    def fail(self, error: BaseException | str) -> str | None:
        """A getEvents call failed. Returns the rescan reason when the position is dropped,
        None when the same request should simply be made again later."""
        pos = self.position
        if isinstance(error, RpcResponseError) and error.code == INVALID_REQUEST:
            m = _RANGE_RE.search(error.rpc_message)
            if m is not None and pos is not None:
                oldest, latest = int(m.group(1)), int(m.group(2))
                if latest < pos.ledger <= latest + self.lag_tolerance:
                    return None  # a node behind us: not a failure, ask again later
                self._drop(
                    window_reason(pos.ledger, oldest, latest, lag_tolerance=self.lag_tolerance)
                    or f"getEvents refused the position (ledger {pos.ledger}): {error.rpc_message}"
                )
                return self.rescan_reason
        self.failures += 1
        if self.failures >= self.rescan_after_failures:
            what = str(error) if isinstance(error, (RpcError, str)) else repr(error)
            n = self.failures
            self._drop(f"getEvents failed{f' {n} times in a row' if n > 1 else ''}: {what}")
            return self.rescan_reason
        return None


def window_reason(
    position_ledger: int, oldest_ledger: int, latest_ledger: int, *, lag_tolerance: int = 0
) -> str | None:
    """Why events since ``position_ledger`` cannot be followed on an RPC holding
    ``oldest_ledger .. latest_ledger``; None when they can. A position up to
    ``lag_tolerance`` ledgers ahead of the RPC is a lagging node, not a reset network."""
    if position_ledger < oldest_ledger:
        return (
            f"the events position (ledger {position_ledger}) is older than the RPC's oldest "
            f"ledger {oldest_ledger}: {oldest_ledger - position_ledger} ledgers of events are "
            f"gone (retention {latest_ledger - oldest_ledger + 1} ledgers)"
        )
    if position_ledger > latest_ledger + lag_tolerance:
        return (
            f"the events position (ledger {position_ledger}) is ahead of the RPC's latest "
            f"ledger {latest_ledger} (a reset network, or another RPC)"
        )
    return None
