"""Ledger keys, transactions and result decoding for the SoroTask contract.

The read path (task keys, ``get_task`` simulation envelopes) uses byte templates built once
with stellar-sdk, so a cycle never creates SDK objects. The execution path (a few
transactions a ledger) uses stellar-sdk's builders.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from stellar_sdk import Account, Address, Keypair, StrKey, TransactionBuilder, scval
from stellar_sdk import xdr as sx
from stellar_sdk.transaction_envelope import TransactionEnvelope

from sorotask.contract import contract_data_key, counter_ledger_key, task_ledger_key

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
    "parse_account_entry",
    "result_code",
    "sc_address_bytes",
]

_MARK = 0x5A0F_7A5C_E1B2_93D4  # a u64 unlikely to occur elsewhere in a template
_MARK_BYTES = struct.pack(">Q", _MARK)

#: stroops per base reserve (0.5 XLM), the network's current value
BASE_RESERVE = 5_000_000


def _split_template(blob: bytes) -> tuple[bytes, bytes]:
    at = blob.find(_MARK_BYTES)
    if at < 0 or blob.find(_MARK_BYTES, at + 1) >= 0:
        raise RuntimeError("template marker not found exactly once")
    return blob[:at], blob[at + 8 :]


class TaskKeys:
    """Base64 ``LedgerKey`` of ``DataKey::Task(id)`` for one contract, computed by template."""

    def __init__(self, contract_id: str) -> None:
        self.contract_id = contract_id
        self._pre, self._post = _split_template(task_ledger_key(contract_id, _MARK).to_xdr_bytes())
        self._b64: dict[int, str] = {}

    def key_bytes(self, task_id: int) -> bytes:
        return self._pre + struct.pack(">Q", task_id) + self._post

    def key_b64(self, task_id: int) -> str:
        key = self._b64.get(task_id)
        if key is None:
            key = base64.b64encode(self.key_bytes(task_id)).decode("ascii")
            self._b64[task_id] = key
        return key


def counter_key_b64(contract_id: str) -> str:
    return counter_ledger_key(contract_id).to_xdr()


def instance_key_b64(contract_id: str) -> str:
    """The contract instance's ledger key (exists iff the contract is deployed)."""
    key = sx.SCVal(type=sx.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE)
    return contract_data_key(contract_id, key).to_xdr()


def account_key_b64(public_key: str) -> str:
    key = sx.LedgerKey(
        type=sx.LedgerEntryType.ACCOUNT,
        account=sx.LedgerKeyAccount(
            account_id=Keypair.from_public_key(public_key).xdr_account_id()
        ),
    )
    return key.to_xdr()


def sc_address_bytes(address: str) -> bytes:
    """Raw ``SCAddress`` XDR of a G.../C... address (compared against whitelist entries)."""
    return Address(address).to_xdr_sc_address().to_xdr_bytes()


@dataclass(frozen=True, slots=True)
class AccountState:
    sequence: int
    balance: int
    min_balance: int

    @property
    def spendable(self) -> int:
        return self.balance - self.min_balance


def parse_account_entry(xdr_b64: str) -> AccountState:
    data = sx.LedgerEntryData.from_xdr(xdr_b64)
    if data.type != sx.LedgerEntryType.ACCOUNT or data.account is None:
        raise ValueError("not an account entry")
    acc = data.account
    subentries = acc.num_sub_entries.uint32
    sponsoring = sponsored = 0
    selling = 0
    v1 = acc.ext.v1
    if v1 is not None:
        selling = v1.liabilities.selling.int64
        v2 = v1.ext.v2
        if v2 is not None:
            sponsoring = v2.num_sponsoring.uint32
            sponsored = v2.num_sponsored.uint32
    reserve = (2 + subentries + sponsoring - sponsored) * BASE_RESERVE + selling
    return AccountState(
        sequence=acc.seq_num.sequence_number.int64,
        balance=acc.balance.int64,
        min_balance=reserve,
    )


class GetTaskTemplate:
    """Base64 ``get_task(id)`` envelopes for ``simulateTransaction``, by byte template."""

    def __init__(self, contract_id: str, source: str, network_passphrase: str) -> None:
        tx = (
            TransactionBuilder(Account(source, 0), network_passphrase, base_fee=100)
            .append_invoke_contract_function_op(contract_id, "get_task", [scval.to_uint64(_MARK)])
            .set_timeout(0)
            .build()
        )
        self._pre, self._post = _split_template(tx.to_xdr_object().to_xdr_bytes())
        self._cache: dict[int, str] = {}

    def envelope_b64(self, task_id: int) -> str:
        env = self._cache.get(task_id)
        if env is None:
            raw = self._pre + struct.pack(">Q", task_id) + self._post
            env = base64.b64encode(raw).decode("ascii")
            self._cache[task_id] = env
        return env


def build_execute_tx(
    *,
    source: str,
    sequence: int,
    keeper: str,
    contract_id: str,
    task_id: int,
    network_passphrase: str,
    base_fee: int,
    max_time: int,
) -> TransactionEnvelope:
    """Unsigned ``execute(keeper, task_id)`` with sequence ``sequence + 1`` and time bounds."""
    return (
        TransactionBuilder(Account(source, sequence), network_passphrase, base_fee=base_fee)
        .append_invoke_contract_function_op(
            contract_id, "execute", [scval.to_address(keeper), scval.to_uint64(task_id)]
        )
        .add_time_bounds(0, max_time)
        .build()
    )


def footprint_writes(transaction_data_b64: str, key: bytes) -> bool:
    """True when the simulated footprint has ``key`` (raw LedgerKey XDR) in read-write."""
    data = sx.SorobanTransactionData.from_xdr(transaction_data_b64)
    return any(k.to_xdr_bytes() == key for k in data.resources.footprint.read_write)


def result_code(result_xdr_b64: str) -> tuple[int, str]:
    """(code, name) of a base64 ``TransactionResult`` (e.g. ``(-5, "txBAD_SEQ")``)."""
    res = sx.TransactionResult.from_xdr(result_xdr_b64)
    code = res.result.code
    return int(code), getattr(code, "name", str(code))


def fee_charged(result_xdr_b64: str) -> int:
    return sx.TransactionResult.from_xdr(result_xdr_b64).fee_charged.int64


def is_valid_contract_id(contract_id: str) -> bool:
    return StrKey.is_valid_contract(contract_id)
