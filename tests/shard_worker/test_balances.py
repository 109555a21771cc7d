"""Source account balances: fees charged from results, re-reads, leaving and rejoining the pool,
and the shard's pause when every account is low. Pure bookkeeping (no devnet); the results are
real ``TransactionResult`` XDR built with stellar-sdk."""

from __future__ import annotations

import pytest
from stellar_sdk import xdr as sx

from shard_worker.balances import PAUSED_LOW_BALANCE, BalanceBook, fee_charged

A, B, C = "GAAA", "GBBB", "GCCC"  # the book only uses public keys as names
XLM = 10_000_000
RESERVE = 10_000_000  # two base reserves


def result_xdr(fee: int, code: sx.TransactionResultCode) -> str:
    if code == sx.TransactionResultCode.txSUCCESS or code == sx.TransactionResultCode.txFAILED:
        body = sx.TransactionResultResult(code, results=[])
    else:
        body = sx.TransactionResultResult(code)
    res = sx.TransactionResult(
        fee_charged=sx.Int64(fee), result=body, ext=sx.TransactionResultExt(0)
    )
    return res.to_xdr()


def book(keys: tuple[str, ...] = (A, B), *, minimum: int = XLM, every: int = 10) -> BalanceBook:
    return BalanceBook(keys, min_fee_balance=minimum, refresh_ledgers=every)


# ---------------------------------------------------------------------- fee charged


@pytest.mark.parametrize(
    "code", [sx.TransactionResultCode.txSUCCESS, sx.TransactionResultCode.txFAILED]
)
def test_fee_charged_is_read_from_the_result_xdr(code: sx.TransactionResultCode) -> None:
    assert fee_charged({"status": "X", "resultXdr": result_xdr(61_234, code)}) == 61_234


@pytest.mark.parametrize(
    "answer",
    [
        {"status": "SUCCESS"},
        {"resultXdr": 12},
        {"resultXdr": "not base64!"},
        {"resultXdr": "AAAA"},  # 3 bytes: truncated
    ],
)
def test_fee_charged_is_unknown_when_the_result_is_missing_or_unreadable(
    answer: dict[str, object],
) -> None:
    assert fee_charged(answer) is None


def test_a_negative_fee_charged_is_unknown() -> None:
    assert fee_charged({"resultXdr": result_xdr(-1, sx.TransactionResultCode.txFAILED)}) is None


# ---------------------------------------------------------------------- the pool


def test_accounts_are_in_the_pool_until_read_and_found_low() -> None:
    b = book()
    assert b.in_pool(A) and b.in_pool(B) and not b.paused
    assert b.observe(A, balance=RESERVE + 5 * XLM, reserve=RESERVE, ledger=100) == []
    assert b[A].spendable == 5 * XLM and b.balances() == {A: RESERVE + 5 * XLM}


def test_fees_charged_lower_the_balance_and_an_account_leaves_below_the_minimum() -> None:
    b = book()
    b.observe(A, balance=RESERVE + XLM + 150_000, reserve=RESERVE, ledger=100)
    assert b.charge(A, 100_000, ledger=101) == []
    assert b[A].spendable == XLM + 50_000 and b.in_pool(A)
    (t,) = b.charge(A, 60_000, ledger=102)
    assert not t.in_pool and t.public_key == A and t.spendable == XLM - 10_000
    assert not b.in_pool(A) and b.out_of_pool() == [A]
    assert t.message() == (
        f"source account {A} out of the pool: 0.9990000 XLM above its reserve, below "
        "min_fee_balance 1.0000000 XLM; fund it to bring it back"
    )
    assert b.charge(A, 1000, ledger=103) == []  # already out: no second transition


def test_an_account_found_low_at_the_first_read_leaves_the_pool() -> None:
    b = book()
    (t,) = b.observe(B, balance=RESERVE + 10, reserve=RESERVE, ledger=5)
    assert not t.in_pool and not b.in_pool(B) and b.in_pool(A)


def test_a_topped_up_account_comes_back_at_its_next_read() -> None:
    b = book()
    b.observe(A, balance=RESERVE + 100, reserve=RESERVE, ledger=100)
    assert not b.in_pool(A)
    assert b.observe(A, balance=RESERVE + 100, reserve=RESERVE, ledger=110) == []  # not yet
    (t,) = b.observe(A, balance=RESERVE + 3 * XLM, reserve=RESERVE, ledger=120)
    assert t.in_pool and b.in_pool(A)
    assert (
        t.message()
        == f"source account {A} back in the pool: topped up to 3.0000000 XLM above its reserve"
    )


def test_only_a_read_brings_an_account_back() -> None:
    b = book()
    b.observe(A, balance=RESERVE + 100, reserve=RESERVE, ledger=100)
    assert b.charge(A, -5) == [] and not b.in_pool(A)


def test_the_reserve_counts_against_the_balance() -> None:
    b = book()
    # 3 XLM balance, but 2.5 XLM reserved (sub-entries): 0.5 XLM spendable
    (t,) = b.observe(A, balance=3 * XLM, reserve=25_000_000, ledger=9)
    assert not t.in_pool and t.spendable == 5_000_000


def test_a_fee_the_last_read_already_covers_is_not_taken_twice() -> None:
    b = book()
    b.observe(A, balance=RESERVE + 2 * XLM, reserve=RESERVE, ledger=200)
    assert b.charge(A, 300_000, ledger=199) == []  # applied before the read
    assert b.charge(A, 300_000, ledger=200) == []
    assert b[A].spendable == 2 * XLM
    b.charge(A, 300_000, ledger=201)
    assert b[A].spendable == 2 * XLM - 300_000
    b.charge(A, 1000)  # ledger unknown: taken
    assert b[A].spendable == 2 * XLM - 301_000


def test_an_older_read_does_not_replace_a_newer_one() -> None:
    b = book()
    b.observe(A, balance=RESERVE + 2 * XLM, reserve=RESERVE, ledger=200)
    assert b.observe(A, balance=RESERVE, reserve=RESERVE, ledger=150) == []
    assert b[A].spendable == 2 * XLM and b.in_pool(A)


def test_a_fee_for_an_unread_or_unknown_account_changes_nothing() -> None:
    b = book()
    assert b.charge(A, 500) == [] and b[A].balance is None
    assert b.charge("GZZZ", 500) == []


def test_can_pay_checks_the_pool_and_the_spendable_balance() -> None:
    b = book(minimum=0)
    assert b.can_pay(A, 10**9)  # never read: the chain will say
    b.observe(A, balance=RESERVE + 50_000, reserve=RESERVE, ledger=1)
    assert b.can_pay(A, 50_000) and not b.can_pay(A, 50_001)


# ---------------------------------------------------------------------- re-reads and the pause


def test_accounts_are_reread_every_few_ledgers_and_unread_ones_at_once() -> None:
    b = book((A, B, C), every=10)
    assert b.reread_due(100) == [A, B, C]
    b.observe(A, balance=RESERVE + 2 * XLM, reserve=RESERVE, ledger=100)
    b.observe(B, balance=RESERVE + 2 * XLM, reserve=RESERVE, ledger=105)
    assert b.reread_due(109) == [C]
    assert b.reread_due(110) == [A, C]
    assert b.reread_due(115) == [A, B, C]


def test_every_account_low_pauses_the_shard_and_one_top_up_resumes_it() -> None:
    b = book((A, B))
    b.observe(A, balance=RESERVE + 2 * XLM, reserve=RESERVE, ledger=10)
    b.observe(B, balance=RESERVE, reserve=RESERVE, ledger=10)
    assert not b.paused and b.status() is None
    b.charge(A, 15_000_000, ledger=11)  # 0.5 XLM left
    assert b.paused and b.status() == PAUSED_LOW_BALANCE == "paused: low balance"
    assert sorted(b.out_of_pool()) == [A, B]
    assert b.reread_due(20) == [A, B]  # the re-reads go on while paused
    (t,) = b.observe(B, balance=RESERVE + 4 * XLM, reserve=RESERVE, ledger=20)
    assert t.in_pool and not b.paused and b.status() is None


def test_not_paused_while_some_account_is_still_unread() -> None:
    b = book((A, B))
    b.observe(A, balance=0, reserve=RESERVE, ledger=1)
    assert not b.paused


def test_zero_minimum_keeps_every_account_with_any_spendable_balance() -> None:
    b = book(minimum=0)
    assert b.observe(A, balance=RESERVE, reserve=RESERVE, ledger=1) == []
    (t,) = b.charge(A, 1, ledger=2)
    assert not t.in_pool


@pytest.mark.parametrize(
    ("keys", "minimum", "every", "words"),
    [
        ((), XLM, 10, "no source accounts"),
        ((A,), -1, 10, "min_fee_balance must be >= 0"),
        ((A,), XLM, 0, "balance_refresh_ledgers must be >= 1"),
    ],
)
def test_refuses_a_book_it_cannot_keep(
    keys: tuple[str, ...], minimum: int, every: int, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        BalanceBook(keys, min_fee_balance=minimum, refresh_ledgers=every)
