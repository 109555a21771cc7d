"""The fee an execution offers, and whether it is worth sending at all.

A Soroban transaction's fee is two parts: the *resource fee* (declared in its
``SorobanTransactionData``; what the simulation's ``minResourceFee`` says the invocation needs,
the unused refundable part given back) and the *inclusion fee* (the rest of the fee field: a bid
for a place in the ledger). When a ledger has room, every included transaction pays the
network's minimum inclusion fee (100 stroops) whatever it bid; when more transactions want in
than a ledger holds (surge pricing), the highest bids win, all pay the lowest included bid, and
the lowest bids wait, are dropped, or are refused with ``txINSUFFICIENT_FEE``.

Strategies (``fee_strategy``):

``stats`` (the default)
    Bid one stroop above a percentile (``fee_percentile``, p70 by default) of the inclusion fees
    the network charged lately (getFeeStats' ``sorobanInclusionFee``, refreshed every
    ``fee_refresh_ledgers`` ledgers): a charged fee is the lowest bid that got in, an equal bid
    ties with it, and core's queue only lets in a bid strictly higher than the one it would
    evict. The one stroop costs nothing outside a surge (everyone pays the minimum then).
    Never below ``fee_floor``; above ``fee_max_inclusion`` the execution is not sent.
``fixed``
    Always bid the configured fixed fee (``base_fee``); no statistics, no escalation (the
    keeper's behaviour before fee policies).

For both, ``fee_max_total`` caps inclusion + resource fee per transaction: a dearer execution is
not sent. The resource fee gets a margin (``fee_resource_margin``) against resource prices
moving between simulation and apply (trimmed so the total stays under ``fee_max_total``; what is
not used is refunded).

Escalation: after ``txINSUFFICIENT_FEE`` or a transaction that reached its time bound unapplied,
the next attempt (simulated again) bids more: x1.5, or one above the next higher percentile, or
the fee core said would have got in, whichever is highest; never above ``fee_max_inclusion``;
at most ``fee_max_escalations`` times.

Pure logic: the caller fetches getFeeStats and simulations; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ESCALATING_OUTCOMES",
    "MAX_TX_FEE",
    "NETWORK_MIN_INCLUSION",
    "OVER_CAP",
    "PERCENTILES",
    "STRATEGIES",
    "FeeConfig",
    "FeeDistribution",
    "FeePolicy",
    "FeeStats",
    "FeeStatsError",
    "Verdict",
    "parse_fee_stats",
]

Strategy = Literal["stats", "fixed"]
STRATEGIES: tuple[str, ...] = ("stats", "fixed")
#: the percentiles getFeeStats reports (stellar-rpc: nearest rank)
PERCENTILES: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)
#: the network's minimum inclusion fee per operation (stroops)
NETWORK_MIN_INCLUSION = 100
#: a transaction's fee field is a uint32
MAX_TX_FEE = 0xFFFF_FFFF
#: outcomes after which the next attempt bids more: the sendTransaction ERROR result code, and
#: the keeper's name for a transaction not applied before its time bound
ESCALATING_OUTCOMES: frozenset[str] = frozenset({"txINSUFFICIENT_FEE", "expired"})

# skip reasons (a label of the skipped-executions counter)
OVER_MAX_INCLUSION = "over_max_inclusion"
OVER_MAX_TOTAL = "over_max_total"
ESCALATION_AT_CAP = "escalation_at_cap"
ESCALATIONS_EXHAUSTED = "escalations_exhausted"
FIXED_NO_ESCALATION = "fixed_no_escalation"
#: the skip reasons that mean "the network's price is above what we may pay"
OVER_CAP: frozenset[str] = frozenset({OVER_MAX_INCLUSION, OVER_MAX_TOTAL, ESCALATION_AT_CAP})

_SKIP_WORDS = {
    OVER_MAX_INCLUSION: "inclusion fee over fee_max_inclusion",
    OVER_MAX_TOTAL: "total fee over fee_max_total",
    ESCALATION_AT_CAP: "escalation already at fee_max_inclusion",
    ESCALATIONS_EXHAUSTED: "fee_max_escalations reached",
    FIXED_NO_ESCALATION: "the fixed strategy does not escalate",
}


class FeeStatsError(ValueError):
    """A getFeeStats answer this module cannot use (the message says why)."""


def _uint(obj: dict[str, Any], key: str, where: str) -> int:
    """A non-negative integer sent as a JSON string (stellar-rpc's ``uint64,string``) or as a
    number (lenient, as for other int64 fields)."""
    value = obj.get(key)
    if isinstance(value, bool):
        raise FeeStatsError(f"{where}.{key} is a boolean")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise FeeStatsError(f"{where}.{key} is not a non-negative integer: {value[:40]!r}")
        value = int(value)
    if not isinstance(value, int):
        raise FeeStatsError(f"{where}.{key} missing or not an integer")
    if value < 0:
        raise FeeStatsError(f"{where}.{key} is negative")
    return value


@dataclass(frozen=True, slots=True)
class FeeDistribution:
    """stellar-rpc's ``FeeDistribution``: inclusion fees charged per operation over the last
    ``ledger_count`` ledgers (all zero when no transaction was included)."""

    min: int
    max: int
    mode: int
    #: percentile (10 ... 99) -> fee
    percentiles: dict[int, int]
    transaction_count: int
    ledger_count: int

    def at(self, percentile: int) -> int:
        return self.percentiles[percentile]

    def next_above(self, fee: int) -> int | None:
        """The lowest reported percentile value (or the max) above ``fee``; None if none."""
        higher = [v for v in (*self.percentiles.values(), self.max) if v > fee]
        return min(higher) if higher else None


@dataclass(frozen=True, slots=True)
class FeeStats:
    soroban: FeeDistribution
    latest_ledger: int


def _distribution(raw: object, where: str) -> FeeDistribution:
    if not isinstance(raw, dict):
        raise FeeStatsError(f"{where} missing or not an object")
    pct = {p: _uint(raw, f"p{p}", where) for p in PERCENTILES}
    values = list(pct.values())
    if values != sorted(values):
        raise FeeStatsError(f"{where} percentiles are not in increasing order")
    lo, hi = _uint(raw, "min", where), _uint(raw, "max", where)
    count = _uint(raw, "transactionCount", where)
    if count and not lo <= values[0] <= values[-1] <= hi:
        raise FeeStatsError(f"{where} percentiles outside [min, max]")
    return FeeDistribution(
        min=lo,
        max=hi,
        mode=_uint(raw, "mode", where),
        percentiles=pct,
        transaction_count=count,
        ledger_count=_uint(raw, "ledgerCount", where),
    )


def parse_fee_stats(result: object) -> FeeStats:
    """The ``result`` of a getFeeStats answer: ``{sorobanInclusionFee: {max, min, mode,
    p10 ... p99, transactionCount (all strings), ledgerCount (a number)}, inclusionFee: {...},
    latestLedger}``. Only the Soroban distribution is kept. Raises :class:`FeeStatsError`."""
    if not isinstance(result, dict):
        raise FeeStatsError("getFeeStats result is not an object")
    return FeeStats(
        soroban=_distribution(result.get("sorobanInclusionFee"), "sorobanInclusionFee"),
        latest_ledger=_uint(result, "latestLedger", "getFeeStats"),
    )


@dataclass(frozen=True, slots=True)
class FeeConfig:
    """The fee settings of one shard (see the module docstring). Raises ValueError when the
    values do not fit together."""

    strategy: Strategy = "stats"
    percentile: int = 70
    floor: int = NETWORK_MIN_INCLUSION
    max_inclusion: int = 100_000
    max_total: int = 2_000_000
    resource_margin: float = 0.15
    refresh_ledgers: int = 5
    max_escalations: int = 3
    #: the inclusion fee of the ``fixed`` strategy (the ``base_fee`` setting)
    fixed_inclusion: int = NETWORK_MIN_INCLUSION

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise ValueError(problem)

    def problem(self) -> str | None:
        if self.strategy not in STRATEGIES:
            return f"fee_strategy must be stats or fixed, got {self.strategy!r}"
        if self.percentile not in PERCENTILES:
            allowed = ", ".join(map(str, PERCENTILES))
            return f"fee_percentile must be one of {allowed}, got {self.percentile}"
        if self.floor < NETWORK_MIN_INCLUSION:
            return f"fee_floor must be >= {NETWORK_MIN_INCLUSION}, got {self.floor}"
        if self.max_inclusion < self.floor:
            return f"fee_max_inclusion ({self.max_inclusion}) is below fee_floor ({self.floor})"
        if self.strategy == "fixed" and not (
            NETWORK_MIN_INCLUSION <= self.fixed_inclusion <= self.max_inclusion
        ):
            return (
                f"base_fee ({self.fixed_inclusion}) must lie between {NETWORK_MIN_INCLUSION} "
                f"and fee_max_inclusion ({self.max_inclusion})"
            )
        if not self.max_inclusion < self.max_total <= MAX_TX_FEE:
            return (
                f"fee_max_total ({self.max_total}) must be above fee_max_inclusion "
                f"({self.max_inclusion}) and at most {MAX_TX_FEE}"
            )
        if not 0 <= self.resource_margin <= 10:
            return f"fee_resource_margin must lie in [0, 10], got {self.resource_margin}"
        if self.refresh_ledgers < 1:
            return f"fee_refresh_ledgers must be >= 1, got {self.refresh_ledgers}"
        if not 0 <= self.max_escalations <= 20:
            return f"fee_max_escalations must lie in [0, 20], got {self.max_escalations}"
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one attempt of an execution: send it at ``inclusion`` + ``resource``,
    or skip it (``skip`` says why; ``price`` is the least it would have cost)."""

    send: bool
    #: the inclusion fee bid (stroops); for a skip, the bid that would have been needed
    inclusion: int
    #: the resource fee to declare in SorobanTransactionData (minResourceFee plus the margin)
    resource: int
    #: the simulation's minResourceFee
    min_resource: int
    #: 0 for the first attempt, n for the n-th escalation
    attempt: int = 0
    skip: str | None = None
    #: where the bid came from (e.g. "p70 of 42 fees", "floor", "x1.5", "core's minimum")
    basis: str = ""

    @property
    def total(self) -> int:
        """The transaction's fee field."""
        return self.inclusion + self.resource

    @property
    def price(self) -> int:
        """The least this attempt costs: the bid plus the bare resource fee."""
        return self.inclusion + self.min_resource

    @property
    def over_cap(self) -> bool:
        return self.skip in OVER_CAP

    def describe(self) -> str:
        if self.send:
            return (
                f"send at {self.total} (inclusion {self.inclusion} [{self.basis}] + "
                f"resource {self.resource})"
            )
        return f"skip: {_SKIP_WORDS.get(self.skip or '', self.skip)} (price {self.price})"


@dataclass(slots=True)
class FeePolicy:
    """The inclusion fee to bid now, from the latest fee statistics; and each attempt's verdict."""

    config: FeeConfig
    stats: FeeStats | None = None
    #: our latest ledger when ``stats`` were fetched
    fetched_at: int | None = None

    # ------------------------------------------------------------------ statistics

    @property
    def uses_stats(self) -> bool:
        return self.config.strategy == "stats"

    def refresh_due(self, latest_ledger: int) -> bool:
        """Whether getFeeStats should be asked again (never under ``fixed``)."""
        if not self.uses_stats:
            return False
        if self.fetched_at is None:
            return True
        return latest_ledger - self.fetched_at >= self.config.refresh_ledgers

    def update(self, stats: FeeStats, latest_ledger: int) -> None:
        self.stats = stats
        self.fetched_at = latest_ledger

    def update_from_answer(self, result: object, latest_ledger: int) -> FeeStats:
        """Parse a getFeeStats ``result`` and keep it (raises FeeStatsError, keeping the
        previous statistics)."""
        stats = parse_fee_stats(result)
        self.update(stats, latest_ledger)
        return stats

    def market_bid(self) -> tuple[int, str]:
        """(bid, basis) before the cap: the configured percentile plus one, at least the floor;
        the floor while no fee has been seen; the fixed fee under ``fixed``."""
        cfg = self.config
        if not self.uses_stats:
            return cfg.fixed_inclusion, "fixed"
        dist = self.stats.soroban if self.stats is not None else None
        if dist is None or dist.transaction_count == 0:
            return cfg.floor, "floor (no fee statistics)" if dist is None else "floor (no fees)"
        paid = dist.at(cfg.percentile)
        bid = paid + 1
        if bid <= cfg.floor:
            return cfg.floor, f"floor (p{cfg.percentile} paid {paid})"
        return bid, f"p{cfg.percentile} {paid} + 1 of {dist.transaction_count} fees"

    # ------------------------------------------------------------------ verdicts

    def price(self, min_resource_fee: int) -> Verdict:
        """The first attempt's verdict for a simulation asking ``min_resource_fee``."""
        bid, basis = self.market_bid()
        return self._verdict(bid, basis, min_resource_fee, attempt=0)

    def escalate(
        self, previous: Verdict, min_resource_fee: int, *, fee_needed: int | None = None
    ) -> Verdict:
        """The next attempt's verdict after ``previous`` was refused for too low a fee or
        expired unapplied; ``min_resource_fee`` from the new simulation. ``fee_needed`` is the
        ``feeCharged`` of a ``txINSUFFICIENT_FEE`` result (the fee core's queue would have let
        in; counted as a full fee when above ``previous``'s resource fee, else as a bid)."""
        cfg = self.config
        attempt = previous.attempt + 1

        def stop(reason: str) -> Verdict:
            return Verdict(
                send=False,
                inclusion=previous.inclusion,
                resource=previous.resource,
                min_resource=min_resource_fee,
                attempt=attempt,
                skip=reason,
                basis=previous.basis,
            )

        if not self.uses_stats:
            return stop(FIXED_NO_ESCALATION)
        if previous.attempt >= cfg.max_escalations:
            return stop(ESCALATIONS_EXHAUSTED)
        if previous.inclusion >= cfg.max_inclusion:
            return stop(ESCALATION_AT_CAP)
        prev = previous.inclusion
        options = [(-(-prev * 3 // 2), "x1.5")]
        dist = self.stats.soroban if self.stats is not None else None
        if dist is not None and dist.transaction_count:
            above = dist.next_above(prev)
            if above is not None:
                options.append((above + 1, f"next percentile {above} + 1"))
        market, market_basis = self.market_bid()
        options.append((market, market_basis))
        if fee_needed is not None and fee_needed > 0:
            flat = previous.resource
            needed = fee_needed - flat if fee_needed > flat else fee_needed
            options.append((needed, f"core's minimum {needed}"))
        bid, basis = max(options)
        bid = max(bid, prev + 1)
        if bid > cfg.max_inclusion:
            bid, basis = cfg.max_inclusion, f"fee_max_inclusion (wanted {bid})"
        return self._verdict(bid, basis, min_resource_fee, attempt=attempt)

    def _verdict(self, bid: int, basis: str, min_resource_fee: int, *, attempt: int) -> Verdict:
        cfg = self.config
        if min_resource_fee < 0:
            raise ValueError(f"negative minResourceFee {min_resource_fee}")
        skip = None
        if bid > cfg.max_inclusion:
            skip = OVER_MAX_INCLUSION
        elif bid + min_resource_fee > cfg.max_total:
            skip = OVER_MAX_TOTAL
        margin = -(-min_resource_fee * round(cfg.resource_margin * 10_000) // 10_000)
        resource = min(min_resource_fee + margin, max(min_resource_fee, cfg.max_total - bid))
        return Verdict(
            send=skip is None,
            inclusion=bid,
            resource=resource,
            min_resource=min_resource_fee,
            attempt=attempt,
            skip=skip,
            basis=basis,
        )
