"""The executor's pricing step and escalation step (issue 13), over :mod:`shard_worker.feepolicy`.

* :meth:`Pricer.refresh` asks ``getFeeStats`` every ``fee_refresh_ledgers`` ledgers (never
  under ``fee_strategy: fixed``); a failed or unusable answer keeps the previous statistics;
* :meth:`Pricer.price` / :meth:`Pricer.escalate` give a simulation's :class:`Verdict`; one that
  is not sent is counted (``skipped`` by reason), logged with its price and reported as a
  ``not_sent`` event;
* :meth:`Pricer.apply` writes the verdict into the transaction: the resource fee (with its
  margin) into ``SorobanTransactionData.resourceFee`` and inclusion + resource into the fee
  field (core takes ``fee - resourceFee`` as the bid, so the margin must be declared there).

Escalation (the caller's loop, :meth:`Executor._execute_with`): after ``txINSUFFICIENT_FEE``
or expiry the journal entry of the refused transaction is already removed, the account's
sequence number is reloaded from the chain (an unapplied transaction did not consume it, so the
resend has the same one), the call is simulated again and priced by :meth:`escalate`. So there
is never more than one live transaction per task.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from loguru import logger

from shard_worker import txxdr
from shard_worker.context import Events, Tally
from shard_worker.errors import FatalConfigError, RpcError
from shard_worker.feepolicy import (
    ESCALATING_OUTCOMES,
    FIXED_NO_ESCALATION,
    FeeConfig,
    FeePolicy,
    FeeStatsError,
    Verdict,
)
from shard_worker.rpc import RpcClient
from shard_worker.spec import WorkerSpec

__all__ = ["ESCALATING_OUTCOMES", "Pricer", "Rejection", "fee_config"]


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
    """One shard's fee policy, its statistics, and the counting of what it decides."""

    def __init__(self, spec: WorkerSpec, rpc: RpcClient, events: Events, tally: Tally) -> None:
        self.policy = FeePolicy(fee_config(spec))
        self.rpc = rpc
        self.events = events
        self.tally = tally
        self.log = logger.bind(shard=spec.name)
        self._lock = asyncio.Lock()
        #: the inclusion fee of the latest verdict sent (a gauge)
        self.offered = 0

    async def refresh(self, latest_ledger: int) -> None:
        """Ask getFeeStats when due (one call at a time; failures keep the old statistics)."""
        if not self.policy.refresh_due(latest_ledger):
            return
        async with self._lock:
            if not self.policy.refresh_due(latest_ledger):
                return
            try:
                result = await self.rpc.call("getFeeStats")
                self.policy.update_from_answer(result, latest_ledger)
            except (RpcError, FeeStatsError) as exc:
                # try again next ledger rather than every execution
                self.policy.fetched_at = latest_ledger - self.policy.config.refresh_ledgers + 1
                self.log.warning("getFeeStats unusable ({}); keeping the last fee statistics", exc)

    def price(self, min_resource_fee: int) -> Verdict:
        return self.policy.price(min_resource_fee)

    def escalate(self, previous: Verdict, rejection: Rejection, min_resource_fee: int) -> Verdict:
        verdict = self.policy.escalate(previous, min_resource_fee, fee_needed=rejection.fee_needed)
        if verdict.send:
            self.tally.cycle.escalations += 1
            self.tally.totals["escalations"] += 1
        return verdict

    def apply(self, tx: txxdr.InvokeTx, transaction_data: bytes, verdict: Verdict) -> None:
        """Declare ``verdict``'s resource fee and set the fee field to its total."""
        tx.soroban_data = txxdr.with_resource_fee(transaction_data, verdict.resource)
        tx.fee = verdict.total
        self.offered = verdict.inclusion

    def skipped(self, task_id: int, verdict: Verdict) -> None:
        """``verdict`` is not sent: counted by reason, logged with its price, reported."""
        reason = verdict.skip or "unknown"
        if reason == FIXED_NO_ESCALATION:
            return  # the fixed strategy's refused transaction was counted as a tx error
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
