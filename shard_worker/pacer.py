"""When to look for the next ledger: just before it is expected, then every ``step_s``.

Polling every second across 8 shards would cost 40 requests a 5-second ledger for nothing; a
new ledger is expected one ledger period after the previous one was seen. :class:`LedgerPacer`
learns the period from when new ledgers were seen (wall clock, since a fast devnet's ledger
clock need not match the wall clock), waits until a little before the next one is due, then
polls every ``step_s`` (at most 1 s) until it shows up.

A ledger is seen some time after it closed (the *lag*), and a late sighting looks just like a
longer period: learnt from every sighting, a period too long made each first poll later, the
sightings later still, and confirmed itself (measured: lags of 2-4 s, ledgers skipped). So:

* a ledger counts as seen when the poll that showed it was *sent*, not when its answer came
  back (an answer under load takes longer than the early margin, which added to the lag every
  ledger);
* the period is measured only between *bracketed* sightings, those whose previous poll (at
  most a step earlier) did not show the ledger yet: their lag is at most a step, so over a
  span of ``k`` ledgers the period is off by at most ``step_s / k``;
* the first poll comes ``early_s`` plus that bound before the ledger is expected: the lag
  shrinks each ledger until a poll comes too early (one more poll, a step later), which is a
  new bracketed sighting. Until two bracketed sightings are known every poll is a step apart.

About ``1 + (early_s + step_s / span) / step_s`` polls a ledger (1.1-1.2 with a 1 s step),
each ledger seen within about a step of its close; tests/shard_worker/test_pacer.py runs it
against a steady chain, a jittered one, and slow answers.
"""

from __future__ import annotations

from collections import deque

__all__ = ["LedgerPacer"]

#: the shortest wait between two polls
MIN_WAIT_S = 0.02
#: how early (in steps) the first poll for the next ledger is made, unless ``early_s`` is given
_EARLY = 0.1
#: new ledgers remembered (the period is measured over the bracketed ones among them)
WINDOW = 32


class LedgerPacer:
    """Tracks new ledgers seen and says how long to wait before the next poll."""

    __slots__ = ("_missed", "_seen", "early_s", "period_s", "step_s")

    def __init__(self, step_s: float, *, early_s: float | None = None) -> None:
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        self.step_s = step_s
        self.early_s = step_s * _EARLY if early_s is None else early_s
        if not 0 <= self.early_s < step_s:
            raise ValueError("early_s must be within [0, step_s)")
        #: estimated wall seconds per ledger (None until two bracketed sightings)
        self.period_s: float | None = None
        #: (sequence, when the poll that first showed it was sent, bracketed) of the last
        #: WINDOW new ledgers
        self._seen: deque[tuple[int, float, bool]] = deque(maxlen=WINDOW)
        #: a poll since the last new ledger showed nothing new
        self._missed = False

    def observe(self, sequence: int, sent_at: float) -> bool:
        """A poll sent at ``sent_at`` saw ledger ``sequence``; True when it is a new one."""
        seen = self._seen
        if seen and sequence <= seen[-1][0]:
            self._missed = True
            return False
        seen.append((sequence, sent_at, self._missed))
        self._missed = False
        self.period_s = None
        brackets = [(s, t) for s, t, b in seen if b]
        if len(brackets) >= 2:
            (s0, t0), (s1, t1) = brackets[0], brackets[-1]
            if s1 > s0 and t1 > t0:
                self.period_s = (t1 - t0) / (s1 - s0)
        return True

    def _span(self) -> int:
        """Ledgers between the oldest and newest bracketed sightings."""
        brackets = [s for s, _t, b in self._seen if b]
        return brackets[-1] - brackets[0] if len(brackets) >= 2 else 0

    def delay(self, now: float) -> float:
        """Seconds to wait before the next poll."""
        step = self.step_s
        span = self._span()
        if self.period_s is None or not span:
            return step
        early = self.early_s + step / span  # the margin and the period's error bound
        expected = self._seen[-1][1] + self.period_s - early
        if expected > now:
            return max(MIN_WAIT_S, expected - now)
        return step
