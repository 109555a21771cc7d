"""Surge pricing: a ledger capacity for Soroban transactions, competing load, the queue limiter,
and the fee statistics stellar-rpc computes from what ledgers really included.

Modelled on stellar-core (herder/TransactionQueue, TxQueueLimiter, surge pricing of the Soroban
phase) with the ledger's Soroban limits reduced to one number, ``capacity`` transactions a ledger
(every devnet transaction has one operation, so "per operation" and "per transaction" agree):

* The queue holds at most ``POOL_LEDGER_MULTIPLIER x capacity`` transactions: the ones sent and
  still pending plus the competing load waiting for the next ledger. A transaction that does not
  fit must bid a strictly higher inclusion fee than the cheapest one queued; that one is evicted
  (and banned) to make room. Otherwise it is rejected with ``txINSUFFICIENT_FEE``, ``feeCharged``
  set to the smallest fee that would have been let in, and its hash is banned. After an eviction,
  until the next ledger closes, every new transaction must beat the evicted bid.
* At close, when more valid transactions want in than ``capacity``, the highest inclusion fees
  win (ties broken at random) and every included transaction pays the lowest included bid;
  otherwise each pays the base fee (100). The rest wait in the queue; one left out of
  ``PENDING_DEPTH`` ledgers is dropped and banned, as is one found invalid at close.
* A banned hash answers TRY_AGAIN_LATER for ``BAN_DEPTH`` ledgers.
* ``getFeeStats`` is computed like stellar-rpc's fee window: the inclusion fees charged in the
  last 50 ledgers, nearest-rank percentiles, numbers as strings.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devnet.ledger import BASE_FEE

if TYPE_CHECKING:
    from devnet.transactions import ParsedTx

#: the Soroban queue holds this many ledgers' worth of transactions (core's default multiplier)
POOL_LEDGER_MULTIPLIER = 2
#: ledgers a queued transaction may be left out before it is dropped and banned
PENDING_DEPTH = 4
#: ledgers a banned hash is refused with TRY_AGAIN_LATER
BAN_DEPTH = 10
#: stellar-rpc's soroban-fee-stats-retention-window (ledgers)
SOROBAN_FEE_WINDOW = 50
MAX_LOAD = 100_000
_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)


class SurgeParamError(ValueError):
    pass


def inclusion_bid(ptx: ParsedTx) -> int:
    return ptx.fee - ptx.resource_fee


@dataclass(slots=True)
class Admission:
    """What the queue limiter decided for one transaction."""

    ok: bool
    #: when refused: the smallest full fee that would have been let in (0: try again later)
    min_fee: int = 0
    #: when accepted: a queued transaction's hash to evict, or "load" for a load transaction
    evict: str | None = None


def fee_distribution(fees: Iterable[int] | Mapping[int, int], ledger_count: int) -> dict[str, Any]:
    """stellar-rpc's FeeDistribution of ``fees`` (a list, or counts by fee): nearest-rank
    percentiles, mode = the most repeated value (the lowest on ties), uint64s as strings; all
    zero when there are no fees."""
    pairs = fees.items() if isinstance(fees, Mapping) else Counter(fees).items()
    counts = {fee: n for fee, n in pairs if n > 0}
    if not counts:
        zero: dict[str, Any] = {k: "0" for k in ("max", "min", "mode")}
        zero.update({f"p{p}": "0" for p in _PERCENTILES})
        zero["transactionCount"] = "0"
        zero["ledgerCount"] = 0
        return zero
    ordered = sorted(counts.items())
    n = sum(counts.values())
    mode = max(ordered, key=lambda item: (item[1], -item[0]))[0]
    out: dict[str, Any] = {"max": str(ordered[-1][0]), "min": str(ordered[0][0]), "mode": str(mode)}
    for p in _PERCENTILES:
        rank = (p * n + 99) // 100  # the rank-th smallest fee (1-based)
        seen = 0
        for fee, count in ordered:
            seen += count
            if seen >= rank:
                out[f"p{p}"] = str(fee)
                break
    out["transactionCount"] = str(n)
    out["ledgerCount"] = ledger_count
    return out


class Surge:
    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.load_count = 0
        self.load_fee = BASE_FEE
        #: load transactions waiting for the next ledger (evictable)
        self.load_queued = 0
        self.ages: dict[str, int] = {}
        self.evicted_bid = 0
        self._bans: deque[set[str]] = deque(set() for _ in range(BAN_DEPTH))
        #: per closed ledger: inclusion fee charged -> transactions
        self._fees: deque[Counter[int]] = deque(maxlen=SOROBAN_FEE_WINDOW)
        self._rng = random.Random()
        self.counts = {"evicted": 0, "timed_out": 0, "left_out": 0, "insufficient_fee": 0}

    # control --------------------------------------------------------------------------------
    def set_capacity(self, capacity: int | None) -> None:
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            raise SurgeParamError("capacity must be null or an integer >= 1")
        self.capacity = capacity

    def set_load(self, count: int, fee: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_LOAD:
            raise SurgeParamError(f"count must be an integer in [0, {MAX_LOAD}]")
        if isinstance(fee, bool) or not isinstance(fee, int) or not BASE_FEE <= fee < 2**31:
            raise SurgeParamError(f"fee must be an integer stroops per operation >= {BASE_FEE}")
        self.load_count, self.load_fee = count, fee
        self.load_queued = count

    def to_json(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "queue_limit": self.queue_limit(),
            "load": {"count": self.load_count, "fee": self.load_fee, "queued": self.load_queued},
            "evicted_bid": self.evicted_bid,
            "banned": sum(len(b) for b in self._bans),
            **self.counts,
        }

    # bans -----------------------------------------------------------------------------------
    def is_banned(self, tx_hash: str) -> bool:
        return any(tx_hash in bucket for bucket in self._bans)

    def ban(self, tx_hash: str) -> None:
        self._bans[0].add(tx_hash)

    # the queue limiter ----------------------------------------------------------------------
    def queue_limit(self) -> int | None:
        return None if self.capacity is None else self.capacity * POOL_LEDGER_MULTIPLIER

    def admit(self, pending: Collection[ParsedTx], ptx: ParsedTx) -> Admission:
        """May ``ptx`` join a queue holding ``pending`` (and the load)? Nothing changes yet."""
        bid = inclusion_bid(ptx)
        flat = ptx.fee - bid  # the resource fee: added to the reported minimum, as core does
        if self.evicted_bid and bid <= self.evicted_bid:
            return Admission(False, self.evicted_bid + 1 + flat)
        limit = self.queue_limit()
        if limit is None or len(pending) + self.load_queued + 1 <= limit:
            return Admission(True)
        cheapest: tuple[int, str] | None = None  # (bid, hash or "load"); load goes first on ties
        if self.load_queued:
            cheapest = (self.load_fee, "load")
        for other in pending:
            other_bid = inclusion_bid(other)
            if cheapest is None or other_bid < cheapest[0]:
                cheapest = (other_bid, other.hash_hex)
        if cheapest is None:
            return Admission(False)  # the queue cannot hold even one transaction
        if cheapest[0] >= bid:
            return Admission(False, cheapest[0] + 1 + flat)
        return Admission(True, evict=cheapest[1])

    def refused(self, ptx: ParsedTx, admission: Admission) -> None:
        self.ban(ptx.hash_hex)
        if admission.min_fee:
            self.counts["insufficient_fee"] += 1

    def evicted(self, bid: int) -> None:
        self.evicted_bid = bid  # core keeps the last evicted bid (the cheapest go first)
        self.counts["evicted"] += 1

    # ledger close ---------------------------------------------------------------------------
    def select(self, valid: list[ParsedTx]) -> tuple[list[ParsedTx], int, int]:
        """Choose what the next ledger includes from the valid queued transactions (in
        submission order) and the load. Returns (included, in submission order; the inclusion
        fee each pays; load transactions included)."""
        wanted = len(valid) + self.load_queued
        if self.capacity is None or wanted <= self.capacity:
            return list(valid), BASE_FEE, self.load_queued
        # every load transaction bids the same: only ``capacity`` of them can matter
        rng = self._rng.random
        ranked = [(inclusion_bid(p), rng(), i) for i, p in enumerate(valid)]
        ranked += [(self.load_fee, rng(), -1) for _ in range(min(self.load_queued, self.capacity))]
        merged = sorted(ranked, reverse=True)[: self.capacity]
        chosen = sorted(i for _, _, i in merged if i >= 0)
        load_in = sum(1 for _, _, i in merged if i < 0)
        return [valid[i] for i in chosen], min(b for b, _, _ in merged), load_in

    def closed(self, charged: Counter[int], left: list[ParsedTx]) -> list[ParsedTx]:
        """After a close: record the fees charged, age what was left out (returns the ones
        dropped for waiting too long, already banned), refill the load, clear the eviction."""
        self._fees.append(charged)
        self._bans.rotate(1)
        self._bans[0] = set()
        dropped = []
        for ptx in left:
            age = self.ages.get(ptx.hash_hex, 0) + 1
            self.counts["left_out"] += 1
            if age >= PENDING_DEPTH:
                self.ages.pop(ptx.hash_hex, None)
                self.ban(ptx.hash_hex)
                self.counts["timed_out"] += 1
                dropped.append(ptx)
            else:
                self.ages[ptx.hash_hex] = age
        self.load_queued = self.load_count
        self.evicted_bid = 0
        return dropped

    def forget(self, tx_hash: str) -> None:
        self.ages.pop(tx_hash, None)

    # getFeeStats ----------------------------------------------------------------------------
    def fee_stats(self, latest_ledger: int) -> dict[str, Any]:
        fees: Counter[int] = Counter()
        for bucket in self._fees:
            fees.update(bucket)
        return {
            "sorobanInclusionFee": fee_distribution(fees, len(self._fees)),
            "inclusionFee": fee_distribution([], 0),  # the devnet runs no classic transactions
            "latestLedger": latest_ledger,
        }
