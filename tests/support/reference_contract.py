"""The SoroTask contract's storage layout on stellar-sdk: the reference for the fast code.

Keys and values follow the Rust contract (see SOROBAN_FACTS.md):
``DataKey::Task(id)`` is ``ScVec[ScSymbol("Task"), ScU64(id)]`` and ``DataKey::Counter`` is
``ScVec[ScSymbol("Counter")]``, both in persistent contract storage. ``TaskConfig`` is an
``ScMap`` with ``ScSymbol`` keys sorted by field name.

Everything here is built with stellar-sdk's generated XDR classes and written independently of
``sorotask_core`` on purpose: tests compare the bottom layer's byte-level decoder and encoders
(``sorotask_core.contract``, ``sorotask_core.taskconfig``) with it, and use it to build the
transactions a stock client would send.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stellar_sdk import Address, scval
from stellar_sdk import xdr as sx

TASK_FIELDS = (
    "args",
    "creator",
    "function",
    "gas_balance",
    "interval",
    "last_run",
    "resolver",
    "target",
    "whitelist",
)


ERR_INVALID_INTERVAL = 1
ERR_UNAUTHORIZED = 2
ERR_INSUFFICIENT_BALANCE = 3
ERR_NOT_INITIALIZED = 4


@dataclass(slots=True)
class TaskConfig:
    """Python view of the contract's ``TaskConfig`` (addresses as strkeys)."""

    creator: str
    target: str
    function: str
    args: list[Any] = field(default_factory=list)  # list of stellar_sdk xdr.SCVal
    resolver: str | None = None
    interval: int = 60
    last_run: int = 0
    gas_balance: int = 0
    whitelist: list[str] = field(default_factory=list)

    def next_run(self) -> int:
        return self.last_run + self.interval

    def is_due(self, ledger_time: int) -> bool:
        return self.gas_balance > 0 and ledger_time >= self.last_run + self.interval


def task_key_scval(task_id: int) -> sx.SCVal:
    return scval.to_vec([scval.to_symbol("Task"), scval.to_uint64(task_id)])


def counter_key_scval() -> sx.SCVal:
    return scval.to_vec([scval.to_symbol("Counter")])


def token_key_scval() -> sx.SCVal:
    return scval.to_vec([scval.to_symbol("Token")])


def contract_data_key(
    contract_id: str,
    key: sx.SCVal,
    durability: sx.ContractDataDurability = sx.ContractDataDurability.PERSISTENT,
) -> sx.LedgerKey:
    return sx.LedgerKey(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.LedgerKeyContractData(
            contract=Address(contract_id).to_xdr_sc_address(),
            key=key,
            durability=durability,
        ),
    )


def task_ledger_key(contract_id: str, task_id: int) -> sx.LedgerKey:
    return contract_data_key(contract_id, task_key_scval(task_id))


def counter_ledger_key(contract_id: str) -> sx.LedgerKey:
    return contract_data_key(contract_id, counter_key_scval())


def task_ledger_key_b64(contract_id: str, task_id: int) -> str:
    return task_ledger_key(contract_id, task_id).to_xdr()


def encode_task_config(cfg: TaskConfig) -> sx.SCVal:
    """``TaskConfig`` as the contract stores it: an ScMap with sorted symbol keys."""
    values: dict[str, sx.SCVal] = {
        "args": scval.to_vec(list(cfg.args)),
        "creator": scval.to_address(cfg.creator),
        "function": scval.to_symbol(cfg.function),
        "gas_balance": scval.to_int128(cfg.gas_balance),
        "interval": scval.to_uint64(cfg.interval),
        "last_run": scval.to_uint64(cfg.last_run),
        "resolver": scval.to_address(cfg.resolver) if cfg.resolver else scval.to_void(),
        "target": scval.to_address(cfg.target),
        "whitelist": scval.to_vec([scval.to_address(a) for a in cfg.whitelist]),
    }
    return sx.SCVal(
        type=sx.SCValType.SCV_MAP,
        map=sx.SCMap([sx.SCMapEntry(key=scval.to_symbol(k), val=values[k]) for k in TASK_FIELDS]),
    )


def decode_task_config(val: sx.SCVal) -> TaskConfig:
    """Slow, complete decoder built on stellar-sdk (reference for tests and the devnet)."""
    if val.type != sx.SCValType.SCV_MAP or val.map is None:
        raise ValueError("TaskConfig must be an ScMap")
    fields: dict[str, sx.SCVal] = {}
    for entry in val.map.sc_map:
        fields[scval.from_symbol(entry.key)] = entry.val
    missing = [f for f in TASK_FIELDS if f not in fields]
    if missing:
        raise ValueError(f"TaskConfig is missing fields: {', '.join(missing)}")
    resolver = fields["resolver"]
    return TaskConfig(
        creator=scval.from_address(fields["creator"]).address,
        target=scval.from_address(fields["target"]).address,
        function=scval.from_symbol(fields["function"]),
        args=list(scval.from_vec(fields["args"])),
        resolver=None
        if resolver.type == sx.SCValType.SCV_VOID
        else scval.from_address(resolver).address,
        interval=scval.from_uint64(fields["interval"]),
        last_run=scval.from_uint64(fields["last_run"]),
        gas_balance=scval.from_int128(fields["gas_balance"]),
        whitelist=[scval.from_address(a).address for a in scval.from_vec(fields["whitelist"])],
    )
