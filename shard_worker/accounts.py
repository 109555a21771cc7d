"""The shard's source accounts: who may send a transaction now, with which sequence number.

The keeper's own account is a source too: S source accounts = keeper + S-1 channel accounts,
so a shard lands up to S executions per ledger (one pending transaction per source). Channel
accounts are tried first; the keeper's account takes what they leave.

Each account's sequence number is tracked locally (the last one used on chain) and reloaded
from the chain (``getLedgerEntries`` of the account) whenever it may be wrong: at start, after
a send whose outcome is unknown, a ``txBAD_SEQ`` rejection, or an expired transaction.

Each account's balance is kept in a :class:`~shard_worker.balances.BalanceBook`: read at start
and every ``balance_refresh_ledgers`` ledgers, lowered by every fee charged. An account whose
balance above its reserve falls below ``min_fee_balance`` is not handed out (it waits, parked,
until a re-read finds it topped up); when all are out the shard is ``paused: low balance``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from loguru import logger

from shard_worker import chain
from shard_worker.balances import BalanceBook, Transition
from shard_worker.dryrun import WatchOnly
from shard_worker.errors import FatalConfigError, RpcMalformedError
from shard_worker.reader import MAX_KEYS_PER_CALL
from shard_worker.rpc import RpcClient, get_ledger_entries
from shard_worker.secrets import load_keypair
from shard_worker.spec import WorkerSpec
from sorotask_core.signing import Signer

__all__ = [
    "SourceAccount",
    "SourceAccounts",
    "load_account",
    "load_accounts",
    "load_source_accounts",
]


@dataclass(slots=True)
class SourceAccount:
    """A transaction source with its locally tracked sequence number."""

    #: a :class:`~shard_worker.dryrun.WatchOnly` key in a dry run (it cannot sign)
    keypair: Signer | WatchOnly
    is_keeper: bool
    #: last sequence number used on chain (the next transaction uses ``sequence + 1``)
    sequence: int = 0
    needs_resync: bool = True

    @property
    def public_key(self) -> str:
        return self.keypair.public_key

    @property
    def role(self) -> str:
        return "keeper" if self.is_keeper else "channel"

    def sent(self, sequence: int, *, accepted: bool) -> None:
        """A transaction with ``sequence`` may be queued: the number counts as used. Unless
        the server accepted it (``PENDING``/``DUPLICATE``) the account is reloaded from the
        chain before its next use."""
        self.sequence = sequence
        if not accepted:
            self.needs_resync = True

    def resync(self) -> None:
        """The local sequence number may be wrong: reload it before the next use."""
        self.needs_resync = True


def load_source_accounts(spec: WorkerSpec) -> list[SourceAccount]:
    """The keeper's and the channel accounts' keys (channels first, the keeper last); in a
    dry run the keeper's public key only.

    Raises a :class:`FatalConfigError` for a missing or malformed secret and for a channel
    account that duplicates the keeper or another channel.
    """
    if spec.dry_run:  # the keeper's account alone, and a key that cannot sign
        if spec.public_key is not None:
            return [SourceAccount(WatchOnly(spec.public_key), True)]
        if spec.secret is None:
            raise FatalConfigError("no secret and no public_key for the keeper")
        return [SourceAccount(WatchOnly(load_keypair(spec.secret).public_key), True)]
    if spec.secret is None:
        raise FatalConfigError(
            "no secret for the keeper: a public_key alone can only dry-run (--dry-run)"
        )
    keeper = SourceAccount(load_keypair(spec.secret), True)
    accounts = [keeper]
    seen = {keeper.public_key}
    for ref in spec.channel_secrets:
        kp = load_keypair(ref)
        if kp.public_key in seen:
            raise FatalConfigError(
                f"channel account in {ref.describe()} ({kp.public_key}) duplicates the "
                "keeper or another channel account: give each source its own key"
            )
        seen.add(kp.public_key)
        accounts.append(SourceAccount(kp, False))
    return accounts[1:] + accounts[:1]


async def load_account(rpc: RpcClient, public_key: str) -> chain.AccountState | None:
    """The account's sequence number and spendable balance on chain; None if it does not
    exist. An undecodable answer raises :class:`RpcMalformedError`."""
    entries = await get_ledger_entries(rpc, [chain.account_key_b64(public_key)])
    return _account_state(entries[0]) if entries else None


async def load_accounts(
    rpc: RpcClient, public_keys: list[str]
) -> dict[str, chain.AccountState | None]:
    """:func:`load_account` of up to 200 accounts in one ``getLedgerEntries`` call (matched
    by key; a missing account is None)."""
    keys = {chain.account_key_b64(pk): pk for pk in public_keys}
    found: dict[str, chain.AccountState | None] = dict.fromkeys(public_keys)
    for e in await get_ledger_entries(rpc, list(keys)):
        pk = keys.get(e.get("key"))  # type: ignore[arg-type]
        if pk is None:
            raise RpcMalformedError("getLedgerEntries", "an entry for a key not asked")
        found[pk] = _account_state(e)
    return found


def _account_state(entry: dict[str, Any]) -> chain.AccountState:
    xdr = entry.get("xdr")
    if not isinstance(xdr, str):
        raise RpcMalformedError("getLedgerEntries", "account entry without xdr")
    try:
        return chain.parse_account_entry(xdr)
    except Exception as exc:
        raise RpcMalformedError("getLedgerEntries", f"undecodable account entry: {exc}") from None


class SourceAccounts:
    """The source accounts and the pool of those free to send (one pending transaction each)."""

    def __init__(
        self,
        accounts: list[SourceAccount],
        rpc: RpcClient,
        *,
        min_fee_balance: int = 0,
        balance_refresh_ledgers: int = 12,
        log: Any = logger,
        on_transition: Any = None,
    ) -> None:
        if sum(1 for a in accounts if a.is_keeper) != 1:
            raise ValueError("exactly one source account is the keeper's")
        self.all = accounts
        self.rpc = rpc
        self.log = log
        self.book = BalanceBook(
            [a.public_key for a in accounts],
            min_fee_balance=min_fee_balance,
            refresh_ledgers=balance_refresh_ledgers,
        )
        #: called with each :class:`Transition` (an event for the reporter)
        self.on_transition = on_transition
        self._pool: asyncio.Queue[SourceAccount] = asyncio.Queue()
        #: free accounts out of the pool (low balance), by public key
        self._parked: dict[str, SourceAccount] = {}

    # ------------------------------------------------------------------ the pool

    def release(self, acc: SourceAccount) -> None:
        """``acc`` has no pending transaction (any more): free to send (or parked while its
        balance is low)."""
        if self.book.in_pool(acc.public_key):
            self._pool.put_nowait(acc)
        else:
            self._parked[acc.public_key] = acc

    async def acquire(self) -> SourceAccount:
        """A free source account in the pool (waits for one)."""
        while True:
            acc = await self._pool.get()
            if self.book.in_pool(acc.public_key):
                return acc
            self._parked[acc.public_key] = acc

    @property
    def free(self) -> int:
        return self._pool.qsize()

    # ------------------------------------------------------------------ balances

    @property
    def paused(self) -> str | None:
        """``"paused: low balance"`` while every account is out of the pool, else None."""
        return self.book.status()

    def fill(self, stats: Any) -> None:
        """The balances, the accounts out of the pool and the pause into a ``CycleStats``."""
        stats.source_balance = self.book.balances()
        stats.accounts_out_of_pool = len(self.book.out_of_pool())
        stats.paused = self.paused

    def charged(self, public_key: str, fee: int, ledger: int | None) -> None:
        """A result of ``public_key``'s charged ``fee`` (in ``ledger``)."""
        self._settle(self.book.charge(public_key, fee, ledger=ledger))

    def observe(self, public_key: str, state: chain.AccountState, ledger: int) -> None:
        self._settle(
            self.book.observe(
                public_key, balance=state.balance, reserve=state.min_balance, ledger=ledger
            )
        )

    async def refresh_balances(self, latest_ledger: int) -> None:
        """Read again the entries of the accounts due (``balance_refresh_ledgers``), in one
        request (a request an account: 8 accounts every 12 ledgers were 0.67 requests a shard
        a ledger, a quarter of the events read mode's budget of 10 for 4 shards)."""
        due = self.book.reread_due(latest_ledger)
        for start in range(0, len(due), MAX_KEYS_PER_CALL):
            states = await load_accounts(self.rpc, due[start : start + MAX_KEYS_PER_CALL])
            for pk, state in states.items():
                if state is not None:
                    self.observe(pk, state, latest_ledger)

    def _settle(self, transitions: list[Transition]) -> None:
        for t in transitions:
            if t.in_pool:
                self.log.info(t.message())
                parked = self._parked.pop(t.public_key, None)
                if parked is not None:
                    self._pool.put_nowait(parked)
            else:
                self.log.warning(t.message())
            if self.on_transition is not None:
                self.on_transition(t)
        if transitions and self.paused:
            self.log.error(
                "{}: all {} source accounts are below min_fee_balance; nothing is sent until "
                "one is funded",
                self.paused,
                len(self.all),
            )

    # ------------------------------------------------------------------ the chain

    async def check(
        self,
        acc: SourceAccount,
        network_passphrase: str,
        min_fee_balance: int,
        friendbot: str | None,
    ) -> None:
        """Start-up check of one account, read alone (:meth:`take` of its entry)."""
        state = await load_account(self.rpc, acc.public_key)
        self.take(acc, state, 0, network_passphrase, min_fee_balance, friendbot)

    def take(
        self,
        acc: SourceAccount,
        state: chain.AccountState | None,
        ledger: int,
        network_passphrase: str,
        min_fee_balance: int,
        friendbot: str | None,
    ) -> None:
        """Start-up check: ``acc`` exists (``state``, its entry read as of ``ledger``); takes
        its sequence number and balance (a low one keeps it out of the pool). A missing
        account raises a :class:`FatalConfigError` saying what to fund."""
        pub = acc.public_key
        if state is None:
            how = f" (e.g. {friendbot.rstrip('/')}?addr={pub})" if friendbot else ""
            raise FatalConfigError(
                f"{acc.role} account {pub} does not exist on network "
                f"{network_passphrase!r}: fund it{how} and restart the shard"
            )
        # a low balance is not fatal: the account stays out of the pool until funded
        self.book.min_fee_balance = min_fee_balance
        # read as of ``ledger``: the first cycle need not read it again (0: unknown)
        self.observe(pub, state, ledger)
        acc.sequence = state.sequence
        acc.needs_resync = False

    async def ready(self, acc: SourceAccount) -> None:
        """Reload ``acc``'s sequence number from the chain if it may be wrong."""
        if not acc.needs_resync:
            return
        state = await load_account(self.rpc, acc.public_key)
        if state is None:
            raise RpcMalformedError("getLedgerEntries", f"account {acc.public_key} vanished")
        acc.sequence = state.sequence
        acc.needs_resync = False
