"""How late the keeper is: the tasks due now, how many ledgers the oldest of them is overdue,
and how many ledgers each execution came after its task became due (the service level).

A task is due from the first ledger whose close time reaches ``last_run + interval`` (the
contract compares the ledger timestamp); the bench measures the same figure from the devnet's
record. The keeper knows the close time of the ledgers it reads, so a task due at time ``t``,
seen at ledger ``L`` closing at ``T >= t``, became due at ledger
``L - floor((T - t) / period)``, with ``period`` the mean ledger period observed so far
(Stellar's 5 s until two ledgers have been seen). When every ledger is read this is exact.
A task never run (``last_run`` 0: due since 1970 by the contract's rule) counts from the read
that first found it due (:func:`reported_due`).

Pure bookkeeping: no I/O, nothing logged.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Any

from sorotask_core import stats as stats_registry

__all__ = ["DEFAULT_LEDGER_SECONDS", "Lateness", "reported_due"]

#: the ledger period assumed until two different ledgers have been seen
DEFAULT_LEDGER_SECONDS = 5.0
_DELAY = stats_registry.FIELDS_BY_NAME["execution_delay_ledgers"]


def reported_due(due_time: int, interval: int, close_time: int) -> int:
    """The due time the figures count from: ``due_time`` (``last_run + interval``), except for a
    task never run (``last_run`` 0, so due since 1970 by the contract's rule, or a sum that
    wrapped): from ``close_time``, the ledger that found it due (kept while it stays due)."""
    return close_time if due_time <= interval else due_time


class Lateness:
    """The due time of each task due (or being executed), the ledger period, and the
    figures derived from them."""

    __slots__ = ("_first", "_latest", "due_now", "due_time", "oldest_overdue_ledgers")

    def __init__(self) -> None:
        #: task id -> due time (unix seconds) of the tasks due at the last read, and of
        #: those still being executed
        self.due_time: dict[int, int] = {}
        self._first: tuple[int, int] | None = None
        self._latest: tuple[int, int] | None = None
        #: tasks due at the last ledger read (waiting for execution)
        self.due_now = 0
        #: ledgers since the most overdue of them became due (0 when none is due)
        self.oldest_overdue_ledgers = 0

    @property
    def ledger_seconds(self) -> float:
        """The mean ledger period seen so far."""
        if self._first is None or self._latest is None or self._latest[0] <= self._first[0]:
            return DEFAULT_LEDGER_SECONDS
        (s0, t0), (s1, t1) = self._first, self._latest
        return max(0.001, (t1 - t0) / (s1 - s0))

    def due_ledger(self, due_time: int) -> int | None:
        """The ledger at which a task due at ``due_time`` became due (None before any read)."""
        if self._latest is None:
            return None
        seq, close = self._latest
        return seq - math.floor((close - due_time) / self.ledger_seconds)

    def read(
        self, sequence: int, close_time: int, due: Iterable[tuple[int, int]], busy: Collection[int]
    ) -> None:
        """A read at ledger ``sequence`` (closing at ``close_time``) found ``due`` as
        ``(due time, task id)``; ``busy`` are the tasks being executed (their due times are
        kept until their outcome)."""
        if self._first is None:
            self._first = (sequence, close_time)
        if self._latest is None or sequence > self._latest[0]:
            self._latest = (sequence, close_time)
        before = self.due_time
        kept = {t: d for t, d in before.items() if t in busy}
        oldest: int | None = None
        count = 0
        for due_time, task_id in due:
            earlier = before.get(task_id)
            if earlier is not None and earlier < due_time:
                due_time = earlier  # a never-run task: from the read that first found it due
            kept[task_id] = due_time
            count += 1
            if oldest is None or due_time < oldest:
                oldest = due_time
        self.due_time = kept
        self.due_now = count
        since = self.due_ledger(oldest) if oldest is not None else None
        self.oldest_overdue_ledgers = max(0, sequence - since) if since is not None else 0

    def read_queued(
        self,
        sequence: int,
        close_time: int,
        due: list[tuple[int, int]],
        queued: Collection[int],
        in_flight: Collection[int],
    ) -> None:
        """:meth:`read`, where the tasks still ``queued`` from earlier reads (not re-read:
        in events mode a due task is read once, when it comes due) stay due now, and the
        queued and ``in_flight`` ones are busy."""
        found = {task_id for _, task_id in due}
        waiting = [
            (due_time, task_id)
            for task_id, due_time in self.due_time.items()
            if task_id in queued and task_id not in found and task_id not in in_flight
        ]
        self.read(sequence, close_time, [*due, *waiting], {*queued, *in_flight})

    def executed(self, task_id: int, ledger: Any, histogram: dict[str, Any]) -> int | None:
        """``task_id`` was executed in ``ledger``: add its delay (ledgers after it became
        due) to ``histogram`` and return it; None when its due time is unknown (e.g. a
        transaction from an earlier run's journal) or ``ledger`` is not a ledger number."""
        due_time = self.due_time.pop(task_id, None)
        if due_time is None or type(ledger) is not int:
            return None
        since = self.due_ledger(due_time)
        if since is None:
            return None
        delay = max(0, ledger - since)
        stats_registry.observe(_DELAY, histogram, delay)
        return delay
