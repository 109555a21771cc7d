"""The SoroTask ``TaskConfig`` whole, both ways, and the writer of task entries (the devnet's side).

:class:`TaskConfig` keeps every field (addresses as strkeys, ``args`` as encoded SCVals);
:func:`encode_task_config` and :func:`decode_task_config` turn it into the contract's ScMap and
back. :class:`TaskEncoder` writes ``Task(id)`` keys and entries from precomputed pieces, so
one task costs a few packs and a join (the devnet seeds 100k tasks through it). The layout
itself (field names, keys) is in :mod:`sorotask_core.contract`; the keeper reads with its fast
decoder.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from sorotask_core.contract import (
    COUNTER_KEY_SCVAL,
    TASK_FIELD_KEYS,
    TASK_FIELDS,
    TaskKeys,
    address_strkey,
    sc_address_bytes,
)
from sorotask_core.xdr import (
    LE_CONTRACT_DATA,
    SCV_ADDRESS,
    SCV_I128,
    SCV_MAP,
    SCV_SYMBOL,
    SCV_U64,
    SCV_VEC,
    SCV_VOID_VAL,
    DecodeError,
    add_u64,
    contract_data_entry,
    pack_u32,
    pack_u64,
    scv_address,
    scv_i128,
    scv_map,
    scv_symbol,
    scv_u64,
    scv_vec,
    skip_scval,
    unpack_i128,
    unpack_u32,
    unpack_u32_pair,
    unpack_u64,
)

__all__ = [
    "TaskConfig",
    "TaskEncoder",
    "counter_entry",
    "decode_task_config",
    "encode_task_config",
    "task_config_parts",
    "task_config_val",
]


def counter_entry(contract_id: str, value: int) -> bytes:
    """``LedgerEntryData`` of the ``Counter`` holding ``value``."""
    return contract_data_entry(sc_address_bytes(contract_id), COUNTER_KEY_SCVAL, scv_u64(value))


@dataclass(slots=True)
class TaskConfig:
    """The contract's whole ``TaskConfig``: addresses as strkeys, ``args`` as encoded SCVals."""

    creator: str
    target: str
    function: str
    args: list[bytes] = field(default_factory=list)
    resolver: str | None = None
    interval: int = 60
    last_run: int = 0
    gas_balance: int = 0
    whitelist: list[str] = field(default_factory=list)

    def next_run(self) -> int:
        return add_u64(self.last_run, self.interval)

    def is_due(self, ledger_time: int) -> bool:
        return self.gas_balance > 0 and ledger_time >= self.next_run()


def task_config_parts(
    *,
    creator: str,
    target: str,
    function: str,
    resolver: str | None,
    whitelist: Iterable[str],
    args: Iterable[bytes] = (),
) -> dict[str, bytes]:
    """Encoded SCVals of the non-numeric ``TaskConfig`` fields (``args`` already encoded)."""
    return {
        "args": scv_vec(list(args)),
        "creator": scv_address(sc_address_bytes(creator)),
        "function": scv_symbol(function.encode()),
        "resolver": scv_address(sc_address_bytes(resolver)) if resolver else SCV_VOID_VAL,
        "target": scv_address(sc_address_bytes(target)),
        "whitelist": scv_vec([scv_address(sc_address_bytes(a)) for a in whitelist]),
    }


def task_config_val(
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
    """``TaskConfig`` ScMap from the encoded fields of :func:`task_config_parts` and the
    numbers."""
    values = {
        "args": args,
        "creator": creator,
        "function": function,
        "gas_balance": scv_i128(gas_balance),
        "interval": scv_u64(interval),
        "last_run": scv_u64(last_run),
        "resolver": resolver,
        "target": target,
        "whitelist": whitelist,
    }
    return scv_map([(TASK_FIELD_KEYS[name], values[name]) for name in TASK_FIELDS])


def encode_task_config(cfg: TaskConfig) -> bytes:
    """``TaskConfig`` as the contract stores it: an ScMap with sorted symbol keys."""
    parts = task_config_parts(
        creator=cfg.creator,
        target=cfg.target,
        function=cfg.function,
        resolver=cfg.resolver,
        whitelist=cfg.whitelist,
        args=cfg.args,
    )
    return task_config_val(
        gas_balance=cfg.gas_balance, interval=cfg.interval, last_run=cfg.last_run, **parts
    )


def _items(buf: bytes, off: int, count: int) -> tuple[list[bytes], int]:
    """``count`` consecutive SCVals from ``off``, and the offset after them."""
    items = []
    for _ in range(count):
        end = skip_scval(buf, off)
        items.append(buf[off:end])
        off = end
    return items, off


def _collection(val: bytes, kind: int, what: str) -> list[bytes]:
    """The items of a present vec (``SCV_VEC``) or the keys and values of a map, in turn."""
    if len(val) < 12 or unpack_u32_pair(val, 0) != (kind, 1):
        raise DecodeError(f"{what} must be a present {'map' if kind == SCV_MAP else 'vec'}")
    (count,) = unpack_u32(val, 8)
    items, end = _items(val, 12, count * (2 if kind == SCV_MAP else 1))
    if end != len(val):
        raise DecodeError(f"trailing bytes after {what}")
    return items


def _tagged(val: bytes, kind: int, size: int, what: str) -> bytes:
    if len(val) != 4 + size or unpack_u32(val, 0)[0] != kind:
        raise DecodeError(f"{what} has the wrong SCVal type")
    return val[4:]


def _address(val: bytes, what: str) -> str:
    if unpack_u32(val, 0)[0] != SCV_ADDRESS:
        raise DecodeError(f"{what} is not an address")
    return address_strkey(val[4:])


def _symbol(val: bytes, what: str) -> str:
    if unpack_u32(val, 0)[0] != SCV_SYMBOL:
        raise DecodeError(f"{what} is not a symbol")
    try:
        return val[8 : 8 + unpack_u32(val, 4)[0]].decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{what} is not UTF-8") from None


def decode_task_config(val: bytes) -> TaskConfig:
    """The whole ``TaskConfig`` of an encoded ScMap (exactly one SCVal). As the contract's
    stellar-sdk reference: keys in any order (the last of a repeated key counts), unknown keys
    ignored, a missing field or a value of the wrong type refused with :class:`DecodeError`."""
    try:
        items = _collection(val, SCV_MAP, "TaskConfig")
        pairs = zip(items[::2], items[1::2], strict=True)
        fields = {_symbol(k, "TaskConfig key"): v for k, v in pairs}
        missing = [f for f in TASK_FIELDS if f not in fields]
        if missing:
            raise DecodeError(f"TaskConfig is missing fields: {', '.join(missing)}")
        resolver = fields["resolver"]
        hi, lo = unpack_i128(_tagged(fields["gas_balance"], SCV_I128, 16, "gas_balance"))
        return TaskConfig(
            creator=_address(fields["creator"], "creator"),
            target=_address(fields["target"], "target"),
            function=_symbol(fields["function"], "function"),
            args=_collection(fields["args"], SCV_VEC, "args"),
            resolver=None if resolver == SCV_VOID_VAL else _address(resolver, "resolver"),
            interval=unpack_u64(_tagged(fields["interval"], SCV_U64, 8, "interval"))[0],
            last_run=unpack_u64(_tagged(fields["last_run"], SCV_U64, 8, "last_run"))[0],
            gas_balance=(hi << 64) | lo,
            whitelist=[
                _address(a, "whitelist entry")
                for a in _collection(fields["whitelist"], SCV_VEC, "whitelist")
            ],
        )
    except struct.error as exc:
        raise DecodeError(f"truncated TaskConfig: {exc}") from None


class TaskEncoder:
    """``DataKey::Task(id)`` ledger keys and entries of one contract from precomputed pieces,
    so one task costs a few packs and a join (the devnet seeds 100k tasks through it)."""

    __slots__ = ("_entry_post", "_entry_pre", "contract_id", "keys")

    config_val = staticmethod(task_config_val)
    parts = staticmethod(task_config_parts)

    def __init__(self, contract_id: str) -> None:
        self.contract_id = contract_id
        self.keys = TaskKeys(contract_id)
        # LedgerEntryData: the type, ext v0, then the ledger key's fields and the value
        self._entry_pre = pack_u32(LE_CONTRACT_DATA) + pack_u32(0) + self.keys.prefix[4:]
        self._entry_post = self.keys.suffix

    def key(self, task_id: int) -> bytes:
        return self.keys.key_bytes(task_id)

    def entry(self, task_id: int, config_val: bytes) -> bytes:
        """``LedgerEntryData`` bytes of ``Task(task_id)`` holding ``config_val``."""
        return self._entry_pre + pack_u64(task_id) + self._entry_post + config_val
