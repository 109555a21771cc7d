"""The keeper's own transactions and answers for the SoroTask contract, without stellar-sdk.

``get_task`` simulation envelopes (a byte template the task id is spliced into), the
``execute(keeper, task_id)`` transaction, source accounts' sequence and spendable balance, and
the footprint, code and fee of answers. The contract's layout (keys, the TaskConfig decoder) is
:mod:`sorotask_core.contract`; the transaction bytes are :mod:`shard_worker.txxdr` (the worker
process never imports stellar-sdk, whose package import alone costs about 50 MB of RSS).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from shard_worker import txxdr
from shard_worker.strict_xdr import footprint_read_write
from sorotask_core import xdr
from sorotask_core.contract import contract_hash, sc_address_bytes
from sorotask_core.strkey import VERSION_ACCOUNT, decode_strkey

__all__ = [
    "AccountState",
    "GetTaskTemplate",
    "account_key_b64",
    "build_execute_tx",
    "fee_charged",
    "footprint_writes",
    "parse_account_entry",
    "result_code",
]

#: stroops per base reserve (0.5 XLM), the network's current value
BASE_RESERVE = 5_000_000


def account_key_b64(public_key: str) -> str:
    return xdr.b64encode(xdr.account_ledger_key(decode_strkey(VERSION_ACCOUNT, public_key)))


@dataclass(frozen=True, slots=True)
class AccountState:
    sequence: int
    balance: int
    min_balance: int

    @property
    def spendable(self) -> int:
        return self.balance - self.min_balance


def parse_account_entry(xdr_b64: str) -> AccountState:
    acc = xdr.parse_account_entry(base64.b64decode(xdr_b64, validate=True))
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
            contract=contract_hash(contract_id),
            function=b"get_task",
            args=[xdr.scv_u64(marker)],
            time_bounds=(0, 0),
        )
        blob = tx.envelope_bytes()
        at = blob.index(xdr.pack_u64(marker))
        self._pre, self._post = blob[:at], blob[at + 8 :]

    def envelope_b64(self, task_id: int) -> str:
        return xdr.b64encode(self._pre + xdr.pack_u64(task_id) + self._post)


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
        contract=contract_hash(contract_id),
        function=b"execute",
        args=[xdr.scv_address(sc_address_bytes(keeper)), xdr.scv_u64(task_id)],
        time_bounds=(0, max_time),
    )


def footprint_writes(transaction_data_b64: str, key: bytes) -> bool:
    """True when the simulated footprint has ``key`` (raw LedgerKey XDR) in read-write."""
    data = base64.b64decode(transaction_data_b64, validate=True)
    return key in footprint_read_write(data)


def result_code(result_xdr_b64: str) -> tuple[int, str]:
    """(code, name) of a base64 ``TransactionResult`` (e.g. ``(-5, "txBAD_SEQ")``)."""
    _, code, name = txxdr.parse_transaction_result(base64.b64decode(result_xdr_b64))
    return code, name


def fee_charged(result_xdr_b64: str) -> int:
    return txxdr.parse_transaction_result(base64.b64decode(result_xdr_b64))[0]
