"""The keeper's clock: the ledgers the RPC reports, never going back.

A ``getLatestLedger`` answer behind the newest ledger already seen (a lagging node behind a
load balancer, say) is stale: it is counted (``stale_ledger_answers``, and as an error of
``getLatestLedger``) and never sets a transaction's time bound or auth expiry, since a bound
computed from it may already have passed (the transaction would be rejected ``txTOO_LATE``).

When the events read mode polls for each new ledger just after it closes (``paced``), others
can wait for the next ledger instead of polling on their own (:meth:`LedgerClock.wait_newer`):
the submitter's confirmation asks ``getTransaction`` once a ledger rather than every
``confirm_poll_s`` (a transaction cannot be applied before the next close).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from loguru import logger

from shard_worker.context import Tally
from shard_worker.errors import RpcMalformedError
from shard_worker.rpc import RpcClient, as_int, expect_dict

__all__ = ["Latest", "LedgerClock"]


class Latest:
    """One ledger as reported: its sequence number and close time (unix seconds)."""

    __slots__ = ("close_time", "sequence")

    def __init__(self, sequence: int, close_time: int) -> None:
        self.sequence = sequence
        self.close_time = close_time

    def older_than(self, other: Latest | None) -> bool:
        """True when this answer is behind ``other`` (a lagging RPC node)."""
        return other is not None and (
            self.sequence < other.sequence or self.close_time < other.close_time
        )


class LedgerClock:
    """The newest ledger seen, and the ledger of the last completed read cycle."""

    def __init__(self, rpc: RpcClient, tally: Tally, log: Any = logger) -> None:
        self.rpc = rpc
        self.tally = tally
        self.log = log
        #: the newest ledger any getLatestLedger answer reported, and when (monotonic) an
        #: answer last confirmed it
        self.newest: Latest | None = None
        self.newest_seen_at = 0.0
        #: the ledger of the last completed read cycle (None before the first)
        self.last_read: Latest | None = None
        #: a poller sees each new ledger soon after it closes (the events read mode's pacer)
        self.paced = False
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def last_read_sequence(self) -> int:
        """The last completed read cycle's ledger; -1 before the first."""
        return -1 if self.last_read is None else self.last_read.sequence

    async def latest(self) -> Latest:
        """The RPC's latest ledger as answered (maybe stale: see :meth:`is_stale`)."""
        res = expect_dict(await self.rpc.call("getLatestLedger"), "getLatestLedger")
        seq = as_int(res, "sequence", "getLatestLedger")
        close_time = as_int(res, "closeTime", "getLatestLedger")
        if seq <= 0 or close_time <= 0:
            raise RpcMalformedError("getLatestLedger", "non-positive sequence or close time")
        latest = Latest(seq, close_time)
        self.note(latest)
        return latest

    def note(self, latest: Latest) -> None:
        """A poll saw ``latest``: the newest unless it is behind (waiters of an older ledger
        are woken)."""
        if latest.older_than(self.newest):
            return
        newer = self.newest is None or latest.sequence > self.newest.sequence
        self.newest = latest
        self.newest_seen_at = time.monotonic()
        if newer:
            self._wake()

    def unpace(self) -> None:
        """No more paced polls (a stop): waiters are woken and later ones poll on their own."""
        self.paced = False
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def wait_newer(self, sequence: int, at_most_s: float) -> None:
        """Until a ledger after ``sequence`` was seen, or ``at_most_s`` seconds."""
        if self.newest is not None and self.newest.sequence > sequence:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, at_most_s)
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def is_stale(self, latest: Latest) -> bool:
        """True (and counted as a getLatestLedger error) when ``latest`` is behind the newest
        ledger already seen."""
        if not latest.older_than(self.newest):
            return False
        self.tally.totals["stale_ledger_answers"] += 1
        self.rpc.note_error("getLatestLedger")
        return True

    async def for_tx(self) -> Latest:
        """The ledger a transaction's time bound and auth expiry are computed from: the
        RPC's latest, or the newest seen when that answer is stale."""
        latest = await self.latest()
        if self.is_stale(latest):
            assert self.newest is not None
            self.log.debug(
                "stale getLatestLedger answer ({} < {}); using the newest seen",
                latest.sequence,
                self.newest.sequence,
            )
            return self.newest
        return latest
