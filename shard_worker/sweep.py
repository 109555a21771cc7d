"""The background sweep: every entry re-read once per ``sweep_every_ledgers``, spread evenly.

Events tell the keeper about registrations and gas; nothing tells it about TTL extension,
archival, or a change it missed. The sweep is the safety net: over each round of
``every_ledgers`` ledgers (default 720, an hour of 5 s ledgers) it reads every position of the
shard's id list once, a little each ledger, in full ``getLedgerEntries`` batches:

* by ledger ``L`` of a round started at ledger ``R`` over ``n`` ids, the first
  ``ceil((L - R + 1) * n / every_ledgers)`` positions should have been read (the *target*);
* :meth:`SweepPlan.next_slice` hands out the positions between what was read and the target,
  only once a whole batch is pending (or the round's last few), at most ``max_items`` at a time;
* the caller reads them (at the budget's sweep priority, after due work) and confirms with
  :meth:`SweepPlan.done`; what it could not read stays pending (the sweep falls behind, it
  does not skip);
* :meth:`SweepPlan.spare` hands out pending positions, however few, to ride in the room left
  in a ledger's due read (a ``getLedgerEntries`` call of fewer than 200 keys): with due work
  every ledger the sweep then costs no request of its own (at 1M tasks over 8 shards, 174
  positions a shard a ledger with a 720-ledger round: 7 of 33.5 requests a ledger before);
* a round ends when every position was read and ``every_ledgers`` have passed; the next one
  starts at the current ledger (a stalled keeper does not try to catch up whole rounds at once).

Positions, not ids: the caller maps a position to its id (``first + position`` for a range).
New ids (the Counter rose) extend the current round.
"""

from __future__ import annotations

__all__ = ["SweepPlan"]


class SweepPlan:
    """Which positions of an ``n``-id list to re-read at each ledger."""

    __slots__ = ("batch", "count", "every_ledgers", "position", "round_start", "rounds")

    def __init__(self, every_ledgers: int = 720, *, batch: int = 200) -> None:
        if every_ledgers < 1 or batch < 1:
            raise ValueError("every_ledgers and batch must be >= 1")
        self.every_ledgers = every_ledgers
        self.batch = batch
        self.count = 0
        #: positions [0, position) were read this round
        self.position = 0
        #: the ledger the current round started at (None before :meth:`start`)
        self.round_start: int | None = None
        #: rounds completed
        self.rounds = 0

    def start(self, ledger: int, count: int) -> None:
        """Begin a round at ``ledger`` over ``count`` ids (e.g. just after a full scan, which
        counts as a completed round: the first sweep round then begins)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self.round_start = ledger
        self.count = count
        self.position = 0

    def set_count(self, count: int) -> None:
        """The shard's id list is now ``count`` long (new ids join the current round)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self.count = count
        self.position = min(self.position, count)

    def target(self, ledger: int) -> int:
        """Positions that should have been read by ``ledger`` in the current round."""
        if self.round_start is None:
            return 0
        elapsed = ledger - self.round_start + 1
        if elapsed <= 0:
            return 0
        n, s = self.count, self.every_ledgers
        return min(n, -(-elapsed * n // s))

    def behind(self, ledger: int) -> int:
        """Positions due by ``ledger`` but not read yet (the sweep's backlog)."""
        return max(0, self.target(ledger) - self.position)

    def _roll(self, ledger: int) -> None:
        start = self.round_start
        if start is None:
            return
        if self.position >= self.count and ledger >= start + self.every_ledgers:
            self.rounds += 1
            self.round_start = ledger
            self.position = 0

    def next_slice(self, ledger: int, *, max_items: int | None = None) -> range:
        """The positions to read now (empty when none are due, or fewer than a batch and the
        round is not ending). Does not advance: call :meth:`done` with what was read."""
        self._roll(ledger)
        pending = self.target(ledger) - self.position
        if pending <= 0:
            return range(0)
        end_of_round = self.target(ledger) >= self.count
        if pending < self.batch and not end_of_round:
            return range(0)
        take = pending if max_items is None else min(pending, max_items)
        if take > self.batch:
            take -= take % self.batch  # whole batches, the remainder next time
        return range(self.position, self.position + take)

    def spare(self, ledger: int, room: int) -> range:
        """Up to ``room`` pending positions (any number, no whole batch needed) to read along
        with other keys in a call that has room for them. Does not advance: :meth:`done`."""
        self._roll(ledger)
        take = min(room, self.target(ledger) - self.position)
        if take <= 0:
            return range(0)
        return range(self.position, self.position + take)

    def done(self, upto: int) -> None:
        """Positions before ``upto`` were read."""
        if upto > self.count:
            raise ValueError(f"position {upto} beyond the {self.count} ids")
        self.position = max(self.position, upto)
