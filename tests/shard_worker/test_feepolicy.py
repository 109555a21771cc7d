"""The fee policy: getFeeStats parsing, the bid, the caps, the resource margin, escalation.

Pure logic (no devnet): the answers below have stellar-rpc's getFeeStats shape (uint64s as JSON
strings, ``ledgerCount`` and ``latestLedger`` numbers; all zero when no fee was seen).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shard_worker.feepolicy import (
    ESCALATING_OUTCOMES,
    OVER_CAP,
    PERCENTILES,
    FeeConfig,
    FeePolicy,
    FeeStatsError,
    Verdict,
    parse_fee_stats,
)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=not os.environ.get("SOROTASK_HYPOTHESIS_RANDOM"),
)


def distribution(fees: list[int], ledgers: int = 50) -> dict[str, Any]:
    """stellar-rpc's FeeDistribution of ``fees`` (nearest-rank percentiles, strings)."""
    if not fees:
        out: dict[str, Any] = {k: "0" for k in ("max", "min", "mode")}
        out.update({f"p{p}": "0" for p in PERCENTILES})
        out["transactionCount"] = "0"
        out["ledgerCount"] = ledgers
        return out
    s = sorted(fees)
    out = {"max": str(s[-1]), "min": str(s[0]), "mode": str(max(set(s), key=s.count))}
    for p in PERCENTILES:
        out[f"p{p}"] = str(s[-(-p * len(s) // 100) - 1])
    out["transactionCount"] = str(len(s))
    out["ledgerCount"] = ledgers
    return out


def answer(fees: list[int], latest: int = 1000) -> dict[str, Any]:
    return {
        "sorobanInclusionFee": distribution(fees),
        "inclusionFee": distribution([100, 100]),
        "latestLedger": latest,
    }


def policy(fees: list[int] | None = None, **cfg: Any) -> FeePolicy:
    p = FeePolicy(FeeConfig(**cfg))
    if fees is not None:
        p.update_from_answer(answer(fees), latest_ledger=1000)
    return p


# ---------------------------------------------------------------------- getFeeStats


def test_parses_stellar_rpc_answer_with_numbers_as_strings() -> None:
    stats = parse_fee_stats(answer([100] * 30 + [500] * 60 + [9000] * 10, latest=77))
    d = stats.soroban
    assert stats.latest_ledger == 77
    assert (d.min, d.max, d.mode) == (100, 9000, 500)
    assert d.at(10) == 100 and d.at(70) == 500 and d.at(99) == 9000
    assert d.transaction_count == 100 and d.ledger_count == 50


def test_parses_an_empty_window_as_no_fees() -> None:
    d = parse_fee_stats(answer([])).soroban
    assert d.transaction_count == 0 and d.max == 0 and d.at(70) == 0


def test_accepts_plain_json_numbers_too() -> None:
    raw = answer([200, 300])
    raw["sorobanInclusionFee"] = {
        k: int(v) if isinstance(v, str) else v for k, v in raw["sorobanInclusionFee"].items()
    }
    assert parse_fee_stats(raw).soroban.at(50) == 200


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r: r.pop("sorobanInclusionFee"), "sorobanInclusionFee missing"),
        (lambda r: r["sorobanInclusionFee"].pop("p70"), "p70 missing"),
        (lambda r: r["sorobanInclusionFee"].update(p70="-5"), "p70 is not a non-negative"),
        (lambda r: r["sorobanInclusionFee"].update(p70="1e3"), "p70 is not a non-negative"),
        (lambda r: r["sorobanInclusionFee"].update(p70=True), "p70 is a boolean"),
        (lambda r: r["sorobanInclusionFee"].update(p70=-1), "p70 is negative"),
        (lambda r: r["sorobanInclusionFee"].update(p10="99999"), "not in increasing order"),
        (lambda r: r["sorobanInclusionFee"].update(max="150"), "outside [min, max]"),
        (lambda r: r.update(latestLedger="x"), "latestLedger is not a non-negative"),
    ],
)
def test_refuses_malformed_fee_stats(change: Any, words: str) -> None:
    raw = answer([100, 200, 300, 400])
    change(raw)
    with pytest.raises(FeeStatsError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_fee_stats(raw)


def test_refuses_a_result_that_is_not_an_object() -> None:
    with pytest.raises(FeeStatsError):
        parse_fee_stats(["p70", "100"])


def test_a_malformed_answer_keeps_the_previous_statistics() -> None:
    p = policy([1000] * 10)
    with pytest.raises(FeeStatsError):
        p.update_from_answer({"latestLedger": 5}, latest_ledger=1010)
    assert p.market_bid()[0] == 1001
    assert p.fetched_at == 1000


# ---------------------------------------------------------------------- the bid


def test_bids_one_above_the_percentile_paid_during_a_surge() -> None:
    fees = [100] * 20 + [2000] * 80  # a surge: most included transactions paid 2000
    v = policy(fees).price(min_resource_fee=50_000)
    assert v.send and v.inclusion == 2001
    assert "p70 2000 + 1" in v.basis


def test_the_percentile_is_configurable() -> None:
    fees = list(range(100, 1100, 10))  # 100 fees: 100, 110, ..., 1090
    assert policy(fees, percentile=50).market_bid()[0] == 590 + 1
    assert policy(fees, percentile=90).market_bid()[0] == 990 + 1
    assert policy(fees, percentile=99).market_bid()[0] == 1080 + 1


def test_bids_the_floor_without_statistics_or_without_fees() -> None:
    assert policy(None).price(10_000).inclusion == 100
    assert policy([]).price(10_000).inclusion == 100
    assert policy(None, floor=300).price(10_000).inclusion == 300


def test_never_bids_below_the_floor() -> None:
    # a quiet network: every included transaction paid the minimum 100
    assert policy([100] * 40).price(10_000).inclusion == 101
    assert policy([100] * 40, floor=250).price(10_000).inclusion == 250


def test_fixed_strategy_bids_the_fixed_fee_and_never_asks_for_stats() -> None:
    p = policy(None, strategy="fixed", fixed_inclusion=100)
    assert not p.refresh_due(1)
    p.update_from_answer(answer([5000] * 50), latest_ledger=1)
    v = p.price(30_000)
    assert v.send and v.inclusion == 100 and v.basis == "fixed"


def test_statistics_are_refreshed_every_few_ledgers() -> None:
    p = policy(None, refresh_ledgers=5)
    assert p.refresh_due(100)  # never fetched
    p.update_from_answer(answer([100]), latest_ledger=100)
    assert [p.refresh_due(n) for n in (100, 101, 104, 105, 130)] == [
        False,
        False,
        False,
        True,
        True,
    ]


# ---------------------------------------------------------------------- caps and the margin


def test_over_max_inclusion_is_not_sent_and_says_its_price() -> None:
    v = policy([5000] * 50, max_inclusion=3000).price(min_resource_fee=40_000)
    assert not v.send and v.skip == "over_max_inclusion" and v.over_cap
    assert v.inclusion == 5001 and v.price == 45_001
    assert v.describe() == "skip: inclusion fee over fee_max_inclusion (price 45001)"


def test_over_max_total_is_not_sent() -> None:
    v = policy([100], max_inclusion=1000, max_total=60_000).price(min_resource_fee=59_950)
    assert not v.send and v.skip == "over_max_total" and v.over_cap
    assert v.price == 101 + 59_950


def test_resource_fee_gets_the_margin_rounded_up() -> None:
    v = policy([100], resource_margin=0.15).price(min_resource_fee=10_001)
    assert v.send
    assert v.resource == 10_001 + 1501  # 15 % of 10,001 is 1,500.15
    assert v.total == v.inclusion + v.resource
    assert v.describe().startswith(f"send at {v.total} (inclusion 101 ")
    assert policy([100], resource_margin=0).price(10_001).resource == 10_001


def test_margin_is_trimmed_to_stay_under_max_total() -> None:
    v = policy([100], max_inclusion=1000, max_total=11_000).price(min_resource_fee=10_000)
    assert v.send and v.total == 11_000 and v.resource == 10_899


def test_an_execution_exactly_at_max_total_is_sent() -> None:
    v = policy([100], max_inclusion=1000, max_total=10_101, resource_margin=0).price(10_000)
    assert v.send and v.total == 10_101


def test_refuses_a_negative_resource_fee() -> None:
    with pytest.raises(ValueError, match="negative minResourceFee"):
        policy([100]).price(-1)


@pytest.mark.parametrize(
    ("cfg", "words"),
    [
        ({"strategy": "cheap"}, "fee_strategy must be stats or fixed"),
        ({"percentile": 75}, "fee_percentile must be one of 10, 20"),
        ({"floor": 99}, "fee_floor must be >= 100"),
        ({"floor": 500, "max_inclusion": 400}, "fee_max_inclusion .400. is below fee_floor"),
        ({"max_inclusion": 5000, "max_total": 5000}, "fee_max_total .5000. must be above"),
        ({"max_total": 2**32}, "at most 4294967295"),
        ({"resource_margin": -0.1}, "fee_resource_margin must lie in"),
        ({"refresh_ledgers": 0}, "fee_refresh_ledgers must be >= 1"),
        ({"max_escalations": 21}, "fee_max_escalations must lie in"),
        ({"strategy": "fixed", "fixed_inclusion": 10**6}, "base_fee .1000000. must lie between"),
    ],
)
def test_refuses_settings_that_do_not_fit_together(cfg: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        FeeConfig(**cfg)


# ---------------------------------------------------------------------- escalation


def test_escalates_after_insufficient_fee_and_expiry_only() -> None:
    assert {"txINSUFFICIENT_FEE", "expired"} == ESCALATING_OUTCOMES
    assert "txBAD_SEQ" not in ESCALATING_OUTCOMES


def test_escalation_raises_by_half_when_the_statistics_have_nothing_higher() -> None:
    p = policy([1000] * 50)
    first = p.price(20_000)
    assert first.inclusion == 1001
    second = p.escalate(first, 21_000)
    assert second.send and second.attempt == 1
    assert second.inclusion == 1502 and second.basis == "x1.5"
    assert second.resource == 21_000 + 3150  # resource from the new simulation


def test_escalation_jumps_to_the_next_higher_percentile_when_that_is_higher() -> None:
    fees = [200] * 70 + [5000] * 30  # p70 200; p80 and above 5000
    p = policy(fees)
    first = p.price(20_000)
    assert first.inclusion == 201
    second = p.escalate(first, 20_000)
    assert second.inclusion == 5001 and "next percentile 5000" in second.basis


def test_escalation_follows_refreshed_statistics() -> None:
    p = policy([100] * 50)
    first = p.price(20_000)
    p.update_from_answer(answer([8000] * 50), latest_ledger=1010)  # a surge began
    assert p.escalate(first, 20_000).inclusion == 8001


def test_escalation_takes_the_fee_core_said_would_get_in() -> None:
    p = policy([100] * 50)
    first = p.price(20_000)  # bid 101, resource 23,000
    # devnet/core: feeCharged of txINSUFFICIENT_FEE = the full fee that would have got in
    second = p.escalate(first, 20_000, fee_needed=first.resource + 7000)
    assert second.inclusion == 7000 and "core's minimum" in second.basis
    # a hint smaller than the resource fee can only be a bid
    assert p.escalate(first, 20_000, fee_needed=4000).inclusion == 4000


def test_escalation_never_goes_above_the_cap_and_stops_there() -> None:
    p = policy([1000] * 50, max_inclusion=2000)
    v = p.price(20_000)
    v = p.escalate(v, 20_000)
    assert (v.send, v.inclusion) == (True, 1502)
    v = p.escalate(v, 20_000)
    assert (v.send, v.inclusion) == (True, 2000)  # x1.5 would be 2253: held at the cap
    assert "fee_max_inclusion" in v.basis
    v = p.escalate(v, 20_000)
    assert not v.send and v.skip == "escalation_at_cap" and v.over_cap
    assert v.describe() == "skip: escalation already at fee_max_inclusion (price 22000)"


def test_escalation_count_is_bounded() -> None:
    p = policy([100] * 50, max_escalations=2)
    v = p.price(20_000)
    v = p.escalate(v, 20_000)
    v = p.escalate(v, 20_000)
    assert v.send and v.attempt == 2
    v = p.escalate(v, 20_000)
    assert not v.send and v.skip == "escalations_exhausted" and not v.over_cap


def test_no_escalation_at_all_when_max_escalations_is_zero() -> None:
    p = policy([100] * 50, max_escalations=0)
    assert p.escalate(p.price(20_000), 20_000).skip == "escalations_exhausted"


def test_escalation_checks_the_total_with_the_new_resource_fee() -> None:
    p = policy([100] * 50, max_inclusion=1000, max_total=30_000)
    v = p.escalate(p.price(20_000), min_resource_fee=29_900)
    assert not v.send and v.skip == "over_max_total"


def test_fixed_strategy_does_not_escalate() -> None:
    p = policy(None, strategy="fixed")
    v = p.escalate(p.price(20_000), 20_000, fee_needed=50_000)
    assert not v.send and v.skip == "fixed_no_escalation"
    assert v.inclusion == 100


@SETTINGS
@given(
    fees=st.lists(st.integers(100, 10**6), max_size=60),
    later=st.lists(st.integers(100, 10**6), max_size=60),
    cap=st.integers(100, 10**6),
    steps=st.integers(0, 6),
    resource=st.integers(0, 10**6),
    hints=st.lists(st.one_of(st.none(), st.integers(0, 2 * 10**6)), min_size=8, max_size=8),
)
def test_escalation_is_monotonic_bounded_and_capped(
    fees: list[int],
    later: list[int],
    cap: int,
    steps: int,
    resource: int,
    hints: list[int | None],
) -> None:
    p = policy(fees, max_inclusion=cap, max_total=cap + 2 * 10**6, max_escalations=steps)
    v: Verdict = p.price(resource)
    sent = [v] if v.send else []
    for i, hint in enumerate(hints):
        if not v.send:
            break
        if i == 2:
            p.update_from_answer(answer(later), latest_ledger=2000)
        v = p.escalate(v, resource, fee_needed=hint)
        if v.send:
            sent.append(v)
    assert len(sent) <= steps + 1
    bids = [s.inclusion for s in sent]
    assert bids == sorted(set(bids))  # strictly rising
    assert all(100 <= b <= cap for b in bids)
    assert all(s.total <= cap + 2 * 10**6 for s in sent)
    assert all(s.resource >= s.min_resource for s in sent)
    if not v.send:
        assert v.skip in OVER_CAP | {"escalations_exhausted"}
