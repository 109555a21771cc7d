"""Due logic: should this keeper try to execute this task at this ledger time?"""

from __future__ import annotations

from sorotask_core.contract import TaskInfo

__all__ = ["SKIP_REASONS", "skip_reason"]

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
    Due means ``gas_balance > 0`` and ``ledger_time >= last_run + interval``; a non-empty
    whitelist must contain the keeper (the contract would answer Error(Contract, #2)).
    """
    if info.gas_balance <= 0:
        return "no_gas"
    if ledger_time < info.last_run + info.interval:
        return "not_due"
    if info.whitelist and keeper_address not in info.whitelist:
        return "not_whitelisted"
    return None
