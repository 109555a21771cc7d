"""Byte-level XDR encoders for the few shapes the devnet writes in bulk.

stellar-sdk's generated XDR classes cost about 0.3 ms to build one TaskConfig entry; seeding
100k tasks through them would take half a minute. These helpers write the same canonical bytes
with ``struct.pack`` from cached pieces (addresses are converted once and memoised). Tests check
every encoder byte for byte against stellar-sdk.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable
from functools import lru_cache

from stellar_sdk import StrKey

from sorotask.contract import TASK_FIELDS

# XDR discriminants (Stellar-contract.x / Stellar-ledger-entries.x)
SCV_VOID = 1
SCV_U64 = 5
SCV_I128 = 10
SCV_SYMBOL = 15
SCV_VEC = 16
SCV_MAP = 17
SCV_ADDRESS = 18
SC_ADDRESS_ACCOUNT = 0
SC_ADDRESS_CONTRACT = 1
LEDGER_ACCOUNT = 0
LEDGER_CONTRACT_DATA = 6
DURABILITY_TEMPORARY = 0
DURABILITY_PERSISTENT = 1

_U32 = struct.Struct(">I")
_U64_VAL = struct.Struct(">IQ")
_I128_VAL = struct.Struct(">IqQ")
_VEC_HDR = struct.Struct(">III")

VOID = _U32.pack(SCV_VOID)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def pad4(data: bytes) -> bytes:
    rem = len(data) % 4
    return data + b"\x00" * (4 - rem) if rem else data


@lru_cache(maxsize=4096)
def symbol(name: str) -> bytes:
    raw = name.encode("ascii")
    return _U32.pack(SCV_SYMBOL) + _U32.pack(len(raw)) + pad4(raw)


def u64(value: int) -> bytes:
    return _U64_VAL.pack(SCV_U64, value)


def i128(value: int) -> bytes:
    return _I128_VAL.pack(SCV_I128, value >> 64, value & 0xFFFFFFFFFFFFFFFF)


def vec(items: Iterable[bytes]) -> bytes:
    items = list(items)
    return _VEC_HDR.pack(SCV_VEC, 1, len(items)) + b"".join(items)


@lru_cache(maxsize=65536)
def sc_address(strkey: str) -> bytes:
    """``ScAddress`` (no ScVal tag) for a G... account or C... contract strkey."""
    if strkey.startswith("G"):
        raw = StrKey.decode_ed25519_public_key(strkey)
        return _U32.pack(SC_ADDRESS_ACCOUNT) + _U32.pack(0) + raw
    if strkey.startswith("C"):
        raw = StrKey.decode_contract(strkey)
        return _U32.pack(SC_ADDRESS_CONTRACT) + raw
    raise ValueError(f"unsupported address {strkey!r}")


@lru_cache(maxsize=65536)
def address(strkey: str) -> bytes:
    """``ScVal::Address``."""
    return _U32.pack(SCV_ADDRESS) + sc_address(strkey)


def contract_data_key(contract_id: str, key_val: bytes, durability: int = 1) -> bytes:
    """``LedgerKey::ContractData`` bytes."""
    return (
        _U32.pack(LEDGER_CONTRACT_DATA) + sc_address(contract_id) + key_val + _U32.pack(durability)
    )


def contract_data_entry(contract_id: str, key_val: bytes, val: bytes, durability: int = 1) -> bytes:
    """``LedgerEntryData::ContractData`` bytes (ext v0)."""
    return (
        _U32.pack(LEDGER_CONTRACT_DATA)
        + _U32.pack(0)
        + sc_address(contract_id)
        + key_val
        + _U32.pack(durability)
        + val
    )


def task_key_val(task_id: int) -> bytes:
    return _VEC_HDR.pack(SCV_VEC, 1, 2) + symbol("Task") + u64(task_id)


def counter_key_val() -> bytes:
    return _VEC_HDR.pack(SCV_VEC, 1, 1) + symbol("Counter")


class TaskEncoder:
    """Builds ``DataKey::Task(id)`` ledger keys and TaskConfig entry bytes for one contract.

    Everything that does not depend on the task id or the numbers is precomputed, so one
    task costs a few ``struct.pack`` calls and one ``bytes.join``.
    """

    def __init__(self, contract_id: str) -> None:
        self.contract_id = contract_id
        addr = sc_address(contract_id)
        self._key_prefix = (
            _U32.pack(LEDGER_CONTRACT_DATA) + addr + _VEC_HDR.pack(SCV_VEC, 1, 2) + symbol("Task")
        )
        self._key_suffix = _U32.pack(DURABILITY_PERSISTENT)
        self._entry_prefix = (
            _U32.pack(LEDGER_CONTRACT_DATA)
            + _U32.pack(0)
            + addr
            + _VEC_HDR.pack(SCV_VEC, 1, 2)
            + symbol("Task")
        )
        self._map_hdr = _U32.pack(DURABILITY_PERSISTENT) + _VEC_HDR.pack(SCV_MAP, 1, 9)
        self._k = {name: symbol(name) for name in TASK_FIELDS}

    def key(self, task_id: int) -> bytes:
        return self._key_prefix + _U64_VAL.pack(SCV_U64, task_id) + self._key_suffix

    def config_val(
        self,
        *,
        args: bytes,
        creator: bytes,
        function: bytes,
        gas_balance: int,
        interval: int,
        last_run: int,
        resolver: bytes,
        target: bytes,
        whitelist: bytes,
    ) -> bytes:
        """TaskConfig ScMap; ``args``, address fields, ``function`` and ``whitelist`` are
        already-encoded ScVals (see :meth:`parts`)."""
        k = self._k
        return b"".join(
            (
                _VEC_HDR.pack(SCV_MAP, 1, 9),
                k["args"],
                args,
                k["creator"],
                creator,
                k["function"],
                function,
                k["gas_balance"],
                _I128_VAL.pack(SCV_I128, gas_balance >> 64, gas_balance & 0xFFFFFFFFFFFFFFFF),
                k["interval"],
                _U64_VAL.pack(SCV_U64, interval),
                k["last_run"],
                _U64_VAL.pack(SCV_U64, last_run),
                k["resolver"],
                resolver,
                k["target"],
                target,
                k["whitelist"],
                whitelist,
            )
        )

    def entry(self, task_id: int, config_val: bytes) -> bytes:
        """``LedgerEntryData`` bytes of ``Task(task_id)`` holding ``config_val``."""
        return (
            self._entry_prefix
            + _U64_VAL.pack(SCV_U64, task_id)
            + _U32.pack(DURABILITY_PERSISTENT)
            + config_val
        )

    @staticmethod
    def parts(
        *,
        creator: str,
        target: str,
        function: str,
        resolver: str | None,
        whitelist: Iterable[str],
        args: Iterable[bytes] = (),
    ) -> dict[str, bytes]:
        """Encoded ScVals of the non-numeric TaskConfig fields."""
        return {
            "args": vec(args),
            "creator": address(creator),
            "function": symbol(function),
            "resolver": address(resolver) if resolver else VOID,
            "target": address(target),
            "whitelist": vec(address(a) for a in whitelist),
        }


_ACCOUNT_TAIL = struct.Struct(">qqIIII4sII")


def account_key(public_key: bytes) -> bytes:
    """``LedgerKey::Account`` bytes for a raw ed25519 public key."""
    return _U32.pack(LEDGER_ACCOUNT) + _U32.pack(0) + public_key


def account_entry(public_key: bytes, balance: int, seq_num: int) -> bytes:
    """``LedgerEntryData::Account`` bytes: master key weight 1, no signers, no sub-entries."""
    return (
        _U32.pack(LEDGER_ACCOUNT)
        + _U32.pack(0)
        + public_key
        # balance, seq, numSubEntries, inflationDest (absent), flags, homeDomain len,
        # thresholds, signers count, ext v0
        + _ACCOUNT_TAIL.pack(balance, seq_num, 0, 0, 0, 0, b"\x01\x00\x00\x00", 0, 0)
    )


def ledger_entry(last_modified: int, data: bytes) -> bytes:
    """Full ``LedgerEntry`` (ext v0) around ``LedgerEntryData`` bytes."""
    return _U32.pack(last_modified) + data + _U32.pack(0)
