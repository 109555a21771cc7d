"""Which tasks are due at a ledger's close time: a two-level calendar with lazy deletion.

The keeper asks once a ledger "which ids have a cached due time <= this close time?" and
moves a task's due time whenever it reads the task again. Both must be cheap for 250k tasks:

* each indexed id has its due time in one ``array('Q')`` slot (8 bytes a task; the source of
  truth: a bucket copy whose due no longer matches is stale and skipped);
* dues below ``limit`` (the end of the current coarse window) live in **fine** buckets, one per
  second, each an ``array('I')`` of slots; later dues live in **coarse** buckets of
  ``coarse_s`` seconds (default 1024), which are split into fine buckets when time reaches them.
  So there are at most about ``coarse_s`` fine buckets plus one coarse bucket per ``coarse_s``
  of future, whatever the spread of intervals (monthly tasks do not make one bucket each);
* moving a task appends its slot to its new bucket and leaves the old copy behind (lazy
  deletion); copies are dropped when their bucket is reached, and everything is rebuilt from
  the slot array when stale copies outnumber live ones (:meth:`DueIndex.compact`).

:meth:`DueIndex.pop_due` returns the due ids most overdue first and takes them out of the index:
the caller re-reads them and puts each back with its new due time (or leaves it out: no gas,
not whitelisted).
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable

__all__ = ["NOT_INDEXED", "DueIndex"]

#: the slot value of an id that is not in the index (a task whose wrapped due time is exactly
#: 2**64 - 1 would be due only at that timestamp: it is treated as never due)
NOT_INDEXED = 0xFFFF_FFFF_FFFF_FFFF
#: rebuild when stored bucket copies exceed ``2 * live + _COMPACT_SLACK``
_COMPACT_SLACK = 4096


class DueIndex:
    """Due times of the ids ``first ..`` (grown by :meth:`ensure`)."""

    __slots__ = (
        "_at",
        "_coarse",
        "_coarse_keys",
        "_fine",
        "_fine_keys",
        "_limit",
        "_live",
        "_stored",
        "coarse_s",
        "first",
    )

    def __init__(self, first: int, count: int = 0, *, coarse_s: int = 1024) -> None:
        if first < 0 or count < 0 or coarse_s < 1:
            raise ValueError("first, count >= 0 and coarse_s >= 1")
        self.first = first
        self.coarse_s = coarse_s
        self._at = array("Q", [NOT_INDEXED]) * count
        self._fine: dict[int, array] = {}
        self._fine_keys: list[int] = []
        self._coarse: dict[int, array] = {}
        self._coarse_keys: list[int] = []
        #: dues below this are in fine buckets, the others in coarse ones
        self._limit = 0
        self._live = 0
        self._stored = 0

    # ------------------------------------------------------------------ size

    def __len__(self) -> int:
        """Ids currently indexed."""
        return self._live

    def ensure(self, last_id: int) -> None:
        """Cover the ids up to ``last_id`` (new ids are not indexed)."""
        add = last_id - (self.first + len(self._at) - 1)
        if add > 0:
            self._at.extend(array("Q", [NOT_INDEXED]) * add)

    @property
    def stored(self) -> int:
        """Bucket copies held, stale ones included."""
        return self._stored

    def nbytes(self) -> int:
        """Approximate bytes held: the slot array plus the bucket arrays' items."""
        items = sum(len(b) for b in self._fine.values()) + sum(
            len(b) for b in self._coarse.values()
        )
        return 8 * len(self._at) + 4 * items

    def _slot(self, task_id: int) -> int:
        slot = task_id - self.first
        if not 0 <= slot < len(self._at):
            raise IndexError(f"task {task_id} is outside this index ({self.first}..)")
        return slot

    # ------------------------------------------------------------------ updates

    def due_of(self, task_id: int) -> int | None:
        """The indexed due time of ``task_id``, None when it is not indexed."""
        d = self._at[self._slot(task_id)]
        return None if d == NOT_INDEXED else d

    def __contains__(self, task_id: object) -> bool:
        if not isinstance(task_id, int):
            return False
        slot = task_id - self.first
        return 0 <= slot < len(self._at) and self._at[slot] != NOT_INDEXED

    def set(self, task_id: int, due: int) -> None:
        """Index ``task_id`` at ``due`` (moving it if it was indexed elsewhere)."""
        slot = self._slot(task_id)
        if not 0 <= due <= NOT_INDEXED:
            raise ValueError("due is a u64")
        old = self._at[slot]
        if old == due:
            return
        if due == NOT_INDEXED:
            self.discard(task_id)
            return
        if old == NOT_INDEXED:
            self._live += 1
        self._at[slot] = due
        self._add(slot, due)
        if self._stored > 2 * self._live + _COMPACT_SLACK:
            self.compact()

    def set_many(self, items: Iterable[tuple[int, int]]) -> None:
        """:meth:`set` for each ``(task_id, due)``."""
        for task_id, due in items:
            self.set(task_id, due)

    def discard(self, task_id: int) -> None:
        """Take ``task_id`` out of the index (its bucket copies become stale)."""
        slot = self._slot(task_id)
        if self._at[slot] != NOT_INDEXED:
            self._at[slot] = NOT_INDEXED
            self._live -= 1

    def _add(self, slot: int, due: int) -> None:
        if due < self._limit:
            buckets, keys, key = self._fine, self._fine_keys, due
        else:
            buckets, keys, key = self._coarse, self._coarse_keys, due // self.coarse_s
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = array("I", (slot,))
            heapq.heappush(keys, key)
        else:
            bucket.append(slot)
        self._stored += 1

    def compact(self) -> None:
        """Drop every stale bucket copy: rebuild the buckets from the slot array."""
        self._fine.clear()
        self._fine_keys.clear()
        self._coarse.clear()
        self._coarse_keys.clear()
        self._stored = 0
        for slot, due in enumerate(self._at):
            if due != NOT_INDEXED:
                self._add(slot, due)

    # ------------------------------------------------------------------ queries

    def _split_coarse(self, now: int) -> None:
        """Move the coarse buckets that may hold dues <= ``now`` into fine buckets."""
        if now < self._limit:
            return
        c = self.coarse_s
        at = self._at
        keys = self._coarse_keys
        self._limit = (now // c + 1) * c
        while keys and keys[0] * c <= now:
            k = heapq.heappop(keys)
            bucket = self._coarse.pop(k)
            self._stored -= len(bucket)
            for slot in bucket:
                d = at[slot]
                if d != NOT_INDEXED and d // c == k:
                    self._add(slot, d)

    def pop_due(self, now: int) -> list[int]:
        """The ids whose indexed due time is <= ``now``, earliest due first, taken out of
        the index."""
        self._split_coarse(now)
        at = self._at
        first = self.first
        keys = self._fine_keys
        out: list[int] = []
        while keys and keys[0] <= now:
            key = heapq.heappop(keys)
            bucket = self._fine.pop(key)
            self._stored -= len(bucket)
            for slot in bucket:
                if at[slot] == key:
                    at[slot] = NOT_INDEXED
                    out.append(first + slot)
        self._live -= len(out)
        return out

    def next_due(self) -> int | None:
        """A lower bound of the earliest indexed due time (exact unless the earliest bucket
        holds only stale copies); None when nothing is stored."""
        best: int | None = None
        if self._fine_keys:
            best = self._fine_keys[0]
        if self._coarse_keys:
            c = self._coarse_keys[0] * self.coarse_s
            best = c if best is None else min(best, c)
        return best
