"""Start-up checks (level 4): the right network, a ``tx_timeout_s`` long enough for the
network's ledger time (:mod:`shard_worker.txbounds`), the contract there, every source account
funded. A configuration that cannot work raises :class:`FatalConfigError` (exit 78, no
restart); an RPC server that is not answering yet is retried until the keeper is stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from shard_worker.accounts import SourceAccounts
from shard_worker.context import Events
from shard_worker.errors import FatalConfigError, RpcError, RpcMalformedError
from shard_worker.retry import Backoff
from shard_worker.rpc import RpcClient, expect_dict, get_ledger_entries
from shard_worker.spec import WorkerSpec
from shard_worker.txbounds import DEFAULT_LEDGER_S, ledger_time_from_health, tx_timeout_problem
from sorotask_core import contract

__all__ = ["STARTUP_BACKOFF", "check_config", "check_tx_timeout", "preflight"]

#: the wait between start-up checks while the RPC server does not answer
STARTUP_BACKOFF = Backoff(0.5, max_s=5.0)


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


async def _all(*calls: Awaitable[Any]) -> list[Any]:
    """The calls' results, run together (a start under a busy RPC takes one round trip's
    retries, not one per check); the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def check_config(
    rpc: RpcClient,
    spec: WorkerSpec,
    accounts: SourceAccounts,
    on_ledger_s: Callable[[float], None] | None = None,
) -> None:
    """One round of checks (their requests together, their verdicts in this order: network,
    ``tx_timeout_s``, contract, accounts); takes each source account's sequence number on
    the way, and tells ``on_ledger_s`` the network's ledger time."""
    net_raw, health, found = await _all(
        rpc.call("getNetwork"),
        rpc.call("getHealth"),
        get_ledger_entries(rpc, [contract.instance_key_b64(spec.contract_id)]),
    )
    net = expect_dict(net_raw, "getNetwork")
    passphrase = net.get("passphrase")
    if not isinstance(passphrase, str):
        raise RpcMalformedError("getNetwork", "passphrase missing")
    if passphrase != spec.network_passphrase:
        raise FatalConfigError(
            f"wrong network: RPC server {spec.rpc_label} serves network {passphrase!r} but "
            f"the shard is configured for {spec.network_passphrase!r}; fix "
            "network_passphrase or rpc_url"
        )
    ledger_s = check_tx_timeout(health, spec)
    if on_ledger_s is not None:
        on_ledger_s(ledger_s)
    if not found:
        raise FatalConfigError(
            f"contract {spec.contract_id} not found on network {passphrase!r} at "
            f"{spec.rpc_label}: check contract_id (is it deployed on this network?)"
        )
    friendbot = net.get("friendbotUrl")
    fb = friendbot if isinstance(friendbot, str) else None
    await _all(
        *(
            accounts.check(acc, spec.network_passphrase, spec.min_fee_balance, fb)
            for acc in accounts.all
        )
    )


async def preflight(
    rpc: RpcClient,
    spec: WorkerSpec,
    accounts: SourceAccounts,
    events: Events,
    stop: asyncio.Event,
    log: Any = logger,
    on_ledger_s: Callable[[float], None] | None = None,
) -> bool:
    """:func:`check_config`, retried on RPC failures until ``stop``; False when stopped first."""
    retry = 0
    while not stop.is_set():
        try:
            await check_config(rpc, spec, accounts, on_ledger_s)
            return True
        except RpcError as exc:
            log.warning("start-up checks: RPC unavailable ({}); retrying", exc)
            events.event("rpc_unavailable", {"error": str(exc)})
            await STARTUP_BACKOFF.wait(retry, stop)
            retry += 1
    return False
