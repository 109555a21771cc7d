"""The newest ledger as the submitter's answers tell it.

Every ``sendTransaction`` and ``getTransaction`` answer carries the ledger it was made at
(``latestLedger``, ``latestLedgerCloseTime``). With a transaction or two confirming per source
account, these answers show a close well before the read loop's next poll: the turn, resend
and time-bound waits and the time bounds themselves use the newer of the two, at no request of
their own. Kept apart from the read loop's :class:`~shard_worker.ledger.LedgerClock`, whose
stale-answer check is for lagging nodes, not for answers that merely raced a close.
"""

from __future__ import annotations

import time
from typing import Any

from shard_worker.errors import RpcMalformedError
from shard_worker.ledger import Latest, LedgerClock
from shard_worker.rpc import as_int

__all__ = ["AnswerClock", "answer_ledger"]


def answer_ledger(res: dict[str, Any], field: str = "latestLedger") -> int:
    """An integer ledger field of an answer (``latestLedger``, ``latestLedgerCloseTime``); 0
    when missing or garbled (the callers only use it as a clock)."""
    try:
        return as_int(res, field, "sendTransaction/getTransaction", 0)
    except RpcMalformedError:
        return 0


class AnswerClock:
    """The newest ledger an answer reported, beside the read loop's clock."""

    __slots__ = ("clock", "seen", "seen_at")

    def __init__(self, clock: LedgerClock) -> None:
        self.clock = clock
        self.seen: Latest | None = None
        #: when (monotonic) an answer last reported ``seen``
        self.seen_at = 0.0

    def saw(self, res: dict[str, Any]) -> None:
        """Note an answer's ledger (one behind the newest reported teaches nothing)."""
        sequence, close = answer_ledger(res), answer_ledger(res, "latestLedgerCloseTime")
        if sequence <= 0 or close <= 0:
            return
        latest = Latest(sequence, close)
        if not latest.older_than(self.seen):
            self.seen, self.seen_at = latest, time.monotonic()

    def newest_seen(self) -> tuple[Latest | None, float]:
        """The newest ledger known, the read loop's or an answer's, and when (monotonic) it
        was last reported."""
        clock, seen = self.clock, self.seen
        if seen is None or (clock.newest is not None and seen.older_than(clock.newest)):
            return clock.newest, clock.newest_seen_at
        if clock.newest is not None and clock.newest.sequence == seen.sequence:
            return seen, max(self.seen_at, clock.newest_seen_at)
        return seen, self.seen_at

    def newest(self) -> Latest | None:
        """The newest ledger known (see :meth:`newest_seen`)."""
        return self.newest_seen()[0]
