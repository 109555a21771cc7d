"""Start-up checks (level 4): the right network, a ``tx_timeout_s`` long enough for the
network's ledger time (:mod:`shard_worker.txbounds`), the contract there, every source account
funded. A configuration that cannot work raises :class:`FatalConfigError` (exit 78, no
restart); an RPC server that is not answering yet is retried until the keeper is stopped.

A restarted worker is idle until these checks pass, so they are made in one round trip:
``getNetwork``, ``getHealth`` and one ``getLedgerEntries`` of the contract instance and every
source account, together (the keeper asks its first ``getLatestLedger`` and fee statistics
and runs its first cycle beside them: :meth:`shard_worker.keeper.Keeper.start_warm_up`). Each
request is retried on its own until it is answered: under a busy RPC a lost answer costs that
request again after a short wait, not the whole round after a long one. The verdicts are still
given in this order, once every answer is in: network, ``tx_timeout_s``, contract, accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from loguru import logger

from shard_worker import chain
from shard_worker.accounts import SourceAccounts, load_account
from shard_worker.context import Events
from shard_worker.errors import FatalConfigError, RpcError, RpcMalformedError
from shard_worker.retry import Backoff
from shard_worker.rpc import RpcClient, expect_dict, expect_list
from shard_worker.spec import WorkerSpec
from shard_worker.txbounds import DEFAULT_LEDGER_S, ledger_time_from_health, tx_timeout_problem
from sorotask_core import contract

__all__ = ["STARTUP_BACKOFF", "Entries", "check_tx_timeout", "preflight"]

#: the wait before a start-up request is asked again, after it failed (the RPC client has
#: already retried it): short first (a busy RPC loses an answer now and then; the worker is
#: idle meanwhile), growing to 5 s while the server does not answer at all
STARTUP_BACKOFF = Backoff(0.05, max_s=5.0, jitter=0.2)

T = TypeVar("T")


class _Stopped(Exception):
    """The keeper was stopped before the start-up checks were answered."""


def check_tx_timeout(health: Any, spec: WorkerSpec) -> float:
    """The network's ledger time (from a ``getHealth`` answer; Stellar's 5 s when it cannot
    tell); raises :class:`FatalConfigError` when ``tx_timeout_s`` is too short for it."""
    ledger_s = ledger_time_from_health(health) or DEFAULT_LEDGER_S
    problem = tx_timeout_problem(spec.tx_timeout_s, ledger_s)
    if problem is not None:
        raise FatalConfigError(
            f"tx_timeout_s {problem} (the network at {spec.rpc_label} closes a ledger every "
            f"{ledger_s:g} s): raise tx_timeout_s"
        )
    return ledger_s


class Entries:
    """One ``getLedgerEntries`` answer: the keys found, the account entries among them
    decoded, and its ``latestLedger``."""

    __slots__ = ("accounts", "found", "ledger")

    def __init__(
        self, found: set[str], accounts: dict[str, chain.AccountState], ledger: int
    ) -> None:
        self.found = found
        self.accounts = accounts
        self.ledger = ledger

    @classmethod
    def of(cls, answer: Any, account_keys: set[str]) -> Entries:
        """Raises :class:`RpcMalformedError` for an answer that cannot be read (asked again)."""
        res = expect_dict(answer, "getLedgerEntries")
        found: set[str] = set()
        accounts: dict[str, chain.AccountState] = {}
        for e in expect_list(res.get("entries") or [], "getLedgerEntries", "entries"):
            if not isinstance(e, dict) or not isinstance(e.get("key"), str):
                continue
            key, xdr = e["key"], e.get("xdr")
            if not isinstance(xdr, str):
                raise RpcMalformedError("getLedgerEntries", "entry without xdr")
            found.add(key)
            if key in account_keys:
                try:
                    accounts[key] = chain.parse_account_entry(xdr)
                except Exception as exc:
                    raise RpcMalformedError(
                        "getLedgerEntries", f"undecodable account entry: {exc}"
                    ) from None
        ledger = res.get("latestLedger")
        return cls(found, accounts, ledger if isinstance(ledger, int) else 0)


class _Asker:
    """Asks one start-up request until it is answered (or the keeper is stopped)."""

    def __init__(self, events: Events, stop: asyncio.Event, log: Any) -> None:
        self.events = events
        self.stop = stop
        self.log = log
        #: requests asked again after a failure
        self.retries = 0

    async def answer(self, call: Callable[[], Awaitable[T]]) -> T:
        retry = 0
        while not self.stop.is_set():
            try:
                return await call()
            except RpcError as exc:
                self.log.warning("start-up checks: RPC unavailable ({}); retrying", exc)
                self.events.event("rpc_unavailable", {"error": str(exc)})
                self.retries += 1
                await STARTUP_BACKOFF.wait(retry, self.stop)
                retry += 1
        raise _Stopped


async def preflight(
    rpc: RpcClient,
    spec: WorkerSpec,
    accounts: SourceAccounts,
    events: Events,
    stop: asyncio.Event,
    log: Any = logger,
    on_ledger_s: Callable[[float], None] | None = None,
) -> bool:
    """The start-up checks (see the module docstring), each request retried on RPC failures
    until ``stop``; False when stopped first. Takes each source account's sequence number and
    balance on the way, and tells ``on_ledger_s`` the network's ledger time."""
    ask = _Asker(events, stop, log)
    contract_key = contract.instance_key_b64(spec.contract_id)
    account_keys = {acc.public_key: chain.account_key_b64(acc.public_key) for acc in accounts.all}
    keys = [contract_key, *account_keys.values()]
    wanted = set(account_keys.values())
    tasks = [
        asyncio.ensure_future(ask.answer(lambda: _network(rpc))),
        asyncio.ensure_future(ask.answer(lambda: rpc.call("getHealth"))),
        asyncio.ensure_future(ask.answer(lambda: _entries(rpc, keys, wanted))),
    ]
    try:
        net, health, entries = await asyncio.gather(*tasks)
    except _Stopped:
        return False
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    passphrase = net["passphrase"]
    if passphrase != spec.network_passphrase:
        raise FatalConfigError(
            f"wrong network: RPC server {spec.rpc_label} serves network {passphrase!r} but "
            f"the shard is configured for {spec.network_passphrase!r}; fix "
            "network_passphrase or rpc_url"
        )
    ledger_s = check_tx_timeout(health, spec)
    if on_ledger_s is not None:
        on_ledger_s(ledger_s)
    if contract_key not in entries.found:
        raise FatalConfigError(
            f"contract {spec.contract_id} not found on network {passphrase!r} at "
            f"{spec.rpc_label}: check contract_id (is it deployed on this network?)"
        )
    friendbot = net.get("friendbotUrl")
    fb = friendbot if isinstance(friendbot, str) else None
    for acc in accounts.all:
        state = entries.accounts.get(account_keys[acc.public_key])
        ledger = entries.ledger
        if (
            state is None
        ):  # not in the answer: asked alone (an answer keyed otherwise cannot hide it)
            try:
                state = await ask.answer(lambda pk=acc.public_key: load_account(rpc, pk))
            except _Stopped:
                return False
            ledger = 0
        accounts.take(acc, state, ledger, spec.network_passphrase, spec.min_fee_balance, fb)
    if ask.retries:
        log.info("start-up checks: {} request(s) asked again", ask.retries)
    return True


async def _network(rpc: RpcClient) -> dict[str, Any]:
    net = expect_dict(await rpc.call("getNetwork"), "getNetwork")
    if not isinstance(net.get("passphrase"), str):
        raise RpcMalformedError("getNetwork", "passphrase missing")
    return net


async def _entries(rpc: RpcClient, keys: list[str], account_keys: set[str]) -> Entries:
    return Entries.of(await rpc.call("getLedgerEntries", {"keys": keys}), account_keys)
