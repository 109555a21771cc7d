"""A transaction's time bound against stellar-core's submission check.

Core refuses a transaction as txTOO_LATE when its max time is below
``lastClose + 2 x ledger time + (now - lastClose)`` (SOROBAN_FACTS.md, "Round two"), so the
keeper's ``tx_timeout_s`` (max time = the latest close time + it) must reach more than two
ledgers ahead plus a margin for the simulations and the send:
:func:`sorotask_core.settings.min_tx_timeout_s`. The config check uses Stellar's 5 s ledgers;
at start the keeper measures the network's own ledger time from ``getHealth`` (the close times
of its oldest and latest ledgers; Stellar's 5 s when the answer has no close times) and refuses
a ``tx_timeout_s`` too short for it.
"""

from __future__ import annotations

from typing import Any

from sorotask_core.settings import STELLAR_LEDGER_S, min_tx_timeout_s, tx_timeout_problem

__all__ = ["DEFAULT_LEDGER_S", "ledger_time_from_health", "min_tx_timeout_s", "tx_timeout_problem"]

DEFAULT_LEDGER_S: float = float(STELLAR_LEDGER_S)


def ledger_time_from_health(res: Any) -> float | None:
    """Mean seconds per ledger from a ``getHealth`` answer (``oldestLedger``, ``latestLedger``
    and their close times, numbers or strings); None when it cannot tell."""
    if not isinstance(res, dict):
        return None
    try:
        first, last = int(res["oldestLedger"]), int(res["latestLedger"])
        t0, t1 = int(res["oldestLedgerCloseTime"]), int(res["latestLedgerCloseTime"])
    except (KeyError, TypeError, ValueError):
        return None
    if last <= first or t1 <= t0:
        return None
    return (t1 - t0) / (last - first)
