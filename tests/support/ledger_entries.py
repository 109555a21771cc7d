"""Ledger entries built with stellar-sdk (the reference encoding): a task's TaskConfig entry and
the Counter entry, for tests that feed the keeper's decoders without a devnet."""

from __future__ import annotations

from typing import Any

from stellar_sdk import Address, Keypair, StrKey, scval
from stellar_sdk import xdr as sx

from tests.support.reference_contract import TaskConfig, encode_task_config, task_key_scval

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
