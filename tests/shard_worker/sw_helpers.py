"""Builders shared by the shard_worker tests: XDR made with stellar-sdk, a recording reporter."""

from __future__ import annotations

import threading
from typing import Any

from stellar_sdk import Address, Keypair, StrKey, scval
from stellar_sdk import xdr as sx

from shard_worker.spec import CycleStats
from sorotask.contract import TaskConfig, encode_task_config, task_key_scval

CONTRACT_ID = StrKey.encode_contract(b"\x07" * 32)
TARGET_ID = StrKey.encode_contract(b"\x09" * 32)


def task_config(**kw: Any) -> TaskConfig:
    base: dict[str, Any] = {
        "creator": Keypair.random().public_key,
        "target": TARGET_ID,
        "function": "ping",
        "args": [scval.to_uint64(7), scval.to_string("hello"), scval.to_symbol("x")],
        "resolver": None,
        "interval": 60,
        "last_run": 1_000,
        "gas_balance": 5_000,
        "whitelist": [],
    }
    base.update(kw)
    return TaskConfig(**base)


def entry_data(
    cfg: TaskConfig, task_id: int = 1, contract_id: str = CONTRACT_ID
) -> sx.LedgerEntryData:
    return sx.LedgerEntryData(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.ContractDataEntry(
            ext=sx.ExtensionPoint(0),
            contract=Address(contract_id).to_xdr_sc_address(),
            key=task_key_scval(task_id),
            durability=sx.ContractDataDurability.PERSISTENT,
            val=encode_task_config(cfg),
        ),
    )


def entry_b64(cfg: TaskConfig, task_id: int = 1) -> str:
    return entry_data(cfg, task_id).to_xdr()


def counter_b64(value: int, contract_id: str = CONTRACT_ID) -> str:
    data = sx.LedgerEntryData(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.ContractDataEntry(
            ext=sx.ExtensionPoint(0),
            contract=Address(contract_id).to_xdr_sc_address(),
            key=scval.to_vec([scval.to_symbol("Counter")]),
            durability=sx.ContractDataDurability.PERSISTENT,
            val=scval.to_uint64(value),
        ),
    )
    return data.to_xdr()


class RecordingReporter:
    """A Reporter that keeps everything it is told (thread-safe, never raises)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hellos: list[tuple[int, str, list[str]]] = []
        self.heartbeats = 0
        self.cycles: list[CycleStats] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.fatals: list[tuple[int, str]] = []
        self.goodbyes: list[dict[str, Any]] = []

    def hello(self, pid: int, keeper_public_key: str, channel_public_keys: list[str]) -> None:
        with self.lock:
            self.hellos.append((pid, keeper_public_key, list(channel_public_keys)))

    def heartbeat(self) -> None:
        with self.lock:
            self.heartbeats += 1

    def cycle(self, stats: CycleStats) -> None:
        with self.lock:
            self.cycles.append(stats)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((kind, dict(data)))

    def fatal(self, code: int, message: str) -> None:
        with self.lock:
            self.fatals.append((code, message))

    def goodbye(self, final: dict[str, Any]) -> None:
        with self.lock:
            self.goodbyes.append(dict(final))

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for k, d in self.events if k == kind]
