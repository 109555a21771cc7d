"""``sorotask bench --competing-fee F`` (issue 13): surge pricing on the devnet during the run,
and the figures that say what share of the execution ceiling landed under it, by the shards'
fee strategy (``--fee-strategy stats|fixed|both``)."""

from __future__ import annotations

import time
from typing import Any

from sorotask.bench.params import SURGE_CAPACITY, SURGE_LOAD, BenchParams


def start_surge(dn: Any, p: BenchParams, ceiling: int) -> dict[str, Any] | None:
    """With ``--competing-fee F``: a ledger capacity below demand and a competing load at F,
    until getFeeStats shows F (so a keeper reading it knows the price from its start)."""
    if p.competing_fee is None:
        return None
    capacity, load = SURGE_CAPACITY * ceiling, SURGE_LOAD * ceiling
    dn.rpc("devnet_setCapacity", {"capacity": capacity})
    dn.rpc("devnet_setLoad", {"count": load, "fee": p.competing_fee})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fees = dn.rpc("getFeeStats", {})["sorobanInclusionFee"]
        if int(fees["transactionCount"]) and int(fees["p10"]) >= p.competing_fee:
            break
        time.sleep(0.2)
    return {"capacity": capacity, "load_per_ledger": load, "competing_fee": p.competing_fee}


def surge_figures(
    execs: list[dict[str, Any]], ours: dict[str, Any], sources: int, surge: dict[str, Any]
) -> dict[str, Any]:
    """Under a surge the utilisation counts every ledger of the measured rounds (a strategy
    that lands nothing scores 0, not "no figure"); ``by_strategy`` splits it by the shards'
    fee strategy (``--fee-strategy both``: side by side in one run)."""
    lo, hi = ours["ledgers"]
    ledgers = max(1, hi - lo)
    strategies: dict[str, str] = ours["strategies"]
    landed = [
        e
        for e in execs
        if lo < e["ledger"] <= hi and e["effect"] == "executed" and e["keeper"] in strategies
    ]
    fees = sum(ours["stats_after"]["fees"].values()) - sum(ours["stats_before"]["fees"].values())

    def figures(keepers: int, n: int) -> dict[str, Any]:
        return {
            "shards": keepers,
            "executions_per_ledger": round(n / ledgers, 3),
            "ceiling_utilisation": round(n / (ledgers * keepers * sources), 3),
        }

    by_strategy = {
        name: figures(
            sum(1 for s in strategies.values() if s == name),
            sum(1 for e in landed if strategies[e["keeper"]] == name),
        )
        for name in sorted(set(strategies.values()))
    }
    return {
        "surge": {**surge, "measured_ledgers": ledgers},
        **figures(len(strategies), len(landed)),
        "by_strategy": by_strategy,
        "fee_per_execution_stroops": round(fees / len(landed)) if landed else None,
    }
