"""Classic accounts: friendbot funding, balances, sequence numbers, and their ledger entries."""

from __future__ import annotations

from dataclasses import dataclass

from stellar_sdk import StrKey

from devnet import xdrfast
from devnet.ledger import LedgerState

#: what friendbot gives a new account (10,000 XLM)
FRIENDBOT_AMOUNT = 10_000 * 10_000_000


class AccountError(ValueError):
    pass


@dataclass(slots=True)
class Account:
    account_id: str
    public_key: bytes
    key_b64: str
    balance: int
    seq_num: int


class Accounts:
    def __init__(self, ledger: LedgerState) -> None:
        self.ledger = ledger
        self.by_id: dict[str, Account] = {}

    def get(self, account_id: str) -> Account | None:
        return self.by_id.get(account_id)

    def create(self, account_id: str, balance: int = FRIENDBOT_AMOUNT) -> Account:
        """Create (fund) an account; the starting sequence number is ``ledger << 32`` as on
        a real network. Raises :class:`AccountError` for a bad address or an existing one."""
        if not StrKey.is_valid_ed25519_public_key(account_id):
            raise AccountError(f"invalid account address {account_id!r}")
        if account_id in self.by_id:
            raise AccountError("account already funded")
        raw = StrKey.decode_ed25519_public_key(account_id)
        acct = Account(
            account_id=account_id,
            public_key=raw,
            key_b64=xdrfast.b64(xdrfast.account_key(raw)),
            balance=balance,
            seq_num=self.ledger.sequence << 32,
        )
        self.by_id[account_id] = acct
        self._write(acct)
        return acct

    def _write(self, acct: Account) -> None:
        data = xdrfast.account_entry(acct.public_key, acct.balance, acct.seq_num)
        self.ledger.put(acct.key_b64, xdrfast.b64(data), soroban=False)

    def charge(self, acct: Account, fee: int, seq_num: int | None = None) -> None:
        """Deduct a fee and (optionally) consume a sequence number."""
        acct.balance -= fee
        if seq_num is not None:
            acct.seq_num = seq_num
        self._write(acct)
