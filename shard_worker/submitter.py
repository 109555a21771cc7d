"""Landing a signed transaction (:class:`Submitter`): journal, send, settle, confirm.

* The send and its named answers are :mod:`shard_worker.txsend`'s (``resent`` counted here);
  the confirmation is :mod:`shard_worker.txconfirm`'s.
* A send whose outcome is unknown is **settled by sending the same signed envelope again**
  (same hash, the journal holds it; nothing can run twice): DUPLICATE or PENDING says it is
  queued; an ERROR after a resend says it is not pending but maybe applied meanwhile, so
  ``getTransaction`` decides. A send the server refused unread is sent again at once; one
  that may have reached the queue is sent again once getTransaction does not know it as
  applied. A close between that check and the resend can still apply the first copy: core
  then refuses the copy (txBAD_SEQ, no fee, nothing on chain) and getTransaction decides.
  Waiting for the next close before each resend avoided that but cost a ledger a lost answer
  (under the hostile mix, 68-92 of ~800 transactions expired unsent: p99 lateness 20-22
  ledgers against 15 without the wait). No new transaction is built for
  the task while the old one may land (the task stays in flight until its transaction is final
  or expired).
* Once queued, the account is released; the confirmation runs beside the executors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from shard_worker.accounts import SourceAccount
from shard_worker.context import Events, Tally
from shard_worker.due import Holds
from shard_worker.errors import RpcError
from shard_worker.journal import Journal, JournalEntry
from shard_worker.ledger import LedgerClock
from shard_worker.retry import Backoff
from shard_worker.rpc import RpcClient
from shard_worker.spec import WorkerSpec
from shard_worker.txconfirm import Confirmer
from shard_worker.txsend import BUSY, NOT_PENDING, QUEUED, REJECTED, UNKNOWN

__all__ = ["APPLIED", "SPENT", "Submitter"]

#: a restarted worker's resend of a journaled envelope (:meth:`Submitter.resend_journaled`)
#: found it never able to apply (like :data:`QUEUED`, its source account is free; with
#: :data:`UNKNOWN` the confirmation decides first)
SPENT = "spent"
#: ... found it in a ledger already (confirmed)
APPLIED = "applied"
#: a resend refused with these is not pending and can never be queued again (its sequence
#: number used, or its time bound too near)
_NEVER_AGAIN = ("txBAD_SEQ", "txTOO_LATE")
#: the wait between resends of the same envelope after an unknown outcome, and how many
SETTLE_BACKOFF = Backoff(0.02, factor=2.0, max_s=0.25, jitter=0.5)
SETTLE_LIMIT = 40
#: new time bounds for one execution after txTOO_LATE refusals, at most
RESEAL_LIMIT = 2
#: the refusals a fresh time bound and sequence number can cure
RESEALABLE = ("txTOO_LATE", "txBAD_SEQ")
#: how often a prepared transaction looks for a new ledger behind its account's previous one
TURN_POLL_S = 0.05
#: ... with a paced clock: its next ledger, or this long (then the answers' ledgers again)
TURN_WAIT_S = 1.0


class Submitter(Confirmer):
    """Lands signed transactions: journal, ``sendTransaction``, ``getTransaction`` until a
    final status; counts each outcome once (in the :class:`Tally`) and reports it."""

    def __init__(
        self,
        spec: WorkerSpec,
        rpc: RpcClient,
        events: Events,
        *,
        journal: Journal,
        holds: Holds,
        clock: LedgerClock,
        tally: Tally,
    ) -> None:
        super().__init__(spec, rpc, events, journal=journal, holds=holds, clock=clock, tally=tally)
        #: tasks that have (maybe) sent a transaction: a stop waits for them (bounded), while
        #: executions not yet sent are cancelled
        self.sending: set[asyncio.Task[None]] = set()
        #: each source account's transaction being confirmed beside the executors
        self._confirming: dict[str, asyncio.Task[None]] = {}
        #: accounts whose next transaction waits until the previous one is final
        self._strict: set[str] = set()

    async def submit(
        self,
        envelope: str,
        entry: JournalEntry,
        acc: SourceAccount,
        t0: float,
        release: Callable[[], None] | None = None,
        *,
        reseal: Callable[[], Awaitable[tuple[str, JournalEntry]]] | None = None,
    ) -> bool:
        """Journal ``entry`` (durably), send ``envelope`` and confirm it; ``t0`` is when the
        execution started (for ``mean_execution_s``). With ``release``, once the transaction
        is settled in the queue (PENDING / DUPLICATE) the source account is released and the
        confirmation goes on beside the executors (True is returned: the task stays in flight
        until it is confirmed): the account's next transaction is prepared meanwhile (its send
        waits behind this one's ledger: TRY_AGAIN_LATER)."""
        current = asyncio.current_task()
        if current is not None:
            self.sending.add(current)  # from here on a stop waits for it (bounded)
        self.journal.add(entry)
        state = await self._send(envelope, entry, acc)
        for _ in range(RESEAL_LIMIT):
            # refused as txTOO_LATE or txBAD_SEQ (surely not queued, so it can never land):
            # the same transaction with a fresh time bound and the account's sequence number
            if state != REJECTED or reseal is None or self.stopping:
                break
            name = self._last_rejection.pop(entry.hash, None)
            if name not in RESEALABLE:
                break
            previous = self._confirming.get(acc.public_key)
            if name == "txBAD_SEQ" and previous is not None and not previous.done():
                # the account's previous transaction was neither applied nor refused yet
                # (dropped? delayed?): its next ones wait until it is final
                self._strict.add(acc.public_key)
                break
            envelope, entry = await reseal()
            self.count("resealed")
            self.journal.add(entry)
            state = await self._send(envelope, entry, acc)
        if state == REJECTED:
            self._last_rejection.pop(entry.hash, None)
            return False
        queued = state == QUEUED or await self.settle(
            envelope, entry, acc, maybe_queued=state == UNKNOWN
        )
        if not (queued and release is not None):
            await self.confirm(entry, acc, t0)
            return False
        release()
        confirming = self._confirm_detached(entry, acc, t0, self.queued_at(acc))
        task = self.beside(confirming, f"confirm-{entry.task_id}")
        self._confirming[acc.public_key] = task
        return True

    def beside(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` (a transaction's landing or confirmation) beside the executors; a
        stop waits for it (bounded) like any transaction maybe sent."""
        task = asyncio.create_task(work, name=name)
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)
        return task

    def follow(self, acc: SourceAccount, confirming: asyncio.Task[None]) -> None:
        """``confirming`` confirms ``acc``'s last transaction, queued (a restarted worker's
        journaled one): the account's next transaction waits its turn (:meth:`wait_turn`)."""
        self._confirming[acc.public_key] = confirming

    async def wait_turn(self, acc: SourceAccount) -> None:
        """Wait until ``acc``'s previous transaction (confirmed beside the executors) is final
        or a ledger has closed since it was queued (core keeps one pending transaction per
        account: sending earlier only earns TRY_AGAIN_LATER). (Cancelling the waiter leaves
        that confirmation running.)"""
        previous = self._confirming.get(acc.public_key)
        accepted_at = self.queued_at(acc)
        while previous is not None and not previous.done():
            if acc.public_key in self._strict:
                await asyncio.wait({previous})
                return
            newest = self.newest()
            if newest is not None and newest.sequence > accepted_at:
                return  # a ledger closed since: applied (or dropped: then txBAD_SEQ, resealed)
            if not self.clock.paced:
                await asyncio.wait({previous}, timeout=TURN_POLL_S)
                continue
            # woken by the poller's sighting of the next ledger, not every 50 ms (4 % of the
            # workers' CPU at 1M tasks); the answers' ledgers are looked at again each second
            newer = asyncio.ensure_future(self.clock.wait_newer(accepted_at, TURN_WAIT_S))
            try:
                await asyncio.wait({previous, newer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                newer.cancel()

    async def _confirm_detached(
        self, entry: JournalEntry, acc: SourceAccount, t0: float, queued_at: int
    ) -> None:
        """Confirm a queued transaction beside the executors; the task stays in flight
        until then."""
        try:
            await self.confirm(entry, acc, t0, queued_at=queued_at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never lost silently: the journal keeps the entry
            self.log.warning("task {} confirmation error: {}", entry.task_id, exc)
        finally:
            self.holds.in_flight.discard(entry.task_id)
            self._strict.discard(acc.public_key)

    async def settle(
        self, envelope: str, entry: JournalEntry, acc: SourceAccount, *, maybe_queued: bool = True
    ) -> bool:
        """After a send whose outcome is unknown: send the **same signed envelope** again (same
        hash: nothing can run twice) until the queue says DUPLICATE or PENDING (True: queued,
        the account is free for its next transaction) or its time bound has passed, a stop
        comes, or an ERROR says it is not pending (False: maybe applied meanwhile;
        getTransaction decides; after txTOO_LATE without waiting for the time bound). Never
        holds the account idle until the time bound when the queue can answer. While an
        earlier send ``maybe_queued`` the envelope, each resend follows a getTransaction that
        did not know it as applied (see the module's notes); a resend refused unread (busy)
        goes again after a short backoff while no ledger closed since that check (else
        getTransaction first again: that close may have applied the first copy)."""
        #: the ledger at which getTransaction last said "not applied" (None: not asked since)
        checked: int | None = None
        for retry in range(SETTLE_LIMIT):
            # (past the time-bound check a resend is still worth its answer: DUPLICATE says
            # it is queued, txTOO_LATE that it never can be: getTransaction then decides at once)
            if self.stopping or self._past_time_bound(entry):
                return False
            if retry or not maybe_queued:
                await SETTLE_BACKOFF.wait(retry)
            newest = self.newest()
            if maybe_queued and checked != (newest.sequence if newest is not None else 0):
                if await self._applied_already(entry):
                    return False  # applied meanwhile: a resend could only be refused (txBAD_SEQ)
                newest = self.newest()
                checked = newest.sequence if newest is not None else 0
            self.count("resent")
            state = await self._send(envelope, entry, acc, resend=True)
            if state == QUEUED:
                # queued with its sequence number: the local one is right, no reload needed
                acc.needs_resync = False
                self.log.info("task {} resend settled the unknown outcome: queued", entry.task_id)
                return True
            if state == UNKNOWN:  # this resend may have been queued: getTransaction first
                maybe_queued, checked = True, None
            elif state != BUSY:
                return False
        return False

    def _past_time_bound(self, entry: JournalEntry) -> bool:
        newest = self.newest()
        return newest is not None and newest.close_time > entry.max_time

    async def _applied_already(self, entry: JournalEntry) -> bool:
        """Whether getTransaction already knows the transaction as applied (an error or any
        other answer: not known, resend)."""
        try:
            res = await self.rpc.call("getTransaction", {"hash": entry.hash})
        except RpcError:
            return False
        if isinstance(res, dict):
            self.answers.saw(res)
        return isinstance(res, dict) and res.get("status") in ("SUCCESS", "FAILED")

    async def resend_journaled(self, entry: JournalEntry, acc: SourceAccount) -> str:
        """A restarted worker's journaled transaction: send its envelope once more (never a
        new one), so one that was journaled but never reached the queue is queued now. When
        that resend goes unanswered or is refused unread, the envelope is settled like a send
        whose answer was lost (:meth:`settle`), not left to its time bound (six ledgers with
        the default ``tx_timeout_s``, the kill tail under a busy RPC). One too close to its time
        bound to be queued is resent too: DUPLICATE says it is queued, txTOO_LATE that it
        never will be (the confirmation then ends at the next NOT_FOUND instead of waiting
        out the time bound, up to 2-3 s a kill under issue 16's mix).

        Returns :data:`QUEUED` (pending with its sequence number: the account's next
        transaction follows it), :data:`SPENT` (refused txBAD_SEQ or txTOO_LATE: not pending,
        never queueable again, maybe applied) or :data:`UNKNOWN`; in the first two cases the
        account need not wait for the confirmation, the task does."""
        self._resend_refused.pop(entry.hash, None)
        if self.stopping or self._past_time_bound(entry):
            return UNKNOWN
        self.count("resent")
        state = await self._send(entry.envelope, entry, acc, resend=True)
        if state in (UNKNOWN, BUSY):  # (the dead worker may have queued it: maybe queued)
            state = QUEUED if await self.settle(entry.envelope, entry, acc) else NOT_PENDING
        refused = self._resend_refused.pop(entry.hash, None)
        if state == QUEUED:
            return QUEUED
        return SPENT if state == NOT_PENDING and refused in _NEVER_AGAIN else UNKNOWN
