"""Due logic: should this keeper try to execute this task at this ledger time?"""

from __future__ import annotations

from sorotask_core.contract import TaskInfo

__all__ = ["MAX_BACKOFF_LEDGERS", "SKIP_REASONS", "Holds", "skip_reason"]

#: longest pause (ledgers) before re-simulating a task the simulation declined or failed
MAX_BACKOFF_LEDGERS = 8

#: every reason a checked task can be skipped, as counted in ``CycleStats.skipped``
SKIP_REASONS = (
    "not_due",
    "no_gas",
    "not_whitelisted",
    "in_flight",
    "archived",
    "read_error",
    "missing",
    "backoff",
)


def skip_reason(info: TaskInfo, ledger_time: int, keeper_address: bytes) -> str | None:
    """None when the task is due for ``keeper_address`` at ``ledger_time``; else the reason.

    ``keeper_address`` is the keeper's raw ``SCAddress`` XDR (``contract.sc_address_bytes``).
    Due means ``gas_balance > 0`` and ``ledger_time >= last_run + interval`` (the sum wraps
    at 2^64 as the contract's does: ``TaskInfo.next_run`` is
    :func:`sorotask_core.xdr.add_u64`, which the compact task state uses too); a
    non-empty whitelist must contain the keeper (the contract would answer
    Error(Contract, #2)).
    """
    if info.gas_balance <= 0:
        return "no_gas"
    if ledger_time < info.next_run:
        return "not_due"
    if info.whitelist and keeper_address not in info.whitelist:
        return "not_whitelisted"
    return None


class Holds:
    """Why a task that is due on chain is not executed now: it is in flight (being executed,
    or held by a journaled transaction), or it backs off after its simulation declined or
    its execution failed (1, 2, 4 ... ``MAX_BACKOFF_LEDGERS`` ledgers, until its entry
    changes). The reader's hot loop reads ``in_flight`` and ``backoff`` directly."""

    __slots__ = ("backoff", "in_flight")

    def __init__(self) -> None:
        self.in_flight: set[int] = set()
        #: task id -> (first ledger it may run again, current step in ledgers)
        self.backoff: dict[int, tuple[int, int]] = {}

    def back_off(self, task_id: int, ledger: int) -> None:
        """Hold ``task_id`` after ``ledger`` for twice the previous pause (at least 1)."""
        _, step = self.backoff.get(task_id, (0, 0))
        step = min(MAX_BACKOFF_LEDGERS, max(1, step * 2))
        self.backoff[task_id] = (ledger + step, step)

    def changed(self, task_id: int) -> None:
        """The task's entry changed on chain: whatever declined it may no longer hold."""
        self.backoff.pop(task_id, None)

    def reason(self, task_id: int, ledger: int) -> str | None:
        """``"in_flight"``, ``"backoff"`` (at ``ledger``) or None when free to execute."""
        if task_id in self.in_flight:
            return "in_flight"
        b = self.backoff.get(task_id)
        if b is not None and b[0] > ledger:
            return "backoff"
        return None
