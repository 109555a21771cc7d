"""Replicas: one chain served on several ports, each endpoint with its own faults and lag.

A :class:`Replica` is one endpoint's handle on the shared :class:`~devnet.node.Devnet`: it
owns its ``faults`` (``devnet_setFaults`` sent to that port) and its ``lag``
(``devnet_setLag``); every other attribute read or written goes to the chain. Replica 0's
faults are the chain's own, so a one-port devnet behaves exactly as before.

A lagging replica answers getHealth, getLatestLedger, getLedgerEntries, getEvents and
getTransaction as of ``lag`` ledgers ago (:class:`ChainView`), like a provider's node that is
behind. Simulation and sendTransaction go to the shared chain as it is now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devnet.faults import Faults
from devnet.ledger import Entry, LedgerInfo

if TYPE_CHECKING:
    from devnet.apply import TxRecord
    from devnet.node import Devnet

#: ledgers of entry history kept for lagging replicas when --replicas > 1 (about 5 minutes of
#: 5 s ledgers; ``sorotask devnet --max-lag`` changes it)
DEFAULT_MAX_LAG = 64
MAX_REPLICAS = 16


class LagParamError(ValueError):
    pass


class ChainView:
    """The chain as of ledger ``latest``: at most ``ledger.max_lag`` ledgers behind."""

    def __init__(self, node: Devnet, lag: int = 0) -> None:
        ledger = node.ledger
        self._node = node
        seq = max(ledger.oldest.sequence, ledger.sequence - lag)
        self.lagged = seq != ledger.sequence
        self.latest: LedgerInfo = ledger.history[seq] if self.lagged else ledger.latest
        self.oldest: LedgerInfo = ledger.oldest
        self.retention = ledger.retention

    @property
    def sequence(self) -> int:
        return self.latest.sequence

    @property
    def close_time(self) -> int:
        return self.latest.close_time

    def entry(self, key_b64: str) -> Entry | None:
        ledger = self._node.ledger
        if self.lagged:
            return ledger.entry_at(key_b64, self.latest.sequence)
        return ledger.get(key_b64)

    def transaction(self, hash_hex: str) -> TxRecord | None:
        rec = self._node.txs.get(hash_hex)
        if rec is None or rec.ledger > self.latest.sequence:
            return None
        return rec

    def ledger_range(self) -> dict[str, Any]:
        return {
            "latestLedger": self.latest.sequence,
            "latestLedgerCloseTime": str(self.latest.close_time),
            "oldestLedger": self.oldest.sequence,
            "oldestLedgerCloseTime": str(self.oldest.close_time),
        }


class Replica:
    """One endpoint of the shared chain (see the module docstring)."""

    _OWN = frozenset({"chain", "index", "lag", "_faults"})

    def __init__(self, chain: Devnet, index: int = 0) -> None:
        self.chain = chain
        self.index = index
        #: answer as of this many ledgers ago (``devnet_setLag``)
        self.lag = 0
        self._faults = Faults()

    @property
    def faults(self) -> Faults:
        return self.chain.faults if self.index == 0 else self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        if self.index == 0:
            self.chain.faults = value
        else:
            self._faults = value

    def view(self) -> ChainView:
        return ChainView(self.chain, self.lag)

    def submit(self, envelope_b64: str) -> dict[str, Any]:
        """sendTransaction with this replica's faults (the chain's latest state)."""
        return self.chain.submit(envelope_b64, self.faults)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chain, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Replica._OWN or name == "faults":
            object.__setattr__(self, name, value)
        else:
            setattr(self.chain, name, value)


def set_lag(node: Replica, params: dict[str, Any]) -> dict[str, Any]:
    """``devnet_setLag {ledgers}``: this replica answers as of ``ledgers`` ledgers ago."""
    unknown = set(params) - {"ledgers"}
    if unknown:
        raise LagParamError(f"unknown fields: {', '.join(sorted(unknown))}")
    ledgers = params.get("ledgers", 0)
    max_lag = node.chain.ledger.max_lag
    if isinstance(ledgers, bool) or not isinstance(ledgers, int) or not 0 <= ledgers <= max_lag:
        hint = "" if max_lag else " (this devnet keeps no history: start it with --max-lag N)"
        raise LagParamError(f"ledgers must be an integer in [0, {max_lag}]{hint}")
    node.lag = ledgers
    return {"replica": node.index, "lag": ledgers}
