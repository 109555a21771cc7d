"""Strict readers of the XDR a simulation answers with (the keeper's untrusted input).

Before anything from a ``simulateTransaction`` answer goes into a transaction the keeper parses
it completely: ``SorobanTransactionData``, ``SorobanAuthorizationEntry`` and ``SCVal``
well-formedness. These readers check every bound, discriminant, optional flag and padding byte
and that the value ends exactly where the input does; malformed input raises
:class:`~sorotask_core.xdr.DecodeError`. (The read path's lenient skipper is
:func:`sorotask_core.xdr.skip_scval`.)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sorotask_core.xdr import (
    DURABILITY_PERSISTENT,
    DURABILITY_TEMPORARY,
    LE_ACCOUNT,
    LE_CLAIMABLE_BALANCE,
    LE_CONFIG_SETTING,
    LE_CONTRACT_CODE,
    LE_CONTRACT_DATA,
    LE_DATA,
    LE_LIQUIDITY_POOL,
    LE_OFFER,
    LE_TRUSTLINE,
    LE_TTL,
    MAX_XDR_DEPTH,
    PUBLIC_KEY_TYPE_ED25519,
    SC_ADDRESS_ACCOUNT,
    SC_ADDRESS_CLAIMABLE_BALANCE,
    SC_ADDRESS_CONTRACT,
    SC_ADDRESS_LIQUIDITY_POOL,
    SC_ADDRESS_MUXED_ACCOUNT,
    SCSYMBOL_MAX,
    SCV_ADDRESS,
    SCV_BOOL,
    SCV_BYTES,
    SCV_ERROR,
    SCV_FIXED_SIZE,
    SCV_MAP,
    SCV_STRING,
    SCV_SYMBOL,
    SCV_VEC,
    DecodeError,
    unpack_i32,
    unpack_i64,
    unpack_u32,
)

__all__ = [
    "AUTH_FN_CONTRACT",
    "AUTH_FN_CREATE_CONTRACT",
    "AUTH_FN_CREATE_CONTRACT_V2",
    "MAX_XDR_DEPTH",
    "SOROBAN_CREDENTIALS_ADDRESS",
    "SOROBAN_CREDENTIALS_SOURCE_ACCOUNT",
    "AuthEntry",
    "SorobanData",
    "footprint_read_write",
    "parse_auth_entry",
    "parse_scval",
    "parse_soroban_data",
]

SOROBAN_CREDENTIALS_SOURCE_ACCOUNT, SOROBAN_CREDENTIALS_ADDRESS = 0, 1
#: SorobanAuthorizedFunctionType
AUTH_FN_CONTRACT, AUTH_FN_CREATE_CONTRACT, AUTH_FN_CREATE_CONTRACT_V2 = 0, 1, 2


class _Reader:
    """Bounds-checked XDR reader over one input; every failure is a :class:`DecodeError`."""

    __slots__ = ("buf", "off", "what")

    def __init__(self, buf: bytes, what: str) -> None:
        if not isinstance(buf, bytes | bytearray | memoryview):
            raise DecodeError(f"{what}: expected bytes, got {type(buf).__name__}")
        self.buf = bytes(buf)
        self.off = 0
        self.what = what

    def fail(self, why: str) -> DecodeError:
        return DecodeError(f"{self.what}: {why} at byte {self.off}")

    def take(self, n: int) -> bytes:
        end = self.off + n
        if n < 0 or end > len(self.buf):
            raise self.fail("truncated")
        data = self.buf[self.off : end]
        self.off = end
        return data

    def u32(self) -> int:
        return int(unpack_u32(self.take(4), 0)[0])

    def i32(self) -> int:
        return int(unpack_i32(self.take(4), 0)[0])

    def i64(self) -> int:
        return int(unpack_i64(self.take(8), 0)[0])

    def flag(self) -> bool:
        """An XDR bool or an optional's presence flag: exactly 0 or 1."""
        value = self.u32()
        if value > 1:
            raise self.fail(f"boolean/optional flag {value}")
        return value == 1

    def padded(self, n: int) -> bytes:
        data = self.take(n)
        if any(self.take(-n % 4)):
            raise self.fail("non-zero padding")
        return data

    def var_opaque(self, max_len: int | None = None) -> bytes:
        n = self.u32()
        if max_len is not None and n > max_len:
            raise self.fail(f"length {n} exceeds the maximum {max_len}")
        return self.padded(n)

    def count(self, min_item: int = 4, max_n: int | None = None) -> int:
        """A variable array's count, refused when the rest of the input cannot hold it."""
        n = self.u32()
        if (max_n is not None and n > max_n) or n * min_item > len(self.buf) - self.off:
            raise self.fail(f"array count {n} exceeds the input")
        return n

    def end(self) -> None:
        if self.off != len(self.buf):
            raise self.fail(f"{len(self.buf) - self.off} trailing byte(s)")


def _r_public_key(r: _Reader) -> None:
    if r.u32() != PUBLIC_KEY_TYPE_ED25519:
        raise r.fail("unknown PublicKey type")
    r.take(32)


def _r_sc_address(r: _Reader) -> bytes:
    start = r.off
    kind = r.u32()
    if kind == SC_ADDRESS_ACCOUNT:
        _r_public_key(r)
    elif kind in (SC_ADDRESS_CONTRACT, SC_ADDRESS_LIQUIDITY_POOL):  # a 32-byte hash
        r.take(32)
    elif kind == SC_ADDRESS_MUXED_ACCOUNT:  # uint64 id, ed25519
        r.take(40)
    elif kind == SC_ADDRESS_CLAIMABLE_BALANCE:  # ClaimableBalanceID (type 0, hash)
        if r.u32() != 0:
            raise r.fail("unknown ClaimableBalanceID type")
        r.take(32)
    else:
        raise r.fail(f"unknown SCAddress type {kind}")
    return r.buf[start : r.off]


def _r_scval(r: _Reader, depth: int = 0) -> None:
    if depth > MAX_XDR_DEPTH:
        raise r.fail("SCVal nested too deeply")
    kind = r.u32()
    if kind == SCV_BOOL:
        r.flag()
    elif kind == SCV_ERROR:
        etype = r.i32()
        if not 0 <= etype <= 9:
            raise r.fail(f"unknown SCErrorType {etype}")
        r.take(4)  # contract code (uint32) or SCErrorCode (int32)
    elif kind in SCV_FIXED_SIZE:  # numbers, void, the instance key, the nonce key's int64
        r.take(SCV_FIXED_SIZE[kind])
    elif kind in (SCV_BYTES, SCV_STRING):
        r.var_opaque()
    elif kind == SCV_SYMBOL:
        r.var_opaque(SCSYMBOL_MAX)
    elif kind == SCV_ADDRESS:
        _r_sc_address(r)
    elif kind in (SCV_VEC, SCV_MAP):
        if r.flag():
            per = 2 if kind == SCV_MAP else 1
            for _ in range(r.count(4 * per)):
                for _ in range(per):
                    _r_scval(r, depth + 1)
    else:  # SCV_CONTRACT_INSTANCE (never an argument or a signature) and unknown tags
        raise r.fail(f"unsupported SCVal type {kind}")


def _r_account_id(r: _Reader) -> None:
    _r_public_key(r)


def _r_asset(r: _Reader, *, pool_share: bool) -> None:
    kind = r.u32()
    if kind == 0:  # native
        return
    if kind in (1, 2):  # credit alphanum 4 / 12: code, issuer
        r.take(4 if kind == 1 else 12)
        _r_account_id(r)
    elif kind == 3 and pool_share:  # TrustLineAsset pool share: PoolID
        r.take(32)
    else:
        raise r.fail(f"unknown asset type {kind}")


def _r_ledger_key(r: _Reader) -> bytes:
    start = r.off
    kind = r.u32()
    if kind == LE_ACCOUNT:
        _r_account_id(r)
    elif kind == LE_TRUSTLINE:
        _r_account_id(r)
        _r_asset(r, pool_share=True)
    elif kind == LE_OFFER:  # seller, int64 offer id
        _r_account_id(r)
        r.i64()
    elif kind == LE_DATA:  # account id, string64 name
        _r_account_id(r)
        r.var_opaque(64)
    elif kind == LE_CLAIMABLE_BALANCE:
        if r.u32() != 0:
            raise r.fail("unknown ClaimableBalanceID type")
        r.take(32)
    elif kind in (LE_LIQUIDITY_POOL, LE_CONTRACT_CODE, LE_TTL):  # a 32-byte hash
        r.take(32)
    elif kind == LE_CONTRACT_DATA:
        _r_sc_address(r)
        _r_scval(r)
        if r.u32() not in (DURABILITY_TEMPORARY, DURABILITY_PERSISTENT):
            raise r.fail("unknown ContractDataDurability")
    elif kind == LE_CONFIG_SETTING:  # ConfigSettingID
        r.i32()
    else:
        raise r.fail(f"unknown LedgerKey type {kind}")
    return r.buf[start : r.off]


@dataclass(frozen=True, slots=True)
class SorobanData:
    """A parsed ``SorobanTransactionData`` (ledger keys as raw XDR)."""

    read_only: tuple[bytes, ...]
    read_write: tuple[bytes, ...]
    instructions: int
    disk_read_bytes: int
    write_bytes: int
    resource_fee: int
    #: ``SorobanResourcesExtV0.archivedSorobanEntries`` (indices into ``read_write``)
    archived: tuple[int, ...] = ()


def parse_soroban_data(data: bytes) -> SorobanData:
    """Parse a ``SorobanTransactionData`` strictly; raises :class:`DecodeError`."""
    r = _Reader(data, "SorobanTransactionData")
    try:
        ext = r.u32()
        archived: tuple[int, ...] = ()
        if ext == 1:
            archived = tuple(r.u32() for _ in range(r.count(4)))
        elif ext != 0:
            raise r.fail(f"unknown ext {ext}")
        read_only = tuple(_r_ledger_key(r) for _ in range(r.count(8)))
        read_write = tuple(_r_ledger_key(r) for _ in range(r.count(8)))
        instructions, disk_read, write = r.u32(), r.u32(), r.u32()
        fee = r.i64()
        r.end()
    except struct.error as exc:  # pragma: no cover - _Reader.take bounds every read
        raise DecodeError(f"SorobanTransactionData: {exc}") from None
    return SorobanData(read_only, read_write, instructions, disk_read, write, fee, archived)


def parse_scval(data: bytes) -> None:
    """Check that ``data`` is exactly one well-formed ``SCVal``; raises :class:`DecodeError`."""
    r = _Reader(data, "SCVal")
    _r_scval(r)
    r.end()


@dataclass(frozen=True, slots=True)
class AuthEntry:
    """A parsed ``SorobanAuthorizationEntry`` (values as raw XDR)."""

    #: SOROBAN_CREDENTIALS_SOURCE_ACCOUNT or SOROBAN_CREDENTIALS_ADDRESS
    credentials: int
    #: the authorizing ``SCAddress`` (address credentials only)
    address: bytes | None
    nonce: int
    signature_expiration_ledger: int
    #: the root invocation's ``SorobanAuthorizedFunctionType``
    function_type: int
    #: ``contractAddress`` / ``functionName`` / ``args`` of a contract-function root
    contract: bytes | None
    function: bytes | None
    args: tuple[bytes, ...]
    #: sub-invocations in the whole tree below the root
    sub_invocations: int


def _r_contract_fn(r: _Reader) -> tuple[bytes, bytes, tuple[bytes, ...]]:
    contract = _r_sc_address(r)
    function = r.var_opaque(SCSYMBOL_MAX)
    args = []
    for _ in range(r.count(4)):
        start = r.off
        _r_scval(r, 1)
        args.append(r.buf[start : r.off])
    return contract, function, tuple(args)


def _r_create_contract(r: _Reader, v2: bool) -> None:
    preimage = r.u32()
    if preimage == 0:  # from address: address, uint256 salt
        _r_sc_address(r)
        r.take(32)
    elif preimage == 1:  # from asset
        _r_asset(r, pool_share=False)
    else:
        raise r.fail(f"unknown ContractIDPreimage type {preimage}")
    executable = r.u32()
    if executable == 0:  # wasm hash
        r.take(32)
    elif executable != 1:  # 1: stellar asset (void)
        raise r.fail(f"unknown ContractExecutable type {executable}")
    if v2:
        for _ in range(r.count(4)):
            _r_scval(r, 1)


def _r_invocation(r: _Reader, depth: int, root: list[object]) -> int:
    """Skip a ``SorobanAuthorizedInvocation``; returns its sub-invocation count (all
    levels). At depth 0 the root function's parts go into ``root``."""
    if depth > MAX_XDR_DEPTH:
        raise r.fail("authorized invocations nested too deeply")
    kind = r.u32()
    if kind == AUTH_FN_CONTRACT:
        parts = _r_contract_fn(r)
    elif kind in (AUTH_FN_CREATE_CONTRACT, AUTH_FN_CREATE_CONTRACT_V2):
        _r_create_contract(r, kind == AUTH_FN_CREATE_CONTRACT_V2)
        parts = (None, None, ())
    else:
        raise r.fail(f"unknown SorobanAuthorizedFunction type {kind}")
    if depth == 0:
        root.extend((kind, *parts))
    total = 0
    for _ in range(r.count(8)):
        total += 1 + _r_invocation(r, depth + 1, root)
    return total


def parse_auth_entry(data: bytes) -> AuthEntry:
    """Parse a ``SorobanAuthorizationEntry`` strictly; raises :class:`DecodeError`."""
    r = _Reader(data, "SorobanAuthorizationEntry")
    creds = r.u32()
    address: bytes | None = None
    nonce = expiration = 0
    if creds == SOROBAN_CREDENTIALS_ADDRESS:
        address = _r_sc_address(r)
        nonce = r.i64()
        expiration = r.u32()
        _r_scval(r)  # signature
    elif creds != SOROBAN_CREDENTIALS_SOURCE_ACCOUNT:
        raise r.fail(f"unknown SorobanCredentials type {creds}")
    root: list[object] = []
    subs = _r_invocation(r, 0, root)
    r.end()
    kind, contract, function, args = root
    return AuthEntry(
        credentials=creds,
        address=address,
        nonce=nonce,
        signature_expiration_ledger=expiration,
        function_type=kind,  # type: ignore[arg-type]
        contract=contract,  # type: ignore[arg-type]
        function=function,  # type: ignore[arg-type]
        args=args,  # type: ignore[arg-type]
        sub_invocations=subs,
    )


def footprint_read_write(transaction_data: bytes) -> list[bytes]:
    """The read-write ``LedgerKey``\\ s (raw XDR) of a ``SorobanTransactionData`` (parsed
    strictly: see :func:`parse_soroban_data`)."""
    return list(parse_soroban_data(transaction_data).read_write)
