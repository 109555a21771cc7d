"""The SoroTask contract's storage layout, written once: fields, keys, the fast TaskConfig reader.

Keys and values follow the Rust contract (see SOROBAN_FACTS.md): ``DataKey::Task(id)`` is
``ScVec[ScSymbol("Task"), ScU64(id)]`` and ``DataKey::Counter`` is ``ScVec[ScSymbol("Counter")]``,
both persistent contract data; ``DataKey::Token`` is a key of the instance storage.
``TaskConfig`` is an ``ScMap`` with ``ScSymbol`` keys sorted by field name (:data:`TASK_FIELDS`).

The keeper reads with the fast decoder here (:func:`decode_task_entry_b64` gives a
:class:`TaskInfo`, only the fields a keeper needs, walked with precompiled ``struct`` readers:
stellar-sdk's generated classes take hundreds of microseconds an entry). The devnet writes and
reads whole configs with :mod:`sorotask_core.taskconfig`. Tests compare both with a stellar-sdk
reference (``tests/support/reference_contract.py``).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from sorotask_core.strkey import (
    VERSION_ACCOUNT,
    VERSION_CONTRACT,
    StrKeyError,
    decode_strkey,
    encode_strkey,
    is_valid_strkey,
)
from sorotask_core.xdr import (
    SC_ADDRESS_ACCOUNT,
    SC_ADDRESS_CONTRACT,
    SCV_ADDRESS,
    SCV_I128,
    SCV_LEDGER_KEY_CONTRACT_INSTANCE_VAL,
    SCV_MAP,
    SCV_SYMBOL,
    SCV_U32,
    SCV_U64,
    SCV_VEC,
    SCV_VOID,
    DecodeError,
    add_u64,
    b64decode,
    b64encode,
    contract_data_entry,
    contract_data_ledger_key,
    contract_data_val_offset,
    pack_u32,
    pack_u64,
    padded_len,
    sc_address_account,
    sc_address_contract,
    scv_symbol,
    scv_u64,
    scv_vec,
    skip_sc_address,
    skip_scval,
    unpack_i128,
    unpack_u32,
    unpack_u32_pair,
    unpack_u64,
)

__all__ = [
    "COUNTER_KEY_SCVAL",
    "EVENT_GAS_DEPOSITED",
    "EVENT_GAS_WITHDRAWN",
    "EVENT_NAMES",
    "EVENT_TASK_REGISTERED",
    "FN_DEPOSIT_GAS",
    "FN_EXECUTE",
    "FN_GET_TASK",
    "FN_GET_TOKEN",
    "FN_INIT",
    "FN_REGISTER",
    "FN_WITHDRAW_GAS",
    "GAS_BALANCE_MARKER",
    "TASK_ENTRY_VAL_OFFSET",
    "TASK_FIELDS",
    "TASK_FIELD_KEYS",
    "TOKEN_KEY_SCVAL",
    "TaskInfo",
    "TaskKeys",
    "address_strkey",
    "contract_hash",
    "counter_key_b64",
    "decode_counter_data",
    "decode_counter_entry",
    "decode_task_entry",
    "decode_task_entry_b64",
    "decode_task_scval",
    "decode_task_scval_b64",
    "instance_key_b64",
    "is_valid_contract_id",
    "sc_address_bytes",
    "task_key_scval",
]

#: the ``TaskConfig`` fields, in the map's (sorted) order
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

#: each field's map key (an ``ScSymbol``), as the contract's ``TaskConfig`` map stores it
TASK_FIELD_KEYS = {name: scv_symbol(name.encode()) for name in TASK_FIELDS}
#: the bytes right before the gas balance's 16 (an i128) inside an encoded ``TaskConfig``
GAS_BALANCE_MARKER = TASK_FIELD_KEYS["gas_balance"] + pack_u32(SCV_I128)

# the contract's error codes (``Error(Contract, #n)``)
ERR_INVALID_INTERVAL = 1
ERR_UNAUTHORIZED = 2
ERR_INSUFFICIENT_BALANCE = 3
ERR_NOT_INITIALIZED = 4

# the contract's functions (the ones a keeper calls: get_task, execute)
FN_REGISTER = "register"
FN_GET_TASK = "get_task"
FN_EXECUTE = "execute"
FN_INIT = "init"
FN_GET_TOKEN = "get_token"  # noqa: S105 - a function name, not a secret
FN_DEPOSIT_GAS = "deposit_gas"
FN_WITHDRAW_GAS = "withdraw_gas"

# the contract's events: topics ``(ScSymbol name, u64 task id)``; ``register`` emits
# TaskRegistered (data: the creator), ``deposit_gas`` GasDeposited and ``withdraw_gas``
# GasWithdrawn (data: ``(address, i128 amount)``)
EVENT_TASK_REGISTERED = "TaskRegistered"
EVENT_GAS_DEPOSITED = "GasDeposited"
EVENT_GAS_WITHDRAWN = "GasWithdrawn"
#: every event that names a task whose entry changed
EVENT_NAMES = (EVENT_TASK_REGISTERED, EVENT_GAS_DEPOSITED, EVENT_GAS_WITHDRAWN)


# ---------------------------------------------------------------- addresses


def contract_hash(contract_id: str) -> bytes:
    """The 32-byte id of a ``C...`` contract; raises :class:`StrKeyError`."""
    return decode_strkey(VERSION_CONTRACT, contract_id)


def is_valid_contract_id(contract_id: str) -> bool:
    return is_valid_strkey(VERSION_CONTRACT, contract_id)


def sc_address_bytes(address: str) -> bytes:
    """Raw ``SCAddress`` XDR of a G.../C... address (compared against whitelist entries)."""
    if address.startswith("G"):
        return sc_address_account(decode_strkey(VERSION_ACCOUNT, address))
    if address.startswith("C"):
        return sc_address_contract(decode_strkey(VERSION_CONTRACT, address))
    raise StrKeyError("address must be a G... account or a C... contract")


def address_strkey(sc_address: bytes) -> str:
    """The G.../C... strkey of a raw account or contract ``SCAddress``."""
    kind = int.from_bytes(sc_address[:4], "big")
    if kind == SC_ADDRESS_ACCOUNT and len(sc_address) == 40 and sc_address[4:8] == bytes(4):
        return encode_strkey(VERSION_ACCOUNT, sc_address[8:])
    if kind == SC_ADDRESS_CONTRACT and len(sc_address) == 36:
        return encode_strkey(VERSION_CONTRACT, sc_address[4:])
    raise DecodeError(f"not an account or contract SCAddress (type {kind})")


# ---------------------------------------------------------------- keys


def task_key_scval(task_id: int) -> bytes:
    """``DataKey::Task(id)``: ``ScVec[ScSymbol("Task"), ScU64(id)]``."""
    return scv_vec([scv_symbol(b"Task"), scv_u64(task_id)])


COUNTER_KEY_SCVAL = scv_vec([scv_symbol(b"Counter")])
TOKEN_KEY_SCVAL = scv_vec([scv_symbol(b"Token")])


@functools.lru_cache(maxsize=256)
def counter_key_b64(contract_id: str) -> str:
    """The ``DataKey::Counter`` ledger key (the highest task id so far)."""
    return b64encode(contract_data_ledger_key(sc_address_bytes(contract_id), COUNTER_KEY_SCVAL))


@functools.lru_cache(maxsize=256)
def instance_key_b64(contract_id: str) -> str:
    """The contract instance's ledger key (exists iff the contract is deployed)."""
    return b64encode(
        contract_data_ledger_key(
            sc_address_bytes(contract_id), SCV_LEDGER_KEY_CONTRACT_INSTANCE_VAL
        )
    )


#: where the ``TaskConfig`` SCVal starts inside a task's ``LedgerEntryData`` (the same for
#: every task and contract: a contract address and a ``Task(u64)`` key have fixed sizes)
TASK_ENTRY_VAL_OFFSET = contract_data_val_offset(
    contract_data_entry(sc_address_contract(bytes(32)), task_key_scval(0), pack_u32(SCV_VOID))
)


class TaskKeys:
    """``LedgerKey`` of ``DataKey::Task(id)`` for one contract: a prefix, the id, a suffix.

    Base64 turns each 3 bytes into 4 characters, so the base64 key is a fixed text prefix
    (the key's first bytes up to a multiple of 3 before the id) followed by the base64 of a
    short tail holding the id: :meth:`key_b64` costs one small encode and :meth:`task_id`
    reads the id back out of a key string.
    """

    __slots__ = ("_b64_len", "_b64_pre", "_mid", "contract_id", "prefix", "suffix")

    def __init__(self, contract_id: str) -> None:
        self.contract_id = contract_id
        marker = 0x5A0F_7A5C_E1B2_93D4
        blob = contract_data_ledger_key(sc_address_bytes(contract_id), task_key_scval(marker))
        at = blob.index(pack_u64(marker))
        #: the key's bytes before and after the 8-byte id
        self.prefix, self.suffix = blob[:at], blob[at + 8 :]
        aligned = at - at % 3  # base64 of the first ``aligned`` bytes never changes
        self._b64_pre = b64encode(blob[:aligned])
        self._mid = blob[aligned:at]
        self._b64_len = len(b64encode(blob))

    def key_bytes(self, task_id: int) -> bytes:
        return self.prefix + pack_u64(task_id) + self.suffix

    def key_b64(self, task_id: int) -> str:
        return self._b64_pre + b64encode(self._mid + pack_u64(task_id) + self.suffix)

    def task_id(self, key_b64: str) -> int | None:
        """The task id in a base64 task key of this contract; None for any other key."""
        pre = self._b64_pre
        if len(key_b64) != self._b64_len or not key_b64.startswith(pre):
            return None
        try:
            tail = b64decode(key_b64[len(pre) :])
        except DecodeError:
            return None
        m = len(self._mid)
        if tail[:m] != self._mid or tail[m + 8 :] != self.suffix:
            return None
        return int.from_bytes(tail[m : m + 8], "big")


# ---------------------------------------------------------------- the keeper's fast decoder


@dataclass(slots=True, repr=False)
class TaskInfo:
    """The fields of a ``TaskConfig`` the keeper needs.

    ``whitelist`` holds each allowed keeper as its raw ``SCAddress`` XDR bytes, so a
    membership test is a bytes comparison with the keeper's own encoded address.
    """

    interval: int
    last_run: int
    gas_balance: int
    whitelist: tuple[bytes, ...]
    has_resolver: bool

    @property
    def next_run(self) -> int:  # the contract's sum: wraps at 2^64
        return add_u64(self.last_run, self.interval)

    def __repr__(self) -> str:
        return (
            f"TaskInfo(interval={self.interval}, last_run={self.last_run}, "
            f"gas_balance={self.gas_balance}, whitelist={len(self.whitelist)} addr, "
            f"has_resolver={self.has_resolver})"
        )


def decode_task_scval(buf: bytes, off: int = 0, *, exact: bool = True) -> TaskInfo | None:
    """Decode a ``TaskConfig`` ScMap (or ``None`` for ``ScVoid``, as ``get_task`` returns
    for a missing task) starting at ``off``. With ``exact`` the value must end the input."""
    try:
        (kind,) = unpack_u32(buf, off)
        if kind == SCV_VOID:
            if exact and off + 4 != len(buf):
                raise DecodeError("trailing bytes after SCVal")
            return None
        if kind != SCV_MAP:
            raise DecodeError(f"TaskConfig must be an ScMap, got SCVal type {kind}")
        present, count = unpack_u32_pair(buf, off + 4)
        if present != 1:
            raise DecodeError("TaskConfig map is absent")
        if count > 64:
            raise DecodeError("TaskConfig map too large")
        off += 12
        interval = last_run = gas = None
        whitelist: tuple[bytes, ...] | None = None
        has_resolver: bool | None = None
        n = len(buf)
        for _ in range(count):
            (kt, klen) = unpack_u32_pair(buf, off)
            if kt != SCV_SYMBOL:
                raise DecodeError("TaskConfig key is not a symbol")
            kstart = off + 8
            off = kstart + padded_len(klen)
            if off > n:
                raise DecodeError("truncated key")
            name = buf[kstart : kstart + klen]
            (vt,) = unpack_u32(buf, off)
            if name == b"interval" or name == b"last_run":
                if vt != SCV_U64:
                    raise DecodeError(f"{name.decode()} is not u64")
                (v,) = unpack_u64(buf, off + 4)
                off += 12
                if name == b"interval":
                    interval = v
                else:
                    last_run = v
            elif name == b"gas_balance":
                if vt != SCV_I128:
                    raise DecodeError("gas_balance is not i128")
                hi, lo = unpack_i128(buf, off + 4)
                gas = (hi << 64) | lo
                off += 20
            elif name == b"resolver":
                has_resolver = vt != SCV_VOID
                if has_resolver and vt != SCV_ADDRESS:
                    raise DecodeError("resolver is neither void nor an address")
                off = skip_scval(buf, off)
            elif name == b"whitelist":
                if vt != SCV_VEC:
                    raise DecodeError("whitelist is not a vec")
                (present,) = unpack_u32(buf, off + 4)
                off += 8
                items: list[bytes] = []
                if present == 1:
                    (wn,) = unpack_u32(buf, off)
                    off += 4
                    if wn > n:
                        raise DecodeError("whitelist count exceeds input")
                    for _ in range(wn):
                        (at,) = unpack_u32(buf, off)
                        if at != SCV_ADDRESS:
                            raise DecodeError("whitelist entry is not an address")
                        end = skip_sc_address(buf, off + 4)
                        items.append(buf[off + 4 : end])
                        off = end
                elif present != 0:
                    raise DecodeError("bad optional flag")
                whitelist = tuple(items)
            else:
                off = skip_scval(buf, off)
        if off > n:
            raise DecodeError("truncated TaskConfig")
        if exact and off != n:
            raise DecodeError("trailing bytes after TaskConfig")
        if interval is None or last_run is None or gas is None or whitelist is None:
            raise DecodeError("TaskConfig lacks interval, last_run, gas_balance or whitelist")
        return TaskInfo(interval, last_run, gas, whitelist, bool(has_resolver))
    except struct.error as exc:
        raise DecodeError(f"truncated XDR: {exc}") from None


def decode_task_entry(buf: bytes) -> TaskInfo:
    """Decode a task's ``LedgerEntryData`` (raw XDR bytes)."""
    info = decode_task_scval(buf, contract_data_val_offset(buf))
    if info is None:
        raise DecodeError("task entry holds no TaskConfig")
    return info


def decode_task_entry_b64(data: str) -> TaskInfo:
    """Decode a task's base64 ``LedgerEntryData`` as ``getLedgerEntries`` returns it."""
    return decode_task_entry(b64decode(data))


def decode_task_scval_b64(data: str) -> TaskInfo | None:
    """Decode ``get_task``'s simulated return value (base64 SCVal)."""
    return decode_task_scval(b64decode(data))


def decode_counter_entry(data: str) -> int:
    """The contract's ``Counter`` (u64) from its base64 ``LedgerEntryData``."""
    return decode_counter_data(b64decode(data))


def decode_counter_data(buf: bytes) -> int:
    """The contract's ``Counter`` (u64) from its ``LedgerEntryData`` bytes."""
    off = contract_data_val_offset(buf)
    try:
        (kind,) = unpack_u32(buf, off)
        if kind == SCV_U32:
            return unpack_u32(buf, off + 4)[0]
        if kind != SCV_U64:
            raise DecodeError(f"Counter is not u64 (SCVal type {kind})")
        return unpack_u64(buf, off + 4)[0]
    except struct.error as exc:
        raise DecodeError(f"truncated Counter: {exc}") from None
