"""When to look for the next ledger: just before it is expected, then every ``step_s``.

Polling every second across 8 shards would cost 40 requests a 5-second ledger for nothing; a
new ledger is expected one ledger period after the previous one was seen. :class:`LedgerPacer`
learns the period from when new ledgers were seen (wall clock, a moving average, since a fast
devnet's ledger clock need not match the wall clock), waits until a tenth of a step before the
next one is due, then polls every ``step_s`` (at most 1 s) until it shows up. Observed this way
a ledger is seen at most ``step_s`` after it appears, for about 1.1 polls a ledger.
"""

from __future__ import annotations

__all__ = ["LedgerPacer"]

#: the shortest wait between two polls
MIN_WAIT_S = 0.02
#: how early (in steps) the first poll for the next ledger is made: the observed lag shrinks by
#: this much each ledger until a poll comes too early (one more poll, one step later), so about
#: ``1 + _EARLY`` polls a ledger
_EARLY = 0.1
#: weight of the newest interval in the period's moving average
_ALPHA = 0.2


class LedgerPacer:
    """Tracks new ledgers seen and says how long to wait before the next poll."""

    __slots__ = ("_seen_at", "_seq", "period_s", "step_s")

    def __init__(self, step_s: float) -> None:
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        self.step_s = step_s
        #: estimated wall seconds per ledger (None until two ledgers were seen)
        self.period_s: float | None = None
        self._seq: int | None = None
        self._seen_at = 0.0

    def observe(self, sequence: int, now: float) -> bool:
        """A poll at ``now`` saw ledger ``sequence``; True when it is a new one."""
        if self._seq is not None and sequence <= self._seq:
            return False
        if self._seq is not None:
            per = (now - self._seen_at) / (sequence - self._seq)
            if per > 0:
                p = self.period_s
                self.period_s = per if p is None else (1 - _ALPHA) * p + _ALPHA * per
        self._seq = sequence
        self._seen_at = now
        return True

    def delay(self, now: float) -> float:
        """Seconds to wait before the next poll."""
        step = self.step_s
        if self.period_s is None or self._seq is None:
            return step
        expected = self._seen_at + self.period_s - step * _EARLY
        if expected > now:
            return max(MIN_WAIT_S, expected - now)
        return step
