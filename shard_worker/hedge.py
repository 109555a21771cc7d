"""Hedged requests ("The Tail at Scale", Dean and Barroso): copies of one idempotent request.

A request whose copy has not answered within the hedge delay (from the method's recent answer
times and failure rate: :class:`HedgePolicy`) gets another copy; a copy that fails while
another is still out is replaced at once; the first good answer wins and the copies still out
are cancelled. At most ``max_copies`` copies are in flight at once. Whether a copy may start is
the caller's ``may_add`` (the shard's request budget has a token now, the retry bucket allows
it), so a storm of hedges cannot become an overload of its own. A healthy RPC is not hedged.

* :class:`AnswerWindow` and :class:`HedgePolicy`: the pure parts (which methods, how many
  copies, the delay);
* :func:`race`: the copies of one request as asyncio tasks, judged one answer at a time by the
  caller's ``judge``: :data:`WIN` (take it, cancel the rest), :data:`AGAIN` (a failure: a
  replacement may start while another copy is out), :data:`HOLD` (no new copy: wait for those
  out, the caller decides from all answers) or :data:`STOP` (final: cancel the rest).

Which requests are idempotent: every read, ``simulateTransaction`` and ``getTransaction``
(:data:`HEDGEABLE`), and ``sendTransaction`` of one signed envelope (core knows it by its
hash: DUPLICATE while queued), whose copies the submitter judges itself
(:mod:`shard_worker.sendcopies`).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shard_worker.errors import RpcError

__all__ = [
    "AGAIN",
    "HEDGEABLE",
    "HOLD",
    "STOP",
    "WIN",
    "AnswerWindow",
    "HedgePolicy",
    "Race",
    "one_copy",
    "race",
]

#: requests the RPC client hedges by itself (reads: asking twice changes nothing)
HEDGEABLE = frozenset(
    {
        "getEvents",
        "getFeeStats",
        "getHealth",
        "getLatestLedger",
        "getLedgerEntries",
        "getNetwork",
        "getTransaction",
        "getVersionInfo",
        "simulateTransaction",
    }
)

#: a copy's verdict (see the module docstring)
WIN, AGAIN, HOLD, STOP = "win", "again", "hold", "stop"
_ORDER = {WIN: 0, STOP: 1, HOLD: 2, AGAIN: 3}


class AnswerWindow:
    """The most recent ``size`` answers of one method: their times (kept sorted, for
    quantiles) and how many of them were failures."""

    __slots__ = ("_sorted", "_window", "failures")

    def __init__(self, size: int = 64) -> None:
        if size < 1:
            raise ValueError("size >= 1")
        self._window: collections.deque[tuple[float, bool]] = collections.deque(maxlen=size)
        self._sorted: list[float] = []
        self.failures = 0

    def add(self, seconds: float, failed: bool = False) -> None:
        window = self._window
        if len(window) == window.maxlen:
            old, old_failed = window[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
            self.failures -= old_failed
        window.append((seconds, failed))
        bisect.insort(self._sorted, seconds)
        self.failures += failed

    def __len__(self) -> int:
        return len(self._window)

    def failure_rate(self) -> float:
        return self.failures / len(self._window) if self._window else 0.0

    def quantile(self, q: float) -> float | None:
        """The answer time below which a fraction ``q`` of the answers came (None: none)."""
        values = self._sorted
        if not values:
            return None
        return values[min(len(values) - 1, max(0, int(q * len(values))))]


class HedgePolicy:
    """How many copies of a request may be in flight (``max_copies``; 1: no hedging) and
    how long a copy may go unanswered before the next starts (:meth:`delay_s`).

    Dean and Barroso hedge at the 95th percentile of a healthy service's latency; an RPC
    under load fails instead: a failure takes as long as an answer, and 40-60 % of attempts
    fail. So the delay is the answer time below which ``1 - f`` of the method's recent
    ``window`` answers came, ``f`` their failure rate (a copy is hedged about as often as it
    would fail anyway), at least the median, within ``[min_delay_s, max_delay_s]``. While
    fewer than ``min_failure_rate`` of them failed no copy is hedged by time: a healthy RPC gets
    the requests it got without hedging. A method with fewer than ``min_samples`` answers
    goes by the answers of all methods together (a worker restarted under a failing RPC
    hedges its first sends on what its start-up reads met); with fewer than that in all (a
    worker's first requests: it knows nothing of the RPC yet) a copy is hedged after
    ``start_delay_s`` (at most ``min_samples`` requests more in a process's life on a healthy
    RPC; under a failing one, a restarted worker's start-up checks and first reads)."""

    def __init__(
        self,
        max_copies: int,
        *,
        min_failure_rate: float = 0.05,
        min_delay_s: float = 0.02,
        max_delay_s: float = 1.0,
        min_samples: int = 8,
        window: int = 64,
        start_delay_s: float | None = 0.15,
    ) -> None:
        if max_copies < 1:
            raise ValueError("max_copies >= 1")
        if not 0 <= min_delay_s <= max_delay_s or not 0 <= min_failure_rate <= 1:
            raise ValueError("0 <= min_delay_s <= max_delay_s, 0 <= min_failure_rate <= 1")
        self.max_copies = max_copies
        self.min_failure_rate = min_failure_rate
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self.min_samples = min_samples
        self.start_delay_s = start_delay_s
        self._size = window
        self._windows: dict[str, AnswerWindow] = {}
        #: every method's answers together
        self._all = AnswerWindow(window)

    @property
    def enabled(self) -> bool:
        return self.max_copies > 1

    def hedges(self, method: str) -> bool:
        """Whether the RPC client hedges ``method`` by itself."""
        return self.enabled and method in HEDGEABLE

    def observe(self, method: str, seconds: float, failed: bool = False) -> None:
        """One answer of ``method`` (``failed``: a failure) took ``seconds``."""
        window = self._windows.get(method)
        if window is None:
            window = self._windows[method] = AnswerWindow(self._size)
        window.add(max(0.0, seconds), failed)
        self._all.add(max(0.0, seconds), failed)

    def delay_s(self, method: str) -> float | None:
        """How long a copy of ``method`` may go unanswered before the next one starts; None:
        no copy by time (the method does not fail often enough to pay for one)."""
        window = self._windows.get(method)
        if window is None or len(window) < self.min_samples:
            window = self._all
            if len(window) < self.min_samples:
                return self.start_delay_s
        rate = window.failure_rate()
        if rate < self.min_failure_rate:
            return None
        at = window.quantile(max(0.5, 1.0 - rate))
        assert at is not None
        return min(self.max_delay_s, max(self.min_delay_s, at))


@dataclass(slots=True)
class Race:
    """How the copies of one request went: each answer (a value, or the exception a copy
    raised) in the order they came, the winning one's index in ``answers`` (None: no copy
    won), how many copies were started and how many of them while another was out
    (``hedged``)."""

    answers: list[Any] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    winner: int | None = None
    started: int = 0
    hedged: int = 0

    @property
    def won(self) -> bool:
        return self.winner is not None

    @property
    def last(self) -> Any:
        """The winning answer, else the last answer."""
        return self.answers[self.winner if self.winner is not None else -1]

    def record(self, answer: Any, verdict: str) -> None:
        """One copy's answer and its verdict (the winner's index set on a WIN)."""
        self.answers.append(answer)
        self.verdicts.append(verdict)
        if verdict == WIN:
            self.winner = len(self.answers) - 1


async def race(
    start: Callable[[], Awaitable[Any]],
    judge: Callable[[Any], str],
    *,
    delay_s: Callable[[], float | None],
    max_in_flight: int,
    max_copies: int,
    may_add: Callable[[], bool],
    refill: bool = False,
) -> Race:
    """Run copies of one request (``start()`` makes one) until one wins (see the module
    docstring), or every copy started has answered and no new one may start. A copy's
    exception (an :class:`Exception`) is an answer like a value; ``judge`` says what it is.
    ``delay_s()``: how long the newest copy may go unanswered before the next starts, asked
    again each time (the answers of this race count too); None: no copy by time (a failure is
    still replaced while another is out). ``refill``: a failure is replaced at once even when
    no other copy is out (a request the caller would repeat at once anyway: a send of one
    envelope); else that ends the race. A new copy starts only while fewer than
    ``max_in_flight`` are out and fewer than ``max_copies`` were started, after ``may_add()``
    said yes (it takes the tokens). If the caller is cancelled, so is every copy."""
    out = Race()
    pending: set[asyncio.Task[Any]] = set()
    holding = False
    newest = 0.0

    def launch() -> None:
        nonlocal newest
        pending.add(asyncio.ensure_future(start()))
        out.started += 1
        newest = time.monotonic()

    def room() -> bool:
        return not holding and out.started < max_copies and len(pending) < max_in_flight

    def wait_s() -> float | None:
        delay = delay_s() if room() else None
        return None if delay is None else max(0.0, newest + delay - time.monotonic())

    if delay_s() is None:
        # no copy by time (a healthy RPC, the usual case): the first copy is awaited here,
        # not as a task of its own under asyncio.wait (a task, a waiter and two more turns
        # of the loop a request); a failure it ends with is judged as the loop below would
        out.started += 1
        try:
            answer: Any = await start()
        except Exception as exc:  # an answer like any other
            answer = exc
        verdict = judge(answer)
        out.record(answer, verdict)
        if verdict != AGAIN or not refill or not room() or not may_add():
            return out
        out.hedged += 1  # (a failure replaced at once: the race goes on as below)
    launch()
    try:
        while pending:
            done, _ = await asyncio.wait(
                pending, timeout=wait_s(), return_when=asyncio.FIRST_COMPLETED
            )
            pending -= done
            if not done:  # no answer within the delay: another copy, if a token is there
                if room() and may_add():
                    launch()
                    out.hedged += 1
                else:
                    newest = time.monotonic()  # asked again after another delay
                continue
            for answer, verdict in _wins_first(done, judge):
                out.record(answer, verdict)
                if verdict in (WIN, STOP):
                    return out
                if verdict == HOLD:
                    holding = True
                elif verdict == AGAIN and (pending or refill) and room() and may_add():
                    launch()  # a failed copy replaced at once
                    out.hedged += 1
        return out
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            for task in pending:  # their answers (or errors) are not wanted
                if not task.cancelled():
                    task.exception()


def _wins_first(done: set[asyncio.Task[Any]], judge: Callable[[Any], str]) -> list[tuple[Any, str]]:
    """The answers of the copies that answered together with their verdicts: a win first,
    then a stop, then the rest (so a win is never missed behind a failure)."""
    judged = []
    for task in done:
        error = task.exception()
        answer = error if error is not None else task.result()
        judged.append((answer, judge(answer)))
    judged.sort(key=lambda item: _ORDER.get(item[1], len(_ORDER)))
    return judged


async def one_copy(ask: Callable[[], Awaitable[Any]], judge: Callable[[Any], str]) -> Race:
    """One copy, no hedging (a client that does not hedge), as a :class:`Race`: its answer or
    the :class:`~shard_worker.errors.RpcError` it raised (any other exception propagates)."""
    out = Race(started=1)
    try:
        answer: Any = await ask()
    except RpcError as exc:
        answer = exc
    out.record(answer, judge(answer))
    return out
