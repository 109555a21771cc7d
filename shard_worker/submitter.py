"""Landing a signed transaction (:class:`Submitter`): journal, send, settle, confirm.

* ``sendTransaction`` answers are counted by name (``send_results``): PENDING, DUPLICATE,
  TRY_AGAIN_LATER (retried while the transaction can still pass core's time-bound check),
  ERROR by result code (txTOO_LATE, txINSUFFICIENT_FEE, txBAD_SEQ, ... with a log line and a
  total each), ``busy`` (refused unread: HTTP 503 / 429, -32098; a first send is sent again
  at once, like TRY_AGAIN_LATER), ``uncertain`` (no answer, a garbled one), ``unknown_status``,
  ``resent``.
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
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from loguru import logger

from shard_worker import chain
from shard_worker.accounts import SourceAccount
from shard_worker.answerclock import AnswerClock, answer_ledger
from shard_worker.context import Events, Tally
from shard_worker.due import Holds
from shard_worker.errors import RpcError
from shard_worker.journal import Journal, JournalEntry
from shard_worker.ledger import Latest, LedgerClock
from shard_worker.pricing import FeeHooks
from shard_worker.retry import Backoff
from shard_worker.rpc import RpcClient, expect_dict
from shard_worker.sendcopies import REFUSED_UNREAD_KINDS, judge_send, sum_up
from shard_worker.spec import WorkerSpec
from shard_worker.txbounds import DEFAULT_LEDGER_S

__all__ = [
    "APPLIED",
    "QUEUED",
    "SPENT",
    "TRY_AGAIN_LATER_BACKOFF",
    "TRY_AGAIN_LATER_LIMIT",
    "TX_BAD_SEQ",
    "UNKNOWN",
    "Submitter",
]

TX_BAD_SEQ = -5
#: rejections counted in the keeper's totals by name
_NAMED_REJECTIONS = {
    "txTOO_LATE": "rejected_too_late",
    "txINSUFFICIENT_FEE": "rejected_insufficient_fee",
    "txBAD_SEQ": "rejected_bad_seq",
}
#: the wait between sends answered TRY_AGAIN_LATER, and how many sends at most
TRY_AGAIN_LATER_BACKOFF = Backoff(0.05, factor=1.5, max_s=1.0, jitter=0.3)
TRY_AGAIN_LATER_LIMIT = 64
#: what a send found out (:meth:`Submitter._send`)
QUEUED, UNKNOWN, BUSY, NOT_PENDING, REJECTED = (
    "queued",
    "unknown",
    "busy",
    "not_pending",
    "rejected",
)
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


class Submitter:
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
        self.spec = spec
        self.rpc = rpc
        self.events = events
        self.journal = journal
        self.holds = holds
        self.clock = clock
        self.tally = tally
        self.log = logger.bind(shard=spec.name)
        #: set once the keeper stops: nothing new is sent
        self.stopping = False
        #: the network's ledger time (seconds), for the time-bound check; set at start
        self.ledger_s = DEFAULT_LEDGER_S
        #: tasks that have (maybe) sent a transaction: a stop waits for them (bounded), while
        #: executions not yet sent are cancelled
        self.sending: set[asyncio.Task[None]] = set()
        #: the result name of a refused send, by hash, until :meth:`submit` has read it
        self._last_rejection: dict[str, str] = {}
        #: each source account's transaction being confirmed beside the executors
        self._confirming: dict[str, asyncio.Task[None]] = {}
        #: told of each transaction applied, refused or expired (shard_worker.pricing)
        self.fee_hooks: FeeHooks | None = None
        #: accounts whose next transaction waits until the previous one is final
        self._strict: set[str] = set()
        #: the newest ledger, also as send and getTransaction answers tell it
        self.answers = AnswerClock(clock)
        #: hash -> the ledger a resend of it was refused txTOO_LATE at (never queueable again)
        self._too_late_at: dict[str, int] = {}
        #: the ledger each account's last transaction was queued at (its send answer's
        #: ``latestLedger``, or the newest ledger seen if later)
        self._queued_at: dict[str, int] = {}
        #: hash -> the refusal a resend of it was answered with (until read)
        self._resend_refused: dict[str, str] = {}

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

    def queued_at(self, acc: SourceAccount) -> int:
        """The ledger ``acc``'s last transaction was queued at (0: none queued yet). Its next
        transaction cannot be queued before that ledger has closed."""
        return self._queued_at.get(acc.public_key, 0)

    def _queued(self, acc: SourceAccount, res: dict[str, Any]) -> None:
        answered = answer_ledger(res)
        newest = self.newest()
        seen = newest.sequence if newest is not None else 0
        self._queued_at[acc.public_key] = max(answered, seen)

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

    def count(self, result: str) -> None:
        """One named answer to a send (``send_results``)."""
        sends = self.tally.cycle.sends
        sends[result] = sends.get(result, 0) + 1

    def sendable(self, entry: JournalEntry) -> bool:
        """The transaction can still pass core's time-bound check (its max time more than two
        ledgers past the newest ledger seen)."""
        newest = self.newest()
        if newest is None:
            return True
        return entry.max_time > newest.close_time + 2 * self.ledger_s

    async def send(self, envelope: str, entry: JournalEntry, acc: SourceAccount) -> bool:
        """True when the transaction may be queued (confirm it); False when it surely is not."""
        return await self._send(envelope, entry, acc) != REJECTED

    async def _send(
        self, envelope: str, entry: JournalEntry, acc: SourceAccount, *, resend: bool = False
    ) -> str:
        """One send (TRY_AGAIN_LATER and a busy server's 503 / 429 / full queue retried while
        the transaction can still be sent in time):
        :data:`QUEUED` (PENDING / DUPLICATE); :data:`UNKNOWN` (no answer, a garbled one, or an
        unknown status: maybe queued); :data:`BUSY` (refused unread by a busy server: not
        queued by this send); :data:`REJECTED` (surely not queued; counted).

        With ``resend`` (the same envelope again, after an unknown outcome) an ERROR, or
        TRY_AGAIN_LATER up to the time bound, is :data:`NOT_PENDING`: not in the queue (that
        would be DUPLICATE) but maybe applied meanwhile (its sequence number used: txBAD_SEQ,
        or its time bound passed), so getTransaction decides."""
        for retry in range(TRY_AGAIN_LATER_LIMIT):
            try:
                res = expect_dict(await self._copies(envelope), "sendTransaction")
                status = res.get("status")
            except RpcError as exc:
                if exc.kind in REFUSED_UNREAD_KINDS:
                    self.count("busy")
                    if not resend:
                        # refused unread, and no earlier send of this envelope can be queued:
                        # a first send again, at once (no getTransaction, no ledger to wait)
                        if self.stopping or not self.sendable(entry):
                            self._tx_error(entry, "busy until its time bound")
                            return REJECTED
                        await TRY_AGAIN_LATER_BACKOFF.wait(retry)
                        continue
                    acc.sent(entry.sequence, accepted=False)
                    self.log.info("task {} send refused unread ({})", entry.task_id, exc)
                    return BUSY
                acc.sent(entry.sequence, accepted=False)
                self.count("uncertain")
                self.log.info("task {} send uncertain ({})", entry.task_id, exc)
                return UNKNOWN
            if status in ("PENDING", "DUPLICATE"):
                self.count(str(status))
                acc.sent(entry.sequence, accepted=True)
                self._queued(acc, res)
                return QUEUED
            if status == "TRY_AGAIN_LATER":
                self.count("TRY_AGAIN_LATER")
                close = answer_ledger(res, "latestLedgerCloseTime")
                if close > entry.max_time or self.stopping or not self.sendable(entry):
                    if resend:  # an earlier send may have been queued (then applied)
                        return NOT_PENDING
                    self._tx_error(entry, "TRY_AGAIN_LATER until its time bound")
                    return REJECTED
                await TRY_AGAIN_LATER_BACKOFF.wait(retry)
                continue
            if status == "ERROR":
                code, name = -1, "unknown"
                raw = res.get("errorResultXdr")
                if isinstance(raw, str):
                    with contextlib.suppress(Exception):
                        code, name = chain.result_code(raw)
                self.count(name)
                if resend:
                    self.log.info(
                        "task {} resend answered {}: applied meanwhile? getTransaction decides",
                        entry.task_id,
                        name,
                    )
                    self._resend_refused[entry.hash] = name
                    if name == "txTOO_LATE":
                        self._refused_late(entry, res)
                    return NOT_PENDING
                if self.fee_hooks is not None:
                    self.fee_hooks.not_applied(entry, name, raw)
                self._rejected(entry, acc, code, name)
                return REJECTED
            # an unknown or garbled status: the server may well have queued it (the answer
            # was mangled on the way, or a newer server has a new status). Treat it like an
            # unanswered send: the sequence number counts as used (resynced from the chain
            # before the account's next use, after the confirmation), the journal entry
            # stays, and a resend or getTransaction says what really happened.
            self.tally.totals["send_status_unknown"] += 1
            self.count("unknown_status")
            self.rpc.note_error("sendTransaction")
            self.log.warning(
                "task {} send answered unknown status {!r}; confirming",
                entry.task_id,
                str(status)[:80],
            )
            acc.sent(entry.sequence, accepted=False)
            return UNKNOWN
        if resend:
            return NOT_PENDING
        self._tx_error(entry, "TRY_AGAIN_LATER too many times")
        return REJECTED

    async def _copies(self, envelope: str) -> Any:
        """One send of ``envelope``: copies of it, hedged as the RPC client allows, never a
        client retry after the fact (it could meet the envelope applied meanwhile unseen);
        what their answers add up to (:mod:`shard_worker.sendcopies`), or the error it
        raises. Every answer tells the newest ledger."""
        got = await self.rpc.copies("sendTransaction", {"transaction": envelope}, judge_send)
        for answer in got.answers:
            if isinstance(answer, dict):
                self.answers.saw(answer)
        answer = sum_up(got)
        if isinstance(answer, BaseException):
            raise answer
        return answer

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

    def _refused_late(self, entry: JournalEntry, res: dict[str, Any]) -> None:
        """A resend of ``entry``'s envelope was refused txTOO_LATE: not pending then (core
        answers DUPLICATE for a pending hash before it checks time bounds) and never
        queueable again (time only moves on). Once getTransaction answers NOT_FOUND at that
        ledger or later, it will never apply: :meth:`confirm` need not wait out its time
        bound."""
        ledger = answer_ledger(res)
        if ledger > 0:
            self._too_late_at[entry.hash] = ledger

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

    async def applied_journaled(self, entry: JournalEntry) -> bool:
        """One getTransaction (hedged: an account waits) of a restarted worker's journaled
        transaction: when it is already in a ledger (the dead worker had not confirmed it
        yet: the usual case after a kill), it is confirmed now (True). An error or any other
        answer: False (its resend and confirmation decide)."""
        try:
            res = await self.rpc.call("getTransaction", {"hash": entry.hash})
        except RpcError:
            return False
        if not isinstance(res, dict):
            return False
        self.answers.saw(res)
        status = res.get("status")
        if status not in ("SUCCESS", "FAILED") or entry.hash not in self.journal:
            return False
        self._applied(entry, res, time.monotonic(), success=status == "SUCCESS")
        return True

    def newest(self) -> Latest | None:
        """The newest ledger known (:class:`~shard_worker.answerclock.AnswerClock`)."""
        return self.answers.newest()

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

    def _rejected(self, entry: JournalEntry, acc: SourceAccount, code: int, name: str) -> None:
        """ERROR from a first send: the transaction is surely not queued. Named outcomes:
        txTOO_LATE (its max time was not two ledgers ahead by the time it was sent),
        txINSUFFICIENT_FEE (the network is busy: surge pricing), txBAD_SEQ (the account's
        sequence number moved: reloaded before its next use)."""
        if code == TX_BAD_SEQ:
            acc.resync()
        self._last_rejection[entry.hash] = name
        key = _NAMED_REJECTIONS.get(name)
        if key is not None:
            self.tally.totals[key] += 1
        self.log.warning("task {} send rejected: {}", entry.task_id, name)
        self._tx_error(entry, f"rejected: {name}")

    def _tx_error(self, entry: JournalEntry, reason: str) -> None:
        self.journal.remove(entry.hash)
        self._too_late_at.pop(entry.hash, None)
        self.tally.cycle.tx_errors += 1
        self.tally.totals["tx_errors"] += 1
        self.events.event(
            "tx_error", {"task_id": entry.task_id, "tx_hash": entry.hash, "reason": reason}
        )

    async def confirm(
        self, entry: JournalEntry, acc: SourceAccount | None, t0: float, *, queued_at: int = 0
    ) -> bool:
        """Poll getTransaction until a final status or the time bound has passed (or, after a
        resend refused txTOO_LATE, NOT_FOUND at that ledger or later: it can never apply);
        ``acc`` is the transaction's source (None for a source no longer configured). A
        transaction queued at ledger ``queued_at`` (0: unknown) is in a later one at the
        earliest: with a paced clock the first getTransaction waits for it (a request an
        execution less: it was always NOT_FOUND). True when it was applied (SUCCESS or
        FAILED), False when it never will be."""
        poll = max(0.05, self.spec.confirm_poll_s)
        if self.clock.paced and queued_at > 0:
            await self.clock.wait_newer(queued_at, max(poll, self.ledger_s))
        while True:
            try:
                # not hedged: the account is free, nothing waits for this answer but the task
                res = expect_dict(
                    await self.rpc.call("getTransaction", {"hash": entry.hash}, hedge=False),
                    "getTransaction",
                )
                status = res.get("status")
                self.answers.saw(res)
            except RpcError as exc:
                self.log.debug("getTransaction {}: {}", entry.hash, exc)
                await asyncio.sleep(min(2.0, poll * 4))
                continue
            if status == "SUCCESS" or status == "FAILED":
                self._applied(entry, res, t0, success=status == "SUCCESS")
                return True
            if status == "NOT_FOUND":
                close = answer_ledger(res, "latestLedgerCloseTime")
                late = self._too_late_at.get(entry.hash)
                if close > entry.max_time or (late is not None and answer_ledger(res) >= late):
                    if acc is not None:
                        acc.resync()  # its sequence number was not consumed
                    if self.fee_hooks is not None:
                        self.fee_hooks.not_applied(entry, "expired", None)
                    self._tx_error(entry, "not applied before its time bound (expired)")
                    return False
                seen = answer_ledger(res)
                if self.clock.paced and seen > 0:  # not before the next close: once a ledger
                    await self.clock.wait_newer(seen, max(poll, self.ledger_s))
                    continue
            await asyncio.sleep(poll)

    def _applied(
        self, entry: JournalEntry, res: dict[str, Any], t0: float, *, success: bool
    ) -> None:
        """The transaction is in a ledger (its fee charged), SUCCESS or FAILED."""
        fee = 0
        if isinstance(res.get("resultXdr"), str):
            with contextlib.suppress(Exception):
                fee = chain.fee_charged(res["resultXdr"])
        self.journal.remove(entry.hash)
        self._too_late_at.pop(entry.hash, None)
        c = self.tally.cycle
        totals = self.tally.totals
        c.fees += fee
        totals["fees_spent"] += fee
        if self.fee_hooks is not None:
            self.fee_hooks.applied(entry, fee, res.get("ledger"))
        if success:
            c.executed += 1
            c.exec_times.append(time.monotonic() - t0)
            self.tally.lateness.executed(entry.task_id, res.get("ledger"), c.delays)
            totals["executed"] += 1
            self.events.event(
                "executed",
                {
                    "task_id": entry.task_id,
                    "tx_hash": entry.hash,
                    "ledger": res.get("ledger"),
                    "fee": fee,
                    "source": entry.source,
                },
            )
            return
        c.failed += 1
        totals["failed"] += 1
        if self.clock.last_read is not None:
            self.holds.back_off(entry.task_id, self.clock.last_read.sequence)
        self.events.event(
            "failed", {"task_id": entry.task_id, "reason": "tx_failed", "tx_hash": entry.hash}
        )
