"""The executor's pricing step and escalation step (issue 13), over :mod:`shard_worker.feepolicy`.

* :meth:`Pricer.refresh` asks ``getFeeStats`` every ``fee_refresh_ledgers`` ledgers (never
  under ``fee_strategy: fixed``; the keeper's cycle calls it); a failed or unusable answer
  keeps the previous statistics;
* :meth:`Pricer.verdict` is the pricing step: the first attempt for a task is priced at the
  market; after the task's previous transaction was refused for too low a fee
  (``txINSUFFICIENT_FEE``, core's ``feeCharged`` as a hint) or expired unapplied, the next
  attempt (simulated again) is escalated from that one's bid, in bounded steps, never above
  ``fee_max_inclusion``. A verdict not sent is counted (``skipped`` by reason), logged with
  its price and reported as a ``not_sent`` event (:meth:`Pricer.skipped`);
* :meth:`Pricer.apply` writes the verdict into the transaction: the resource fee (with its
  margin) into ``SorobanTransactionData.resourceFee`` and inclusion + resource into the fee
  field (core takes ``fee - resourceFee`` as the bid, so the margin must be declared there);
* :class:`FeeHooks` is what the submitter tells: each transaction applied (the fee charged:
  balances, the histogram; the task's escalation is over) and each one refused or expired.

The escalated attempt is a new execution of the task: it starts only once the refused one is
final (out of the journal, the task no longer in flight), so there is never more than one live
transaction per task; an expired transaction did not consume its sequence number, so the
account's next transaction reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from shard_worker import chain, txxdr
from shard_worker.context import Counters, Events, Tally
from shard_worker.errors import FatalConfigError, RpcError
from shard_worker.feepolicy import (
    ESCALATING_OUTCOMES,
    FeeConfig,
    FeePolicy,
    FeeStatsError,
    Verdict,
)
from shard_worker.journal import JournalEntry
from shard_worker.rpc import RpcClient
from shard_worker.spec import WorkerSpec
from sorotask_core.stats import FIELDS_BY_NAME, observe

__all__ = ["ESCALATING_OUTCOMES", "FeeHooks", "Pricer", "Rejection", "fee_config"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a sent transaction was not applied: ``txINSUFFICIENT_FEE`` (``fee_needed``: the
    ``feeCharged`` of its ``errorResultXdr``, what core's queue would have let in), another
    result code name, or ``"expired"``."""

    outcome: str
    fee_needed: int | None = None

    @property
    def escalates(self) -> bool:
        return self.outcome in ESCALATING_OUTCOMES


FEE_CHARGED = FIELDS_BY_NAME["fee_charged"]
#: tasks whose last verdict is remembered for an escalation (the oldest forgotten beyond)
MAX_REMEMBERED = 10_000


def fee_config(spec: WorkerSpec) -> FeeConfig:
    """The shard's :class:`FeeConfig`; settings that do not fit together raise
    :class:`FatalConfigError`."""
    try:
        return FeeConfig(
            strategy=spec.fee_strategy,  # type: ignore[arg-type]
            percentile=spec.fee_percentile,
            floor=spec.fee_floor,
            max_inclusion=spec.fee_max_inclusion,
            max_total=spec.fee_max_total,
            resource_margin=spec.fee_resource_margin,
            refresh_ledgers=spec.fee_refresh_ledgers,
            max_escalations=spec.fee_max_escalations,
            fixed_inclusion=spec.base_fee,
        )
    except ValueError as exc:
        raise FatalConfigError(str(exc)) from None


class Pricer:
    """One shard's fee policy, its statistics, each task's last bid, and the counting of what
    it decides."""

    def __init__(self, spec: WorkerSpec, rpc: RpcClient, events: Events, tally: Tally) -> None:
        self.policy = FeePolicy(fee_config(spec))
        self.rpc = rpc
        self.events = events
        self.tally = tally
        self.log = logger.bind(shard=spec.name)
        self._lock = asyncio.Lock()
        #: the inclusion fee of the latest verdict sent (a gauge)
        self.offered = 0
        #: task id -> (its last verdict sent, why that transaction was not applied or None)
        self._last: dict[int, tuple[Verdict, Rejection | None]] = {}

    async def refresh(self, latest_ledger: int | None, *, hedge: bool = False) -> None:
        """Ask getFeeStats when due (one call at a time; failures keep the old statistics);
        ``hedge``: its copies hedged (at start, where the first executions wait for it; in
        a cycle it is read beside: nobody waits). ``latest_ledger`` None (at start, no
        ledger known yet): the statistics are as of the answer's ``latestLedger``."""
        if latest_ledger is not None and not self.policy.refresh_due(latest_ledger):
            return
        async with self._lock:
            if latest_ledger is not None and not self.policy.refresh_due(latest_ledger):
                return
            try:
                result = await self.rpc.call("getFeeStats", hedge=hedge)
                at = latest_ledger
                if at is None:
                    answered = result.get("latestLedger") if isinstance(result, dict) else None
                    at = answered if isinstance(answered, int) else 0
                self.policy.update_from_answer(result, at)
            except (RpcError, FeeStatsError) as exc:
                if latest_ledger is not None:  # try again next ledger rather than every cycle
                    self.policy.fetched_at = latest_ledger - self.policy.config.refresh_ledgers + 1
                self.log.warning("getFeeStats unusable ({}); keeping the last fee statistics", exc)

    # ------------------------------------------------------------------ the pricing step

    def verdict(self, task_id: int, min_resource_fee: int) -> Verdict:
        """This attempt's verdict: escalated when the task's previous transaction was refused
        for too low a fee or expired, else at the market."""
        last = self._last.get(task_id)
        if (
            not self.policy.uses_stats  # fixed: the same bid again, never escalated
            or last is None
            or last[1] is None
            or not last[1].escalates
        ):
            return self.policy.price(min_resource_fee)
        previous, rejection = last
        verdict = self.policy.escalate(previous, min_resource_fee, fee_needed=rejection.fee_needed)
        if verdict.send:
            self.tally.cycle.escalations += 1
            self.tally.totals["escalations"] += 1
            self.log.info(
                "task {}: {} after {}: attempt {} bids {} ({})",
                task_id,
                rejection.outcome,
                previous.inclusion,
                verdict.attempt,
                verdict.inclusion,
                verdict.basis,
            )
        return verdict

    def apply(
        self, task_id: int, tx: txxdr.InvokeTx, transaction_data: bytes, verdict: Verdict
    ) -> None:
        """Declare ``verdict``'s resource fee and set the fee field to its total; the verdict
        is remembered as the task's last bid (for an escalation)."""
        tx.soroban_data = txxdr.with_resource_fee(transaction_data, verdict.resource)
        tx.fee = verdict.total
        self.offered = verdict.inclusion
        self.sent(task_id, verdict)

    def sent(self, task_id: int, verdict: Verdict) -> None:
        self._last.pop(task_id, None)
        self._last[task_id] = (verdict, None)
        while len(self._last) > MAX_REMEMBERED:
            del self._last[next(iter(self._last))]

    def skipped(self, task_id: int, verdict: Verdict) -> None:
        """``verdict`` is not sent: counted by reason, logged with its price, reported. The
        task's escalation is over (its next attempt, after the back-off, is at the market)."""
        self._last.pop(task_id, None)
        reason = verdict.skip or "unknown"
        skips = self.tally.cycle.fee_skips
        skips[reason] = skips.get(reason, 0) + 1
        self.tally.totals["fee_skipped"] += 1
        self.log.info("task {} not sent: {}", task_id, verdict.describe())
        data: dict[str, Any] = {
            "task_id": task_id,
            "reason": reason,
            "price": verdict.price,
            "inclusion": verdict.inclusion,
            "attempt": verdict.attempt,
        }
        self.events.event("not_sent", data)

    def fill(self, stats: Any, counters: Counters) -> None:
        """The cycle's fee figures into its ``CycleStats``."""
        for reason, n in counters.fee_skips.items():
            stats.skipped[reason] = stats.skipped.get(reason, 0) + n
        stats.escalations = counters.escalations
        for fee in counters.fees_charged:
            observe(FEE_CHARGED, stats.fee_charged, fee)
        stats.inclusion_fee = self.offered

    # ------------------------------------------------------------------ outcomes

    def not_applied(self, task_id: int, rejection: Rejection) -> None:
        last = self._last.get(task_id)
        if last is not None:
            self._last[task_id] = (last[0], rejection)

    def forget(self, task_id: int) -> None:
        self._last.pop(task_id, None)


class FeeHooks:
    """What the submitter tells about the transactions it lands: the fee charged (balances,
    the fee-charged histogram; the task's escalation is over) and each refusal or expiry (the
    escalation step)."""

    def __init__(
        self, pricer: Pricer, tally: Tally, charged: Callable[[str, int, int | None], None]
    ) -> None:
        self.pricer = pricer
        self.tally = tally
        self.charged = charged

    def applied(self, entry: JournalEntry, fee: int, ledger: object) -> None:
        self.pricer.forget(entry.task_id)
        self.tally.cycle.fees_charged.append(fee)
        self.charged(entry.source, fee, ledger if isinstance(ledger, int) else None)

    def not_applied(self, entry: JournalEntry, outcome: str, error_result_xdr: object) -> None:
        """``outcome``: the result code name of a refused send, or ``"expired"``."""
        needed = None
        if isinstance(error_result_xdr, str):
            with contextlib.suppress(Exception):
                needed = chain.fee_charged(error_result_xdr)
        self.pricer.not_applied(entry.task_id, Rejection(outcome, needed))
