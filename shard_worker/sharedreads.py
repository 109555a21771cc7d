"""The read path's ``getLedgerEntries`` call of a ledger, shared with the executor's rechecks.

A prepared execution whose simulation is older than the ledger it is sent after is read once
more before it is signed (:mod:`shard_worker.recheck`). Those rechecks come just after each
close (a source account's previous transaction is confirmed when the new ledger is seen), when
the events read mode's read path makes its one call of that ledger anyway. So a prepared
execution's task is *watched* from its simulation until it is sent or dropped: the read path
carries every watched task's key in its call (:meth:`SharedReads.watched_ids`), announces the
call before making it (:meth:`SharedReads.reading`) and hands over the answer
(:meth:`SharedReads.answered`); a recheck that needs a read of ledger ``L`` or later takes the
newest such call that carried its key, finished or still in flight (:meth:`SharedReads.lookup`),
and makes a call of its own only when there is none (the task was prepared after that
ledger's call was made, or the call failed). A recheck that comes before the read path made
any call of that ledger (a transaction's answer showed the new ledger before the read path's
poll did: seen 0.3-0.5 s before it) wakes the read path to poll at once (:func:`pause`) and
waits for its call, a bounded time (:meth:`SharedReads.wait_for`).

A read of ledger ``L`` is the read path's call made after it saw ledger ``L``: its answer holds
every change applied up to ``L`` (another keeper's execution in ``L`` included), as the
recheck's own call would. Pure bookkeeping (no I/O); the futures are the only asyncio in it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

__all__ = ["SharedRead", "SharedReads", "pause"]

#: a call's answer for the watched keys it carried: key -> entry (absent: no entry); None when
#: the call failed
Found = dict[str, dict[str, Any]] | None


class SharedRead:
    """One read-path call that carries watched keys: its ledger and, once answered, what it
    found of them."""

    __slots__ = ("answer", "keys", "ledger")

    def __init__(self, ledger: int, keys: frozenset[str]) -> None:
        self.ledger = ledger
        self.keys = keys
        self.answer: asyncio.Future[Found] = asyncio.get_running_loop().create_future()

    def settle(self, found: Found) -> None:
        if not self.answer.done():
            self.answer.set_result(found)


class SharedReads:
    """The watched tasks and, for each, the newest read-path call that carried its key."""

    __slots__ = ("_reads", "_waiters", "_watched", "announced", "wanted")

    def __init__(self) -> None:
        #: key -> task id, for the prepared executions not yet sent
        self._watched: dict[str, int] = {}
        #: key -> the newest call that carried it (a watched key only)
        self._reads: dict[str, SharedRead] = {}
        #: the ledger of the newest read-path call announced (0: none yet)
        self.announced = 0
        #: rechecks waiting for a call of a ledger: (ledger, woken)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: set when a recheck waits: the read path polls at once instead of at its timer
        #: (:func:`pause`; the ledger was already seen in a transaction's answer)
        self.wanted = asyncio.Event()

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, task_id: int, key: str) -> None:
        """``task_id`` (ledger key ``key``) was prepared: read it with each ledger's call."""
        self._watched[key] = task_id
        self._reads.pop(key, None)  # a read from before the preparation proves nothing

    def unwatch(self, key: str) -> None:
        """Its execution was sent or dropped (idempotent)."""
        self._watched.pop(key, None)
        self._reads.pop(key, None)

    def watched_ids(self) -> list[int]:
        """The watched task ids (for the read path's next call)."""
        return list(self._watched.values())

    def reading(self, ledger: int, keys: Iterable[str]) -> SharedRead | None:
        """A read-path call of ledger ``ledger`` is about to carry ``keys``: the watched ones
        among them will take its answer. None when it carries none (nothing to hand over)."""
        if ledger > self.announced:
            self.announced = ledger
            self._wake(ledger)
            if not any(at > ledger for at, _ in self._waiters):
                self.wanted.clear()  # this call is what they wanted: no extra poll after it
        if not self._watched:
            return None
        watched = self._watched
        mine = frozenset(k for k in keys if k in watched)
        if not mine:
            return None
        read = SharedRead(ledger, mine)
        reads = self._reads
        for key in mine:
            old = reads.get(key)
            if old is None or old.ledger <= ledger:
                reads[key] = read
        return read

    @staticmethod
    def answered(read: SharedRead | None, entries: Iterable[Any]) -> None:
        """The call's answer (its entries, any shape): the carried keys' entries handed over."""
        if read is None:
            return
        keys = read.keys
        found: dict[str, dict[str, Any]] = {}
        for e in entries:
            if isinstance(e, dict):
                key = e.get("key")
                if key in keys:
                    found[key] = e
        read.settle(found)

    @staticmethod
    def failed(read: SharedRead | None) -> None:
        """The call failed (or was cancelled): its waiters read on their own."""
        if read is not None:
            read.settle(None)

    def lookup(self, key: str, at_least: int) -> SharedRead | None:
        """The newest call of ledger ``at_least`` or later that carried ``key`` (finished or in
        flight), if any."""
        read = self._reads.get(key)
        if read is None or read.ledger < at_least:
            return None
        return read

    async def wait_for(self, key: str, at_least: int, timeout_s: float) -> SharedRead | None:
        """:meth:`lookup`, after waiting (at most ``timeout_s``) for the read path to announce
        a call of ledger ``at_least`` or later when it has not yet."""
        if self.announced < at_least and key in self._watched and timeout_s > 0:
            self.wanted.set()
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = (at_least, woken)
            self._waiters.append(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken, timeout_s)
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return self.lookup(key, at_least)

    def _wake(self, ledger: int) -> None:
        for at_least, woken in self._waiters:
            if at_least <= ledger and not woken.done():
                woken.set_result(None)


async def pause(stop: asyncio.Event, seconds: float, shared: SharedReads | None) -> None:
    """The read loop's wait for its next poll: ``seconds``, or until ``stop`` is set, or
    (``shared`` given) until a recheck wants the read path's call of a ledger at once."""
    waits = {asyncio.ensure_future(stop.wait())}
    if shared is not None:
        waits.add(asyncio.ensure_future(shared.wanted.wait()))
    try:
        await asyncio.wait(waits, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    if shared is not None:
        shared.wanted.clear()
