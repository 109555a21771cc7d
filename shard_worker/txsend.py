"""One send of a signed envelope (:class:`Sender`) and its answer by name.

``sendTransaction`` answers are counted by name (``send_results``): PENDING, DUPLICATE,
TRY_AGAIN_LATER (retried while the transaction can still pass core's time-bound check), ERROR
by result code (txTOO_LATE, txINSUFFICIENT_FEE, txBAD_SEQ, ... with a log line and a total
each), ``busy`` (refused unread: HTTP 503 / 429, -32098; a first send is sent again at once,
like TRY_AGAIN_LATER), ``uncertain`` (no answer, a garbled one), ``unknown_status``. What a
send found out is one of the names below (:data:`QUEUED`, :data:`UNKNOWN`, :data:`BUSY`,
:data:`NOT_PENDING`, :data:`REJECTED`); the confirmation (:mod:`shard_worker.txconfirm`) and
the landing (:mod:`shard_worker.submitter`) build on it.
"""

from __future__ import annotations

import contextlib
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
    "BUSY",
    "NOT_PENDING",
    "QUEUED",
    "REJECTED",
    "TRY_AGAIN_LATER_BACKOFF",
    "TRY_AGAIN_LATER_LIMIT",
    "TX_BAD_SEQ",
    "UNKNOWN",
    "Sender",
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
#: what a send found out (:meth:`Sender._send`)
QUEUED, UNKNOWN, BUSY, NOT_PENDING, REJECTED = (
    "queued",
    "unknown",
    "busy",
    "not_pending",
    "rejected",
)


class Sender:
    """Sends signed envelopes (``sendTransaction``) and names each answer; counts each named
    answer and each refusal once (in the :class:`Tally`) and reports it. Holds what the
    landing of a transaction shares: the journal, the tallies, the newest ledger the answers
    tell."""

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
        #: the result name of a refused send, by hash, until the landing has read it
        #: (:meth:`shard_worker.submitter.Submitter.submit`)
        self._last_rejection: dict[str, str] = {}
        #: told of each transaction applied, refused or expired (shard_worker.pricing)
        self.fee_hooks: FeeHooks | None = None
        #: the newest ledger, also as send and getTransaction answers tell it
        self.answers = AnswerClock(clock)
        #: hash -> the ledger a resend of it was refused txTOO_LATE at (never queueable again)
        self._too_late_at: dict[str, int] = {}
        #: the ledger each account's last transaction was queued at (its send answer's
        #: ``latestLedger``, or the newest ledger seen if later)
        self._queued_at: dict[str, int] = {}
        #: hash -> the refusal a resend of it was answered with (until read)
        self._resend_refused: dict[str, str] = {}

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

    def newest(self) -> Latest | None:
        """The newest ledger known (:class:`~shard_worker.answerclock.AnswerClock`)."""
        return self.answers.newest()

    def queued_at(self, acc: SourceAccount) -> int:
        """The ledger ``acc``'s last transaction was queued at (0: none queued yet). Its next
        transaction cannot be queued before that ledger has closed."""
        return self._queued_at.get(acc.public_key, 0)

    def _queued(self, acc: SourceAccount, res: dict[str, Any]) -> None:
        answered = answer_ledger(res)
        newest = self.newest()
        seen = newest.sequence if newest is not None else 0
        self._queued_at[acc.public_key] = max(answered, seen)

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

    def _refused_late(self, entry: JournalEntry, res: dict[str, Any]) -> None:
        """A resend of ``entry``'s envelope was refused txTOO_LATE: not pending then (core
        answers DUPLICATE for a pending hash before it checks time bounds) and never
        queueable again (time only moves on). Once getTransaction answers NOT_FOUND at that
        ledger or later, it will never apply: :meth:`confirm` need not wait out its time
        bound."""
        ledger = answer_ledger(res)
        if ledger > 0:
            self._too_late_at[entry.hash] = ledger

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
