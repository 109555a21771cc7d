"""Every source account's balance, and which accounts may pay for executions.

A balance is known from the account's ledger entry (re-read every ``balance_refresh_ledgers``
ledgers through getLedgerEntries) and, between reads, lowered by the fee charged in each result
(the ``feeCharged`` of getTransaction's ``resultXdr``, for SUCCESS and FAILED alike: a failed
transaction pays too). What counts is the *spendable* balance: the balance above the account's
reserve, which is what core lets a transaction's fee come out of.

An account whose spendable balance falls below ``min_fee_balance`` leaves the pool (the other
accounts go on); a re-read that finds it topped up brings it back. Each change is a
:class:`Transition` for the keeper to log and report. When every account is out, the shard is
paused (``paused: low balance``) rather than failing: nothing is sent, nothing is lost, and the
re-reads go on until an account is funded.

Pure bookkeeping: the caller reads the ledger entries and the results.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shard_worker import chain

__all__ = [
    "PAUSED_LOW_BALANCE",
    "AccountBalance",
    "BalanceBook",
    "Transition",
    "fee_charged",
]

#: the shard's state while every source account is below ``min_fee_balance``
PAUSED_LOW_BALANCE = "paused: low balance"
_XLM = 10_000_000


def _xlm(stroops: int) -> str:
    return f"{stroops / _XLM:.7f} XLM"


def fee_charged(result: dict[str, Any]) -> int | None:
    """The fee charged by a found transaction: the first field (int64) of the base64
    ``TransactionResult`` in getTransaction's ``resultXdr``. None when it is missing or
    unreadable (the next re-read of the account corrects the balance)."""
    raw = result.get("resultXdr")
    if not isinstance(raw, str):
        return None
    try:
        fee = chain.fee_charged(raw)
    except (binascii.Error, ValueError):  # txxdr's DecodeError is a ValueError
        return None
    return fee if fee >= 0 else None


@dataclass(frozen=True, slots=True)
class Transition:
    """An account leaving or rejoining the pool, and why (a line for the log)."""

    public_key: str
    in_pool: bool
    reason: str
    spendable: int

    def message(self) -> str:
        verb = "back in the pool" if self.in_pool else "out of the pool"
        return f"source account {self.public_key} {verb}: {self.reason}"


@dataclass(slots=True)
class AccountBalance:
    public_key: str
    #: stroops; None until the account's entry has been read
    balance: int | None = None
    #: stroops the account must keep (base reserves for its entries, selling liabilities)
    reserve: int = 0
    #: ledger as of which the balance was last read (0: never)
    read_ledger: int = 0
    in_pool: bool = True

    @property
    def known(self) -> bool:
        return self.balance is not None

    @property
    def spendable(self) -> int:
        return 0 if self.balance is None else self.balance - self.reserve


class BalanceBook:
    """The balances of one shard's source accounts."""

    def __init__(
        self, public_keys: Iterable[str], *, min_fee_balance: int, refresh_ledgers: int
    ) -> None:
        if min_fee_balance < 0:
            raise ValueError(f"min_fee_balance must be >= 0, got {min_fee_balance}")
        if refresh_ledgers < 1:
            raise ValueError(f"balance_refresh_ledgers must be >= 1, got {refresh_ledgers}")
        self.min_fee_balance = min_fee_balance
        self.refresh_ledgers = refresh_ledgers
        self.accounts: dict[str, AccountBalance] = {pk: AccountBalance(pk) for pk in public_keys}
        if not self.accounts:
            raise ValueError("no source accounts")

    def __getitem__(self, public_key: str) -> AccountBalance:
        return self.accounts[public_key]

    # ------------------------------------------------------------------ updates

    def observe(
        self, public_key: str, *, balance: int, reserve: int, ledger: int
    ) -> list[Transition]:
        """A read of the account's entry as of ``ledger`` (getLedgerEntries' latestLedger).
        An older read than the one held is ignored."""
        acc = self.accounts[public_key]
        if acc.known and ledger < acc.read_ledger:
            return []
        acc.balance, acc.reserve, acc.read_ledger = balance, reserve, ledger
        return self._settle(acc, read=True)

    def charge(self, public_key: str, fee: int, *, ledger: int | None = None) -> list[Transition]:
        """A result charged ``fee`` in ``ledger`` (None: unknown). A fee from a ledger the last
        read already covers is not taken twice."""
        acc = self.accounts.get(public_key)
        if acc is None or not acc.known or fee <= 0:
            return []
        if ledger is not None and ledger <= acc.read_ledger:
            return []
        assert acc.balance is not None
        acc.balance -= fee
        return self._settle(acc, read=False)

    def _settle(self, acc: AccountBalance, *, read: bool) -> list[Transition]:
        low = acc.spendable < self.min_fee_balance
        if acc.in_pool and low:
            acc.in_pool = False
            why = (
                f"{_xlm(acc.spendable)} above its reserve, below min_fee_balance "
                f"{_xlm(self.min_fee_balance)}; fund it to bring it back"
            )
            return [Transition(acc.public_key, False, why, acc.spendable)]
        if not acc.in_pool and not low and read:  # only a real read brings an account back
            acc.in_pool = True
            why = f"topped up to {_xlm(acc.spendable)} above its reserve"
            return [Transition(acc.public_key, True, why, acc.spendable)]
        return []

    # ------------------------------------------------------------------ questions

    def reread_due(self, latest_ledger: int) -> list[str]:
        """Accounts whose entry should be read again: never read, or read
        ``refresh_ledgers`` or more ledgers ago."""
        return [
            a.public_key
            for a in self.accounts.values()
            if not a.known or latest_ledger - a.read_ledger >= self.refresh_ledgers
        ]

    def in_pool(self, public_key: str) -> bool:
        return self.accounts[public_key].in_pool

    def can_pay(self, public_key: str, fee: int) -> bool:
        """In the pool, and (when known) its spendable balance covers ``fee``."""
        acc = self.accounts[public_key]
        return acc.in_pool and (not acc.known or acc.spendable >= fee)

    def out_of_pool(self) -> list[str]:
        return [a.public_key for a in self.accounts.values() if not a.in_pool]

    @property
    def paused(self) -> bool:
        """Every account read and out of the pool."""
        return all(a.known and not a.in_pool for a in self.accounts.values())

    def status(self) -> str | None:
        return PAUSED_LOW_BALANCE if self.paused else None

    def balances(self) -> dict[str, int]:
        """Public key -> balance in stroops, for the accounts read so far (a gauge)."""
        return {a.public_key: a.balance for a in self.accounts.values() if a.balance is not None}
