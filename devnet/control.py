"""Test-control methods (``devnet_*``). A keeper never needs them; tests and benchmarks do.

See devnet/README.md for the parameters and results of each method.
"""

from __future__ import annotations

from typing import Any

from stellar_sdk import StrKey

from devnet import archival, replica, xdrfast
from devnet.control_net import METHODS as NET_METHODS
from devnet.control_params import ControlParamError, int_param
from devnet.faults import FaultParamError, Faults
from devnet.ledger import DEFAULT_TTL_LEDGERS
from devnet.node import CREATOR_KEYPAIR, Devnet
from devnet.sorotask_contract import RESOLVERS, TARGETS
from devnet.storage import counter_entry_b64, task_encoder
from sorotask_core.contract import GAS_BALANCE_MARKER, counter_key_b64, decode_counter_data

MAX_SEED = 2_000_000
U64_MAX = 2**64 - 1
I128_MAX = 2**127 - 1


def seed_tasks(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """Write ``count`` TaskConfig entries straight into contract storage (no transactions)."""
    count = int_param(params, "count", 1, 1, MAX_SEED)
    interval = int_param(params, "interval", 60, 1, U64_MAX)
    last_run = int_param(params, "last_run", 0, 0, U64_MAX)
    gas_balance = int_param(params, "gas_balance", 1_000_000_000, -(2**127), I128_MAX)
    whitelist = params.get("whitelist") or []
    if not isinstance(whitelist, list) or not all(
        isinstance(a, str) and StrKey.is_valid_ed25519_public_key(a) for a in whitelist
    ):
        raise ControlParamError("whitelist must be a list of G... account addresses")
    resolver_name = params.get("resolver")
    if resolver_name is not None and (
        not isinstance(resolver_name, str) or resolver_name not in RESOLVERS
    ):
        raise ControlParamError('resolver must be null, "true", "false" or "panic"')
    target_name = params.get("target", "ok") or "ok"
    if not isinstance(target_name, str) or target_name not in TARGETS:
        raise ControlParamError('target must be "ok" or "panic"')
    function = params.get("function", "run") or "run"
    if not isinstance(function, str) or not 0 < len(function) <= 32 or not function.isidentifier():
        raise ControlParamError("function must be a symbol of at most 32 characters")
    creator = params.get("creator") or CREATOR_KEYPAIR.public_key
    if not isinstance(creator, str) or not StrKey.is_valid_ed25519_public_key(creator):
        raise ControlParamError("creator must be a G... account address")

    cid = node.contract_id
    enc = task_encoder(cid)
    parts = enc.parts(
        creator=creator,
        target=TARGETS[target_name],
        function=function,
        resolver=RESOLVERS[resolver_name] if resolver_name else None,
        whitelist=whitelist,
    )
    val = enc.config_val(gas_balance=gas_balance, interval=interval, last_run=last_run, **parts)
    ledger = node.ledger
    counter_key = counter_key_b64(cid)
    counter = ledger.get(counter_key)
    first = 1 if counter is None else decode_counter_data(counter.data()) + 1
    last = first + count - 1
    seq = ledger.sequence
    live_until = seq + DEFAULT_TTL_LEDGERS
    entries = ledger.entries
    b64 = xdrfast.b64
    key_of = enc.key
    entry_of = enc.entry
    from devnet.ledger import Entry

    for task_id in range(first, last + 1):
        entries[b64(key_of(task_id))] = Entry(b64(entry_of(task_id, val)), seq, live_until)
    ledger.put(counter_key, counter_entry_b64(cid, last))
    return {"first_id": first, "last_id": last}


def touch_tasks(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """Add ``gas_delta`` to the gas balance of tasks first_id..last_id (a deposit, no transaction).

    Benchmarks use it to make many entries change at once (the keeper's changed-entry path).
    """
    first = int_param(params, "first_id", 1, 1, U64_MAX)
    last = int_param(params, "last_id", first, first, U64_MAX)
    delta = int_param(params, "gas_delta", 1, -(2**64), 2**64)
    if last - first >= MAX_SEED:
        raise ControlParamError(f"at most {MAX_SEED} tasks at once")
    enc = task_encoder(node.contract_id)
    ledger = node.ledger
    seq = ledger.sequence
    b64 = xdrfast.b64
    touched = 0
    for task_id in range(first, last + 1):
        key = b64(enc.key(task_id))
        entry = ledger.get(key)
        if entry is None:
            continue
        data = bytearray(entry.data())
        at = data.find(GAS_BALANCE_MARKER)
        if at < 0:
            continue
        at += len(GAS_BALANCE_MARKER)
        value = int.from_bytes(data[at : at + 16], "big", signed=True) + delta
        if not -(2**127) <= value < 2**127:
            raise ControlParamError(f"gas balance of task {task_id} would overflow i128")
        data[at : at + 16] = value.to_bytes(16, "big", signed=True)
        ledger.put(key, b64(bytes(data)), ledger=seq, live_until=entry.live_until)
        touched += 1
    return {"touched": touched}


def executions(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    task_ids = params.get("task_ids")
    if task_ids is None:
        chosen = node.executions
    else:
        if not isinstance(task_ids, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in task_ids
        ):
            raise ControlParamError("task_ids must be a list of integers")
        idx = sorted({i for t in task_ids for i in node.executions_by_task.get(t, ())})
        chosen = [node.executions[i] for i in idx]
    return {"executions": [e.to_json() for e in chosen]}


def set_faults(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    try:
        node.faults = Faults.from_params(params)
    except FaultParamError as exc:
        raise ControlParamError(str(exc)) from exc
    return {"faults": node.faults.to_json()}


def close_ledger(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    count = int_param(params, "count", 1, 1, 1000)
    applied = 0
    for _ in range(count):
        applied += node.close_ledger()
    return {
        "sequence": node.ledger.sequence,
        "closeTime": node.ledger.close_time,
        "applied": applied,
    }


def stats(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    out = node.stats.to_json()
    out["pending"] = len(node.pending)
    out["ledger"] = node.ledger.sequence
    out["entries"] = len(node.ledger.entries)
    out["executions"] = len(node.executions)
    out["surge"] = node.surge.to_json()
    if hasattr(node, "request_stats"):  # a replica: the requests this port received
        out["replica"] = node.request_stats()
    return out


def fund(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """Create accounts without HTTP round trips: {addresses: [G...]}."""
    addrs = params.get("addresses")
    if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
        raise ControlParamError("addresses must be a list of G... addresses")
    created = []
    for a in addrs:
        if node.accounts.get(a) is None:
            node.accounts.create(a)
            created.append(a)
    return {"created": created}


def set_balance(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """Set an existing account's balance in stroops: {address, balance} -- what a payment out
    of it (a drain) or into it (a top-up) would leave; the classic payments themselves are not
    modelled."""
    addr, balance = params.get("address"), params.get("balance")
    if not isinstance(addr, str) or node.accounts.get(addr) is None:
        raise ControlParamError("address must be an existing account (G...)")
    if isinstance(balance, bool) or not isinstance(balance, int) or not 0 <= balance < 2**63:
        raise ControlParamError("balance must be an integer in [0, 2**63)")
    acct = node.accounts.get(addr)
    assert acct is not None
    acct.balance = balance
    node.accounts.charge(acct, 0)
    return {"address": addr, "balance": balance}


def expire_entries(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """End the TTL of chosen entries (see :func:`devnet.archival.expire_entries`)."""
    try:
        return archival.expire_entries(node.ledger, node.contract_id, params)
    except archival.ExpireParamError as exc:
        raise ControlParamError(str(exc)) from exc


def set_lag(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """Make the replica that answers lag (``node`` is that replica: see devnet/replica.py)."""
    try:
        return replica.set_lag(node, params)  # type: ignore[arg-type]
    except replica.LagParamError as exc:
        raise ControlParamError(str(exc)) from exc


METHODS = {
    "devnet_seedTasks": seed_tasks,
    "devnet_touchTasks": touch_tasks,
    "devnet_executions": executions,
    "devnet_setFaults": set_faults,
    "devnet_closeLedger": close_ledger,
    "devnet_stats": stats,
    "devnet_fund": fund,
    "devnet_setBalance": set_balance,
    "devnet_expireEntries": expire_entries,
    "devnet_setLag": set_lag,
}
METHODS.update(NET_METHODS)
