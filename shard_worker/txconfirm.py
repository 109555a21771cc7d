"""A sent transaction confirmed (:class:`Confirmer`): ``getTransaction`` until a final
status (SUCCESS or FAILED: applied, its fee and outcome counted once) or past its time bound
(NOT_FOUND: expired, a tx error; after a resend refused txTOO_LATE, at the first NOT_FOUND at
that ledger or later)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from shard_worker import chain
from shard_worker.accounts import SourceAccount
from shard_worker.answerclock import answer_ledger
from shard_worker.errors import RpcError
from shard_worker.journal import JournalEntry
from shard_worker.rpc import expect_dict
from shard_worker.txsend import Sender

__all__ = ["Confirmer"]


class Confirmer(Sender):
    """Confirms sent transactions with ``getTransaction``; counts each final outcome once."""

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
