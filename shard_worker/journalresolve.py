"""A restarted worker's journal (:class:`JournalResolver`): the transactions an earlier run
(maybe) sent, resolved before their tasks or source accounts are used again.

Each journaled transaction's task is held in flight until the transaction is final (applied,
or never able to apply: expired, or refused txTOO_LATE and not found since); a task none of
whose journaled transactions applied is queued again at once, not at the next ledger's read.
Each source account's envelopes are settled in sequence order before the account sends
anything new: each is looked up (``getTransaction``: applied already, the usual case after a
kill, is final at once) while the same signed envelope is resent (never a new one); one queued
(DUPLICATE / PENDING) or refused as never able to apply (txBAD_SEQ, txTOO_LATE) no longer
blocks the account, its confirmation goes on beside holding only its task; any other outcome
is confirmed first. Nothing can run twice: one hash per transaction, and a task is not
executed again while a transaction of it may still apply.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

from shard_worker.accounts import SourceAccount, SourceAccounts
from shard_worker.due import Holds
from shard_worker.journal import Journal, JournalEntry
from shard_worker.submitter import APPLIED, Submitter
from shard_worker.txsend import QUEUED, UNKNOWN

__all__ = ["JournalResolver"]


class JournalResolver:
    """Holds the journal's tasks and settles each source account's journaled envelopes."""

    def __init__(
        self,
        journal: Journal,
        submitter: Submitter,
        accounts: SourceAccounts,
        holds: Holds,
        log: Any,
        *,
        requeue: Callable[[int], None],
    ) -> None:
        self.journal = journal
        self.submitter = submitter
        self.accounts = accounts
        self.in_flight = holds.in_flight
        self.log = log
        self.requeue = requeue
        #: the journal's entries, once loaded (:meth:`hold`)
        self._entries: list[JournalEntry] | None = None
        #: journaled transactions not yet final, by task; tasks one of them applied
        self._open: collections.Counter[int] = collections.Counter()
        self._applied: set[int] = set()

    def hold(self) -> list[JournalEntry]:
        """Load the journal (once); its transactions' tasks are in flight until resolved."""
        if self._entries is None:
            self._entries = self.journal.load()
            self._open.update(entry.task_id for entry in self._entries)
            self.in_flight.update(self._open)
        return self._entries

    async def resolve_source(self, entries: list[JournalEntry], acc: SourceAccount | None) -> None:
        """One source account's journaled transactions, in sequence order (see the module
        docstring); then the account is free: after an applied or queued one with its
        sequence number (or the start-up checks' if later), else reloaded from the chain."""
        t0 = time.monotonic()
        last = UNKNOWN
        taken = acc.sequence if acc is not None else 0  # the start-up checks' (chain) one
        try:
            for entry in sorted(entries, key=lambda e: e.sequence):
                last = UNKNOWN
                if entry.envelope and acc is not None:
                    try:
                        last = await self._settle_journaled(entry, acc)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # getTransaction decides
                        self.log.warning("task {} journaled resend: {}", entry.task_id, exc)
                if last == APPLIED:
                    self._resolved(entry.task_id, applied=True)
                    continue
                if last == UNKNOWN or acc is None:
                    await self._confirm_journaled(entry, acc)
                    continue
                # (an expired queued one reloads the account; a spent one was reloaded)
                confirming = self.submitter.beside(
                    self._confirm_journaled(entry, acc if last == QUEUED else None),
                    f"confirm-{entry.task_id}",
                )
                if last == QUEUED:
                    self.submitter.follow(acc, confirming)
        finally:
            self.log.info(
                "journal resolved: {} transaction(s) of {} in {:.0f} ms",
                len(entries),
                acc.public_key if acc is not None else "a source no longer configured",
                1000 * (time.monotonic() - t0),
            )
            if acc is not None:
                if last in (APPLIED, QUEUED):  # the last sequence number used is known
                    acc.sequence = max(taken, max(e.sequence for e in entries))
                    acc.needs_resync = False
                else:
                    acc.resync()
                self.accounts.release(acc)

    async def _settle_journaled(self, entry: JournalEntry, acc: SourceAccount) -> str:
        """A journaled envelope looked up and resent together: :data:`APPLIED` as soon as
        getTransaction finds it in a ledger (the resend is cancelled: a copy of an applied
        envelope can only be refused), else what the resend found."""
        resend = asyncio.ensure_future(self.submitter.resend_journaled(entry, acc))
        lookup = asyncio.ensure_future(self.submitter.applied_journaled(entry))
        try:
            await asyncio.wait({resend, lookup}, return_when=asyncio.FIRST_COMPLETED)
            if lookup.done() and lookup.result():
                return APPLIED
            if resend.done() and resend.result() != UNKNOWN:
                return resend.result()  # queued or spent: the lookup is not waited for
            if not lookup.done() and await lookup:
                return APPLIED
            return await resend
        finally:
            for task in (resend, lookup):
                if not task.done():
                    task.cancel()
            await asyncio.gather(resend, lookup, return_exceptions=True)

    async def _confirm_journaled(self, entry: JournalEntry, acc: SourceAccount | None) -> None:
        applied = True
        try:
            applied = await self.submitter.confirm(entry, acc, time.monotonic())
        finally:
            self._resolved(entry.task_id, applied=applied)

    def _resolved(self, task_id: int, *, applied: bool) -> None:
        """One of ``task_id``'s journaled transactions is final. Once all are, the task is no
        longer held; when none of them applied it is queued again at once (the simulation
        decides whether it is still due), ahead of the next ledger's read."""
        if applied:
            self._applied.add(task_id)
        self._open[task_id] -= 1
        if self._open[task_id] > 0:
            return
        del self._open[task_id]
        self.in_flight.discard(task_id)
        if task_id in self._applied or self.submitter.stopping:
            return
        self.log.info("task {}: its journaled transaction never applied; queued again", task_id)
        self.requeue(task_id)
