"""Ledger keys, transactions and result decoding for the SoroTask contract, without stellar-sdk.

Everything is raw XDR bytes built by :mod:`shard_worker.txxdr` (the worker process never
imports stellar-sdk, whose package import alone costs about 50 MB of RSS). The read path
(task keys, ``get_task`` simulation envelopes) splices the task id into byte templates.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from shard_worker import txxdr
from shard_worker.keys import (
    VERSION_ACCOUNT,
    VERSION_CONTRACT,
    StrKeyError,
    decode_strkey,
    is_valid_strkey,
)

__all__ = [
    "AccountState",
    "GetTaskTemplate",
    "TaskKeys",
    "account_key_b64",
    "build_execute_tx",
    "counter_key_b64",
    "fee_charged",
    "footprint_writes",
    "instance_key_b64",
    "is_valid_contract_id",
    "parse_account_entry",
    "result_code",
    "sc_address_bytes",
]

_U64 = struct.Struct(">Q").pack

#: stroops per base reserve (0.5 XLM), the network's current value
BASE_RESERVE = 5_000_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _contract_hash(contract_id: str) -> bytes:
    return decode_strkey(VERSION_CONTRACT, contract_id)


def task_key_scval(task_id: int) -> bytes:
    """``DataKey::Task(id)``: ``ScVec[ScSymbol("Task"), ScU64(id)]``."""
    return txxdr.scv_vec([txxdr.scv_symbol(b"Task"), txxdr.scv_u64(task_id)])


class TaskKeys:
    """``LedgerKey`` of ``DataKey::Task(id)`` for one contract: a prefix, the id, a suffix.

    Base64 turns each 3 bytes into 4 characters, so the base64 key is a fixed text prefix
    (the key's first bytes up to a multiple of 3 before the id) followed by the base64 of a
    short tail holding the id: :meth:`key_b64` costs one small encode and :meth:`task_id`
    reads the id back out of a key string.
    """

    __slots__ = ("_b64_len", "_b64_pre", "_mid", "_post", "_pre", "contract_id")

    def __init__(self, contract_id: str) -> None:
        self.contract_id = contract_id
        marker = 0x5A0F_7A5C_E1B2_93D4
        blob = txxdr.contract_data_ledger_key(_contract_hash(contract_id), task_key_scval(marker))
        at = blob.index(_U64(marker))
        self._pre, self._post = blob[:at], blob[at + 8 :]
        aligned = at - at % 3  # base64 of the first ``aligned`` bytes never changes
        self._b64_pre = _b64(blob[:aligned])
        self._mid = blob[aligned:at]
        self._b64_len = len(_b64(blob))

    def key_bytes(self, task_id: int) -> bytes:
        return self._pre + _U64(task_id) + self._post

    def key_b64(self, task_id: int) -> str:
        return self._b64_pre + _b64(self._mid + _U64(task_id) + self._post)

    def task_id(self, key_b64: str) -> int | None:
        """The task id in a base64 task key of this contract; None for any other key."""
        pre = self._b64_pre
        if len(key_b64) != self._b64_len or not key_b64.startswith(pre):
            return None
        try:
            tail = base64.b64decode(key_b64[len(pre) :], validate=True)
        except ValueError:
            return None
        m = len(self._mid)
        if tail[:m] != self._mid or tail[m + 8 :] != self._post:
            return None
        return int.from_bytes(tail[m : m + 8], "big")


def counter_key_b64(contract_id: str) -> str:
    key = txxdr.scv_vec([txxdr.scv_symbol(b"Counter")])
    return _b64(txxdr.contract_data_ledger_key(_contract_hash(contract_id), key))


def instance_key_b64(contract_id: str) -> str:
    """The contract instance's ledger key (exists iff the contract is deployed)."""
    return _b64(txxdr.contract_data_ledger_key(_contract_hash(contract_id), txxdr.instance_scval()))


def account_key_b64(public_key: str) -> str:
    return _b64(txxdr.account_ledger_key(decode_strkey(VERSION_ACCOUNT, public_key)))


def sc_address_bytes(address: str) -> bytes:
    """Raw ``SCAddress`` XDR of a G.../C... address (compared against whitelist entries)."""
    if address.startswith("G"):
        return txxdr.sc_address_account(decode_strkey(VERSION_ACCOUNT, address))
    if address.startswith("C"):
        return txxdr.sc_address_contract(decode_strkey(VERSION_CONTRACT, address))
    raise StrKeyError("address must be a G... account or a C... contract")


@dataclass(frozen=True, slots=True)
class AccountState:
    sequence: int
    balance: int
    min_balance: int

    @property
    def spendable(self) -> int:
        return self.balance - self.min_balance


def parse_account_entry(xdr_b64: str) -> AccountState:
    acc = txxdr.parse_account_entry(base64.b64decode(xdr_b64, validate=True))
    reserve = (
        2 + acc.num_sub_entries + acc.num_sponsoring - acc.num_sponsored
    ) * BASE_RESERVE + acc.selling_liabilities
    return AccountState(sequence=acc.sequence, balance=acc.balance, min_balance=reserve)


class GetTaskTemplate:
    """Base64 ``get_task(id)`` envelopes for ``simulateTransaction``, by byte template
    (source account ``source``, sequence 1, fee 100, time bounds 0..0, unsigned)."""

    def __init__(self, contract_id: str, source: str, network_passphrase: str) -> None:
        del network_passphrase  # an unsigned envelope does not depend on it
        marker = 0x5A0F_7A5C_E1B2_93D4
        tx = txxdr.InvokeTx(
            source=decode_strkey(VERSION_ACCOUNT, source),
            fee=100,
            sequence=1,
            contract=_contract_hash(contract_id),
            function=b"get_task",
            args=[txxdr.scv_u64(marker)],
            time_bounds=(0, 0),
        )
        blob = tx.envelope_bytes()
        at = blob.index(_U64(marker))
        self._pre, self._post = blob[:at], blob[at + 8 :]

    def envelope_b64(self, task_id: int) -> str:
        return _b64(self._pre + _U64(task_id) + self._post)


def build_execute_tx(
    *,
    source: str,
    sequence: int,
    keeper: str,
    contract_id: str,
    task_id: int,
    base_fee: int,
    max_time: int,
) -> txxdr.InvokeTx:
    """Unsigned ``execute(keeper, task_id)`` with sequence ``sequence + 1``, time bounds
    ``0..max_time`` and fee ``base_fee`` (the caller adds the resource fee)."""
    return txxdr.InvokeTx(
        source=decode_strkey(VERSION_ACCOUNT, source),
        fee=base_fee,
        sequence=sequence + 1,
        contract=_contract_hash(contract_id),
        function=b"execute",
        args=[txxdr.scv_address(sc_address_bytes(keeper)), txxdr.scv_u64(task_id)],
        time_bounds=(0, max_time),
    )


def footprint_writes(transaction_data_b64: str, key: bytes) -> bool:
    """True when the simulated footprint has ``key`` (raw LedgerKey XDR) in read-write."""
    data = base64.b64decode(transaction_data_b64, validate=True)
    return key in txxdr.footprint_read_write(data)


def result_code(result_xdr_b64: str) -> tuple[int, str]:
    """(code, name) of a base64 ``TransactionResult`` (e.g. ``(-5, "txBAD_SEQ")``)."""
    _, code, name = txxdr.parse_transaction_result(base64.b64decode(result_xdr_b64))
    return code, name


def fee_charged(result_xdr_b64: str) -> int:
    return txxdr.parse_transaction_result(base64.b64decode(result_xdr_b64))[0]


def is_valid_contract_id(contract_id: str) -> bool:
    return is_valid_strkey(VERSION_CONTRACT, contract_id)
