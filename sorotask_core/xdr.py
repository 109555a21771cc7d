"""XDR primitives and the Stellar type codes, written once (no stellar-sdk).

Written from the XDR definitions (Stellar-contract.x, Stellar-ledger-entries.x). XDR is
big-endian; every item is padded to 4 bytes; a union is its int32 discriminant followed by the
arm; an optional is a 4-byte 0/1 flag then the value; a variable array is a 4-byte count then
the items.

Here: pack and unpack helpers, the ``SCValType``/``SCAddressType``/``LedgerEntryType`` codes,
``SCVal`` and ``SCAddress`` encoders, the ledger keys and entries the project writes, a lenient
fast ``SCVal`` skipper for the read path, and ``AccountEntry`` both ways. Malformed input raises
:class:`DecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "SCV_FIXED_SIZE",
    "AccountEntryInfo",
    "DecodeError",
    "account_entry",
    "account_ledger_key",
    "add_u64",
    "b64decode",
    "b64encode",
    "contract_data_entry",
    "contract_data_ledger_key",
    "contract_data_val_offset",
    "opaque_var",
    "pad",
    "parse_account_entry",
    "sc_address_account",
    "sc_address_contract",
    "scv_address",
    "scv_bytes",
    "scv_i128",
    "scv_map",
    "scv_symbol",
    "scv_u64",
    "scv_vec",
    "skip_sc_address",
    "skip_scval",
]


class DecodeError(ValueError):
    """The bytes are not the XDR value we expected (truncated, garbage or wrong shape)."""


# ---------------------------------------------------------------- pack and unpack

pack_u32 = struct.Struct(">I").pack
pack_i32 = struct.Struct(">i").pack
pack_u64 = struct.Struct(">Q").pack
pack_i64 = struct.Struct(">q").pack
#: ``(tag, value)``: an SCVal tag and its uint64 payload in one pack
pack_tag_u64 = struct.Struct(">IQ").pack
#: ``(tag, hi, lo)``: an SCVal tag and an int128 as its signed high and unsigned low halves
pack_tag_i128 = struct.Struct(">IqQ").pack
#: ``(tag, present, count)``: an SCVal vec or map header
pack_tag_vec = struct.Struct(">III").pack
unpack_u32 = struct.Struct(">I").unpack_from
unpack_i32 = struct.Struct(">i").unpack_from
unpack_u64 = struct.Struct(">Q").unpack_from
unpack_i64 = struct.Struct(">q").unpack_from
#: two uint32 at once (a tag and a length, a flag and a count)
unpack_u32_pair = struct.Struct(">II").unpack_from
#: an int128 as (signed high, unsigned low)
unpack_i128 = struct.Struct(">qQ").unpack_from

U64_MASK = 0xFFFF_FFFF_FFFF_FFFF


def add_u64(a: int, b: int) -> int:
    """``a + b`` on u64 as a contract's release build computes it (no overflow checks): wraps
    at 2^64. The SoroTask due time is ``add_u64(last_run, interval)`` everywhere the keeper
    computes it (``contract.TaskInfo.next_run``, ``taskconfig.TaskConfig``, the compact task
    state)."""
    return (a + b) & U64_MASK


def pad(data: bytes) -> bytes:
    """``data`` zero-padded to a multiple of 4 bytes."""
    return data + b"\0" * (-len(data) % 4)


def padded_len(n: int) -> int:
    return (n + 3) & ~3


def opaque_var(data: bytes) -> bytes:
    """Variable-length opaque (or string): length, bytes, padding."""
    return pack_u32(len(data)) + pad(data)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(data: str) -> bytes:
    """Strict base64 (canonical alphabet and padding); raises :class:`DecodeError`."""
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise DecodeError(f"invalid base64: {exc}") from None


# ---------------------------------------------------------------- type codes

# SCValType
SCV_BOOL, SCV_VOID, SCV_ERROR, SCV_U32, SCV_I32, SCV_U64, SCV_I64 = range(7)
SCV_TIMEPOINT, SCV_DURATION, SCV_U128, SCV_I128, SCV_U256, SCV_I256 = range(7, 13)
SCV_BYTES, SCV_STRING, SCV_SYMBOL, SCV_VEC, SCV_MAP, SCV_ADDRESS = range(13, 19)
SCV_CONTRACT_INSTANCE, SCV_LEDGER_KEY_CONTRACT_INSTANCE, SCV_LEDGER_KEY_NONCE = 19, 20, 21

#: payload size after the 4-byte tag of every fixed-size ``SCVal`` type
SCV_FIXED_SIZE = {
    SCV_BOOL: 4,
    SCV_VOID: 0,
    SCV_ERROR: 8,
    SCV_U32: 4,
    SCV_I32: 4,
    SCV_U64: 8,
    SCV_I64: 8,
    SCV_TIMEPOINT: 8,
    SCV_DURATION: 8,
    SCV_U128: 16,
    SCV_I128: 16,
    SCV_U256: 32,
    SCV_I256: 32,
    SCV_LEDGER_KEY_CONTRACT_INSTANCE: 0,
    SCV_LEDGER_KEY_NONCE: 8,
}
#: longest ``SCSymbol``
SCSYMBOL_MAX = 32

# SCAddressType, and the payload size after its 4-byte tag
SC_ADDRESS_ACCOUNT, SC_ADDRESS_CONTRACT, SC_ADDRESS_MUXED_ACCOUNT = 0, 1, 2
SC_ADDRESS_CLAIMABLE_BALANCE, SC_ADDRESS_LIQUIDITY_POOL = 3, 4
SC_ADDRESS_SIZE = {0: 36, 1: 32, 2: 40, 3: 36, 4: 32}
PUBLIC_KEY_TYPE_ED25519 = 0

# LedgerEntryType
LE_ACCOUNT, LE_TRUSTLINE, LE_OFFER, LE_DATA, LE_CLAIMABLE_BALANCE = range(5)
LE_LIQUIDITY_POOL, LE_CONTRACT_DATA, LE_CONTRACT_CODE, LE_CONFIG_SETTING, LE_TTL = range(5, 10)
# ContractDataDurability
DURABILITY_TEMPORARY, DURABILITY_PERSISTENT = 0, 1

#: deepest ``SCVal`` nesting accepted (only keeps recursion bounded)
MAX_XDR_DEPTH = 32


# ---------------------------------------------------------------- SCAddress and SCVal


def sc_address_account(public_key: bytes) -> bytes:
    """``SCAddress`` of an account: SC_ADDRESS_TYPE_ACCOUNT, PUBLIC_KEY_TYPE_ED25519, key."""
    return pack_u32(SC_ADDRESS_ACCOUNT) + pack_u32(PUBLIC_KEY_TYPE_ED25519) + public_key


def sc_address_contract(contract_hash: bytes) -> bytes:
    """``SCAddress`` of a contract: SC_ADDRESS_TYPE_CONTRACT and the 32-byte contract id."""
    return pack_u32(SC_ADDRESS_CONTRACT) + contract_hash


SCV_VOID_VAL = pack_u32(SCV_VOID)
SCV_LEDGER_KEY_CONTRACT_INSTANCE_VAL = pack_u32(SCV_LEDGER_KEY_CONTRACT_INSTANCE)


def scv_address(sc_address: bytes) -> bytes:
    return pack_u32(SCV_ADDRESS) + sc_address


def scv_u64(value: int) -> bytes:
    return pack_tag_u64(SCV_U64, value)


def scv_i128(value: int) -> bytes:
    return pack_tag_i128(SCV_I128, value >> 64, value & U64_MASK)


def scv_symbol(name: bytes) -> bytes:
    return pack_u32(SCV_SYMBOL) + opaque_var(name)


def scv_bytes(data: bytes) -> bytes:
    return pack_u32(SCV_BYTES) + opaque_var(data)


def scv_vec(items: Sequence[bytes]) -> bytes:
    """``SCV_VEC`` with a present (non-null) vector of already-encoded ``SCVal``\\ s."""
    return pack_tag_vec(SCV_VEC, 1, len(items)) + b"".join(items)


def scv_map(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    """``SCV_MAP`` of encoded (key, value) pairs, in the order given (callers sort)."""
    return pack_tag_vec(SCV_MAP, 1, len(pairs)) + b"".join(k + v for k, v in pairs)


# ---------------------------------------------------------------- ledger keys and entries


def account_ledger_key(public_key: bytes) -> bytes:
    """``LedgerKey`` ACCOUNT of an ed25519 account."""
    return pack_u32(LE_ACCOUNT) + pack_u32(PUBLIC_KEY_TYPE_ED25519) + public_key


def contract_data_ledger_key(
    contract: bytes, key_scval: bytes, durability: int = DURABILITY_PERSISTENT
) -> bytes:
    """``LedgerKey`` CONTRACT_DATA: the contract's ``SCAddress``, key ``SCVal``, durability."""
    return pack_u32(LE_CONTRACT_DATA) + contract + key_scval + pack_u32(durability)


def contract_data_entry(
    contract: bytes, key_scval: bytes, val: bytes, durability: int = DURABILITY_PERSISTENT
) -> bytes:
    """``LedgerEntryData`` CONTRACT_DATA (ext v0): the ledger key's fields, then ``val``."""
    return (
        pack_u32(LE_CONTRACT_DATA) + pack_u32(0) + contract + key_scval + pack_u32(durability) + val
    )


# ---------------------------------------------------------------- fast skipping (read path)
#
# Lenient but bounded: tags, lengths and counts are checked against the input, inner
# discriminants of addresses are not (the strict readers in shard_worker check everything).


def _skip_address(buf: bytes, off: int) -> int:
    (kind,) = unpack_u32(buf, off)
    size = SC_ADDRESS_SIZE.get(kind)
    if size is None:
        raise DecodeError(f"unknown SCAddress type {kind} at {off}")
    end = off + 4 + size
    if end > len(buf):
        raise DecodeError("truncated SCAddress")
    return end


def _skip_val(buf: bytes, off: int, depth: int = 0) -> int:
    """Offset just past the SCVal starting at ``off``."""
    if depth > MAX_XDR_DEPTH:
        raise DecodeError("SCVal nested too deeply")
    (kind,) = unpack_u32(buf, off)
    off += 4
    size = SCV_FIXED_SIZE.get(kind)
    if size is not None:
        end = off + size
    elif kind in (SCV_SYMBOL, SCV_STRING, SCV_BYTES):
        (n,) = unpack_u32(buf, off)
        end = off + 4 + padded_len(n)
    elif kind == SCV_ADDRESS:
        return _skip_address(buf, off)
    elif kind in (SCV_VEC, SCV_MAP):
        (present,) = unpack_u32(buf, off)
        off += 4
        if present == 0:
            return off
        if present != 1:
            raise DecodeError("bad optional flag")
        (count,) = unpack_u32(buf, off)
        off += 4
        if count > len(buf):
            raise DecodeError("collection count exceeds input")
        if kind == SCV_MAP:
            count *= 2
        for _ in range(count):
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
        kind, ext = unpack_u32_pair(buf, 0)
        if kind != LE_CONTRACT_DATA:
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


# ---------------------------------------------------------------- AccountEntry

#: balance, seqNum, numSubEntries, inflationDest (absent), flags, homeDomain (empty),
#: thresholds (master weight 1), signers (none), ext v0
_ACCOUNT_TAIL = struct.Struct(">qqIIII4sII").pack


def account_entry(public_key: bytes, balance: int, seq_num: int) -> bytes:
    """``LedgerEntryData`` ACCOUNT: master key weight 1, no signers, no sub-entries."""
    return account_ledger_key(public_key) + _ACCOUNT_TAIL(
        balance, seq_num, 0, 0, 0, 0, b"\x01\x00\x00\x00", 0, 0
    )


@dataclass(frozen=True, slots=True)
class AccountEntryInfo:
    sequence: int
    balance: int
    num_sub_entries: int
    selling_liabilities: int = 0
    num_sponsoring: int = 0
    num_sponsored: int = 0


def _skip_account_id(buf: bytes, off: int) -> int:
    (kind,) = unpack_u32(buf, off)
    if kind != PUBLIC_KEY_TYPE_ED25519:
        raise DecodeError(f"unknown PublicKey type {kind}")
    return off + 36


def parse_account_entry(data: bytes) -> AccountEntryInfo:
    """Sequence, balance, sub-entries, selling liabilities and sponsorship counts of a
    ``LedgerEntryData`` of type ACCOUNT."""
    buf = data
    try:
        (kind,) = unpack_u32(buf, 0)
        if kind != LE_ACCOUNT:
            raise DecodeError(f"not an account entry (type {kind})")
        off = _skip_account_id(buf, 4)
        (balance,) = unpack_i64(buf, off)
        (sequence,) = unpack_i64(buf, off + 8)
        (subentries,) = unpack_u32(buf, off + 16)
        off += 20
        (has_inflation,) = unpack_u32(buf, off)
        off += 4
        if has_inflation:
            off = _skip_account_id(buf, off)
        off += 4  # flags
        (n,) = unpack_u32(buf, off)
        off += 4 + n + (-n % 4) + 4  # home domain, thresholds
        (n_signers,) = unpack_u32(buf, off)
        off += 4
        if n_signers > 20:
            raise DecodeError("too many signers")
        for _ in range(n_signers):
            (skind,) = unpack_u32(buf, off)
            off += 4 + 32
            if skind == 3:  # ed25519 signed payload: opaque payload<64>
                (n,) = unpack_u32(buf, off)
                off += 4 + n + (-n % 4)
            elif skind not in (0, 1, 2):
                raise DecodeError(f"unknown signer key type {skind}")
            off += 4  # weight
        (ext,) = unpack_u32(buf, off)
        selling = sponsoring = sponsored = 0
        if ext == 1:
            (selling,) = unpack_i64(buf, off + 12)  # liabilities: buying, selling
            (ext2,) = unpack_u32(buf, off + 20)
            if ext2 == 2:
                sponsored, sponsoring = unpack_u32_pair(buf, off + 24)
        elif ext != 0:
            raise DecodeError(f"unknown AccountEntry ext {ext}")
    except struct.error as exc:
        raise DecodeError(f"truncated AccountEntry: {exc}") from None
    return AccountEntryInfo(sequence, balance, subentries, selling, sponsoring, sponsored)
