"""Fast byte-level decoding of the few XDR values the keeper reads on its hot path.

``getLedgerEntries`` returns each task as base64 ``LedgerEntryData`` (a ``ContractDataEntry``
whose value is the contract's ``TaskConfig`` ``ScMap``). stellar-sdk's generated classes take
hundreds of microseconds per entry; the keeper only needs ``interval``, ``last_run``,
``gas_balance``, the whitelist and whether a resolver is set, so this module walks the XDR
bytes with precompiled ``struct`` readers and skips everything else.

Every malformed input (truncated, wrong type tags, trailing bytes, unsupported value kinds)
raises :class:`DecodeError`; callers treat that as a read error for one task.
"""

from __future__ import annotations

import binascii
import struct

__all__ = [
    "DecodeError",
    "TaskInfo",
    "contract_data_val_offset",
    "decode_counter_entry",
    "decode_task_entry",
    "decode_task_entry_b64",
    "decode_task_scval",
    "decode_task_scval_b64",
    "skip_sc_address",
    "skip_scval",
]

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I128 = struct.Struct(">qQ")
_u32 = _U32.unpack_from
_u64 = _U64.unpack_from
_i128 = _I128.unpack_from

# SCValType
_BOOL, _VOID, _ERROR, _U32T, _I32T, _U64T, _I64T, _TIMEPOINT, _DURATION = range(9)
_U128T, _I128T, _U256T, _I256T, _BYTES, _STRING, _SYMBOL, _VEC, _MAP, _ADDRESS = range(9, 19)
_CONTRACT_INSTANCE, _LK_CONTRACT_INSTANCE, _LK_NONCE = 19, 20, 21

#: fixed payload size after the 4-byte type tag
_FIXED = {
    _BOOL: 4,
    _VOID: 0,
    _ERROR: 8,
    _U32T: 4,
    _I32T: 4,
    _U64T: 8,
    _I64T: 8,
    _TIMEPOINT: 8,
    _DURATION: 8,
    _U128T: 16,
    _I128T: 16,
    _U256T: 32,
    _I256T: 32,
    _LK_CONTRACT_INSTANCE: 0,
    _LK_NONCE: 8,
}

#: SCAddressType -> payload size after its 4-byte type tag
_ADDRESS_SIZE = {0: 36, 1: 32, 2: 40, 3: 36, 4: 32}

_LEDGER_ENTRY_CONTRACT_DATA = 6
_MAX_DEPTH = 32


class DecodeError(ValueError):
    """The bytes are not the XDR value we expected (truncated, garbage or wrong shape)."""


class TaskInfo:
    """The fields of a ``TaskConfig`` the keeper needs.

    ``whitelist`` holds each allowed keeper as its raw ``SCAddress`` XDR bytes, so a
    membership test is a bytes comparison with the keeper's own encoded address.
    """

    __slots__ = ("gas_balance", "has_resolver", "interval", "last_run", "whitelist")

    def __init__(
        self,
        interval: int,
        last_run: int,
        gas_balance: int,
        whitelist: tuple[bytes, ...],
        has_resolver: bool,
    ) -> None:
        self.interval = interval
        self.last_run = last_run
        self.gas_balance = gas_balance
        self.whitelist = whitelist
        self.has_resolver = has_resolver

    @property
    def next_run(self) -> int:
        return self.last_run + self.interval

    def __repr__(self) -> str:
        return (
            f"TaskInfo(interval={self.interval}, last_run={self.last_run}, "
            f"gas_balance={self.gas_balance}, whitelist={len(self.whitelist)} addr, "
            f"has_resolver={self.has_resolver})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskInfo):
            return NotImplemented
        return (
            self.interval == other.interval
            and self.last_run == other.last_run
            and self.gas_balance == other.gas_balance
            and self.whitelist == other.whitelist
            and self.has_resolver == other.has_resolver
        )

    __hash__ = None  # type: ignore[assignment]


def _pad(n: int) -> int:
    return (n + 3) & ~3


def _skip_address(buf: bytes, off: int) -> int:
    (kind,) = _u32(buf, off)
    size = _ADDRESS_SIZE.get(kind)
    if size is None:
        raise DecodeError(f"unknown SCAddress type {kind} at {off}")
    end = off + 4 + size
    if end > len(buf):
        raise DecodeError("truncated SCAddress")
    return end


def _skip_val(buf: bytes, off: int, depth: int = 0) -> int:
    """Offset just past the SCVal starting at ``off``."""
    if depth > _MAX_DEPTH:
        raise DecodeError("SCVal nested too deeply")
    (kind,) = _u32(buf, off)
    off += 4
    size = _FIXED.get(kind)
    if size is not None:
        end = off + size
    elif kind in (_SYMBOL, _STRING, _BYTES):
        (n,) = _u32(buf, off)
        end = off + 4 + _pad(n)
    elif kind == _ADDRESS:
        return _skip_address(buf, off)
    elif kind in (_VEC, _MAP):
        (present,) = _u32(buf, off)
        off += 4
        if present == 0:
            return off
        if present != 1:
            raise DecodeError("bad optional flag")
        (count,) = _u32(buf, off)
        off += 4
        if count > len(buf):
            raise DecodeError("collection count exceeds input")
        if kind == _VEC:
            for _ in range(count):
                off = _skip_val(buf, off, depth + 1)
        else:
            for _ in range(count):
                off = _skip_val(buf, off, depth + 1)
                off = _skip_val(buf, off, depth + 1)
        return off
    else:
        raise DecodeError(f"unsupported SCVal type {kind}")
    if end > len(buf):
        raise DecodeError("truncated SCVal")
    return end


def skip_sc_address(buf: bytes, off: int) -> int:
    """Offset just past the ``SCAddress`` at ``off``; raises :class:`DecodeError`."""
    try:
        return _skip_address(buf, off)
    except struct.error as exc:
        raise DecodeError(f"truncated XDR: {exc}") from None


def skip_scval(buf: bytes, off: int) -> int:
    """Offset just past the ``SCVal`` at ``off``; raises :class:`DecodeError`."""
    try:
        return _skip_val(buf, off)
    except struct.error as exc:
        raise DecodeError(f"truncated XDR: {exc}") from None


def contract_data_val_offset(buf: bytes) -> int:
    """Offset of the ``val`` SCVal inside a ``LedgerEntryData`` of type CONTRACT_DATA."""
    try:
        kind, ext = struct.unpack_from(">II", buf, 0)
        if kind != _LEDGER_ENTRY_CONTRACT_DATA:
            raise DecodeError(f"not a contract data entry (type {kind})")
        if ext != 0:
            raise DecodeError("unsupported ContractDataEntry extension")
        off = _skip_address(buf, 8)
        off = _skip_val(buf, off)
        off += 4  # durability
        if off >= len(buf):
            raise DecodeError("truncated ContractDataEntry")
        return off
    except struct.error as exc:
        raise DecodeError(f"truncated XDR: {exc}") from None


def decode_task_scval(buf: bytes, off: int = 0, *, exact: bool = True) -> TaskInfo | None:
    """Decode a ``TaskConfig`` ScMap (or ``None`` for ``ScVoid``, as ``get_task`` returns
    for a missing task) starting at ``off``. With ``exact`` the value must end the input."""
    try:
        (kind,) = _u32(buf, off)
        if kind == _VOID:
            if exact and off + 4 != len(buf):
                raise DecodeError("trailing bytes after SCVal")
            return None
        if kind != _MAP:
            raise DecodeError(f"TaskConfig must be an ScMap, got SCVal type {kind}")
        present, count = struct.unpack_from(">II", buf, off + 4)
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
            (kt, klen) = struct.unpack_from(">II", buf, off)
            if kt != _SYMBOL:
                raise DecodeError("TaskConfig key is not a symbol")
            kstart = off + 8
            off = kstart + _pad(klen)
            if off > n:
                raise DecodeError("truncated key")
            name = buf[kstart : kstart + klen]
            (vt,) = _u32(buf, off)
            if name == b"interval" or name == b"last_run":
                if vt != _U64T:
                    raise DecodeError(f"{name.decode()} is not u64")
                (v,) = _u64(buf, off + 4)
                off += 12
                if name == b"interval":
                    interval = v
                else:
                    last_run = v
            elif name == b"gas_balance":
                if vt != _I128T:
                    raise DecodeError("gas_balance is not i128")
                hi, lo = _i128(buf, off + 4)
                gas = (hi << 64) | lo
                off += 20
            elif name == b"resolver":
                has_resolver = vt != _VOID
                if has_resolver and vt != _ADDRESS:
                    raise DecodeError("resolver is neither void nor an address")
                off = _skip_val(buf, off)
            elif name == b"whitelist":
                if vt != _VEC:
                    raise DecodeError("whitelist is not a vec")
                (present,) = _u32(buf, off + 4)
                off += 8
                items: list[bytes] = []
                if present == 1:
                    (wn,) = _u32(buf, off)
                    off += 4
                    if wn > n:
                        raise DecodeError("whitelist count exceeds input")
                    for _ in range(wn):
                        (at,) = _u32(buf, off)
                        if at != _ADDRESS:
                            raise DecodeError("whitelist entry is not an address")
                        end = _skip_address(buf, off + 4)
                        items.append(buf[off + 4 : end])
                        off = end
                elif present != 0:
                    raise DecodeError("bad optional flag")
                whitelist = tuple(items)
            else:
                off = _skip_val(buf, off)
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


def _b64(data: str) -> bytes:
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise DecodeError(f"invalid base64: {exc}") from None


def decode_task_entry_b64(data: str) -> TaskInfo:
    """Decode a task's base64 ``LedgerEntryData`` as ``getLedgerEntries`` returns it."""
    return decode_task_entry(_b64(data))


def decode_task_scval_b64(data: str) -> TaskInfo | None:
    """Decode ``get_task``'s simulated return value (base64 SCVal)."""
    return decode_task_scval(_b64(data))


def decode_counter_entry(data: str) -> int:
    """The contract's ``Counter`` (u64) from its base64 ``LedgerEntryData``."""
    buf = _b64(data)
    off = contract_data_val_offset(buf)
    try:
        (kind,) = _u32(buf, off)
        if kind == _U32T:
            return _u32(buf, off + 4)[0]
        if kind != _U64T:
            raise DecodeError(f"Counter is not u64 (SCVal type {kind})")
        return _u64(buf, off + 4)[0]
    except struct.error as exc:
        raise DecodeError(f"truncated Counter: {exc}") from None
