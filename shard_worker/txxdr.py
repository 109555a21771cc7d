"""The few Stellar XDR values the keeper writes and reads, packed by hand (no stellar-sdk).

Written from the XDR definitions (Stellar-transaction.x, Stellar-ledger-entries.x,
Stellar-contract.x). XDR is big-endian; every item is padded to 4 bytes; a union is its
int32 discriminant followed by the arm; an optional is a 4-byte 0/1 flag then the value; a
variable array is a 4-byte count then the items.

Writes: ledger keys, ``SCVal``\\ s, a ``Transaction`` holding one ``InvokeHostFunctionOp``
(``HOST_FUNCTION_TYPE_INVOKE_CONTRACT``), its ``TransactionEnvelope`` (``ENVELOPE_TYPE_TX``),
its hash, and a signed ``SorobanAuthorizationEntry`` for the default account contract.
Reads: ``SorobanTransactionData`` and ``SorobanAuthorizationEntry`` (strictly: every bound,
discriminant, flag and padding byte, nothing left over), ``SCVal`` well-formedness,
``TransactionResult`` codes and fees, and ``AccountEntry`` sequence and balances. Malformed
input raises :class:`DecodeError`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from shard_worker.decode import DecodeError, skip_sc_address, skip_scval
from shard_worker.keys import Signer

__all__ = [
    "TX_RESULT_NAMES",
    "AccountEntryInfo",
    "AuthEntry",
    "InvokeTx",
    "SorobanData",
    "account_ledger_key",
    "contract_data_ledger_key",
    "footprint_read_write",
    "network_id",
    "parse_account_entry",
    "parse_auth_entry",
    "parse_scval",
    "parse_soroban_data",
    "parse_transaction_result",
    "sc_address_account",
    "sc_address_contract",
    "scv_address",
    "scv_bytes",
    "scv_map",
    "scv_symbol",
    "scv_u64",
    "scv_vec",
    "sign_auth_entry",
]

_U32 = struct.Struct(">I").pack
_I32 = struct.Struct(">i").pack
_U64 = struct.Struct(">Q").pack
_I64 = struct.Struct(">q").pack
_u32 = struct.Struct(">I").unpack_from
_i32 = struct.Struct(">i").unpack_from
_i64 = struct.Struct(">q").unpack_from

# SCValType
SCV_VOID, SCV_U64, SCV_BYTES, SCV_SYMBOL, SCV_VEC, SCV_MAP, SCV_ADDRESS = 1, 5, 13, 15, 16, 17, 18
SCV_LEDGER_KEY_CONTRACT_INSTANCE = 20
# EnvelopeType
ENVELOPE_TYPE_TX = 2
ENVELOPE_TYPE_SOROBAN_AUTHORIZATION = 9
# LedgerEntryType
LE_ACCOUNT, LE_CONTRACT_DATA = 0, 6
DURABILITY_PERSISTENT = 1
OP_INVOKE_HOST_FUNCTION = 24
HOST_FUNCTION_TYPE_INVOKE_CONTRACT = 0
PRECOND_NONE, PRECOND_TIME = 0, 1
SOROBAN_CREDENTIALS_SOURCE_ACCOUNT, SOROBAN_CREDENTIALS_ADDRESS = 0, 1

TX_RESULT_NAMES = {
    1: "txFEE_BUMP_INNER_SUCCESS",
    0: "txSUCCESS",
    -1: "txFAILED",
    -2: "txTOO_EARLY",
    -3: "txTOO_LATE",
    -4: "txMISSING_OPERATION",
    -5: "txBAD_SEQ",
    -6: "txBAD_AUTH",
    -7: "txINSUFFICIENT_BALANCE",
    -8: "txNO_ACCOUNT",
    -9: "txINSUFFICIENT_FEE",
    -10: "txBAD_AUTH_EXTRA",
    -11: "txINTERNAL_ERROR",
    -12: "txNOT_SUPPORTED",
    -13: "txFEE_BUMP_INNER_FAILED",
    -14: "txBAD_SPONSORSHIP",
    -15: "txBAD_MIN_SEQ_AGE_OR_GAP",
    -16: "txMALFORMED",
    -17: "txSOROBAN_INVALID",
    -18: "txFROZEN_KEY_ACCESSED",
}


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _opaque_var(data: bytes) -> bytes:
    return _U32(len(data)) + _pad(data)


def network_id(passphrase: str) -> bytes:
    """SHA-256 of the network passphrase."""
    return hashlib.sha256(passphrase.encode()).digest()


# ---------------------------------------------------------------- SCAddress and SCVal


def sc_address_account(public_key: bytes) -> bytes:
    """``SCAddress`` of an account: SC_ADDRESS_TYPE_ACCOUNT, PUBLIC_KEY_TYPE_ED25519."""
    return _U32(0) + _U32(0) + public_key


def sc_address_contract(contract_hash: bytes) -> bytes:
    """``SCAddress`` of a contract: SC_ADDRESS_TYPE_CONTRACT and the 32-byte contract id."""
    return _U32(1) + contract_hash


def scv_address(sc_address: bytes) -> bytes:
    return _U32(SCV_ADDRESS) + sc_address


def scv_u64(value: int) -> bytes:
    return _U32(SCV_U64) + _U64(value)


def scv_symbol(name: bytes) -> bytes:
    return _U32(SCV_SYMBOL) + _opaque_var(name)


def scv_bytes(data: bytes) -> bytes:
    return _U32(SCV_BYTES) + _opaque_var(data)


def scv_vec(items: Sequence[bytes]) -> bytes:
    """``SCV_VEC`` with a present (non-null) vector of already-encoded ``SCVal``\\ s."""
    return _U32(SCV_VEC) + _U32(1) + _U32(len(items)) + b"".join(items)


def scv_map(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    """``SCV_MAP`` of encoded (key, value) pairs, in the order given (callers sort)."""
    return _U32(SCV_MAP) + _U32(1) + _U32(len(pairs)) + b"".join(k + v for k, v in pairs)


# ---------------------------------------------------------------- ledger keys


def account_ledger_key(public_key: bytes) -> bytes:
    """``LedgerKey`` ACCOUNT of an ed25519 account."""
    return _U32(LE_ACCOUNT) + _U32(0) + public_key


def contract_data_ledger_key(
    contract_hash: bytes, key_scval: bytes, durability: int = DURABILITY_PERSISTENT
) -> bytes:
    """``LedgerKey`` CONTRACT_DATA: contract address, key ``SCVal``, durability."""
    return (
        _U32(LE_CONTRACT_DATA) + sc_address_contract(contract_hash) + key_scval + _U32(durability)
    )


def instance_scval() -> bytes:
    return _U32(SCV_LEDGER_KEY_CONTRACT_INSTANCE)


def _skip_account_id(buf: bytes, off: int) -> int:
    (kind,) = _u32(buf, off)
    if kind != 0:
        raise DecodeError(f"unknown PublicKey type {kind}")
    return off + 36


def footprint_read_write(transaction_data: bytes) -> list[bytes]:
    """The read-write ``LedgerKey``\\ s (raw XDR) of a ``SorobanTransactionData`` (parsed
    strictly: see :func:`parse_soroban_data`)."""
    return list(parse_soroban_data(transaction_data).read_write)


# ---------------------------------------------------------------- transactions


@dataclass(slots=True)
class InvokeTx:
    """A ``Transaction`` with one contract invocation, as its parts (all raw XDR).

    ``sequence`` is the transaction's own sequence number (the account's current one + 1).
    ``args`` are encoded ``SCVal``\\ s, ``auth`` encoded ``SorobanAuthorizationEntry``\\ s and
    ``soroban_data`` an encoded ``SorobanTransactionData`` (None: ext v0).
    """

    source: bytes
    fee: int
    sequence: int
    contract: bytes
    function: bytes
    args: Sequence[bytes]
    time_bounds: tuple[int, int] | None = None
    auth: Sequence[bytes] = ()
    soroban_data: bytes | None = None
    signatures: list[tuple[bytes, bytes]] = field(default_factory=list)

    def tx_bytes(self) -> bytes:
        if not 0 <= self.fee <= 0xFFFF_FFFF:
            raise ValueError(f"fee {self.fee} does not fit a uint32")
        if self.time_bounds is None:
            cond = _U32(PRECOND_NONE)
        else:
            cond = _U32(PRECOND_TIME) + _U64(self.time_bounds[0]) + _U64(self.time_bounds[1])
        op = b"".join(
            (
                _U32(0),  # no operation source account
                _U32(OP_INVOKE_HOST_FUNCTION),
                _U32(HOST_FUNCTION_TYPE_INVOKE_CONTRACT),
                sc_address_contract(self.contract),
                _opaque_var(self.function),
                _U32(len(self.args)),
                *self.args,
                _U32(len(self.auth)),
                *self.auth,
            )
        )
        ext = _U32(0) if self.soroban_data is None else _U32(1) + self.soroban_data
        return b"".join(
            (
                _U32(0) + self.source,  # MuxedAccount KEY_TYPE_ED25519
                _U32(self.fee),
                _I64(self.sequence),
                cond,
                _U32(0),  # MEMO_NONE
                _U32(1),  # one operation
                op,
                ext,
            )
        )

    def hash(self, net_id: bytes) -> bytes:
        """SHA-256 of the ``TransactionSignaturePayload`` (network id, ENVELOPE_TYPE_TX, tx)."""
        return hashlib.sha256(net_id + _U32(ENVELOPE_TYPE_TX) + self.tx_bytes()).digest()

    def sign(self, signer: Signer, net_id: bytes) -> bytes:
        """Add ``signer``'s decorated signature; returns the transaction hash."""
        digest = self.hash(net_id)
        self.signatures.append((signer.hint, signer.sign(digest)))
        return digest

    def envelope_bytes(self) -> bytes:
        sigs = b"".join(hint + _opaque_var(sig) for hint, sig in self.signatures)
        return _U32(ENVELOPE_TYPE_TX) + self.tx_bytes() + _U32(len(self.signatures)) + sigs

    def envelope_b64(self) -> str:
        return base64.b64encode(self.envelope_bytes()).decode("ascii")


_SIG_KEYS = (scv_symbol(b"public_key"), scv_symbol(b"signature"))


def sign_auth_entry(entry: bytes, signer: Signer, valid_until: int, net_id: bytes) -> bytes:
    """``entry`` (a ``SorobanAuthorizationEntry``) signed by ``signer``, valid through
    ledger ``valid_until``. Source-account credentials are returned unchanged; address
    credentials must name ``signer``'s account. The entry is parsed strictly first
    (:func:`parse_auth_entry`); raises :class:`DecodeError` otherwise."""
    parse_auth_entry(entry)
    try:
        (kind,) = _u32(entry, 0)
        if kind == SOROBAN_CREDENTIALS_SOURCE_ACCOUNT:
            return entry
        if kind != SOROBAN_CREDENTIALS_ADDRESS:
            raise DecodeError(f"unsupported SorobanCredentials type {kind}")
        addr_end = skip_sc_address(entry, 4)
        address = entry[4:addr_end]
        if address != sc_address_account(signer.raw_public_key):
            raise DecodeError("the authorization entry is not for the keeper's account")
        nonce = entry[addr_end : addr_end + 8]
        sig_at = addr_end + 12
        invocation = entry[skip_scval(entry, sig_at) :]
        if len(nonce) != 8 or not invocation:
            raise DecodeError("truncated SorobanAuthorizationEntry")
    except struct.error as exc:
        raise DecodeError(f"truncated SorobanAuthorizationEntry: {exc}") from None
    expiry = _U32(valid_until)
    preimage = _U32(ENVELOPE_TYPE_SOROBAN_AUTHORIZATION) + net_id + nonce + expiry + invocation
    signature = signer.sign(hashlib.sha256(preimage).digest())
    sig_val = scv_vec(
        [
            scv_map(
                [
                    (_SIG_KEYS[0], scv_bytes(signer.raw_public_key)),
                    (_SIG_KEYS[1], scv_bytes(signature)),
                ]
            )
        ]
    )
    return entry[:4] + address + nonce + expiry + sig_val + invocation


# ---------------------------------------------------------------- strict readers
#
# Simulation answers are untrusted: before anything from them goes into a transaction the
# keeper parses it completely. These readers check every bound, discriminant, optional flag
# and padding byte and that the value ends exactly where the input does.

#: deepest SCVal / sub-invocation nesting accepted (the host's own limit is far below input
#: sizes the RPC could send; this only keeps recursion bounded)
MAX_XDR_DEPTH = 32
SCSYMBOL_MAX = 32
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
        return int(_u32(self.take(4), 0)[0])

    def i32(self) -> int:
        return int(_i32(self.take(4), 0)[0])

    def i64(self) -> int:
        return int(_i64(self.take(8), 0)[0])

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
    if r.u32() != 0:
        raise r.fail("unknown PublicKey type")
    r.take(32)


def _r_sc_address(r: _Reader) -> bytes:
    start = r.off
    kind = r.u32()
    if kind == 0:  # account
        _r_public_key(r)
    elif kind in (1, 4):  # contract, liquidity pool: a 32-byte hash
        r.take(32)
    elif kind == 2:  # muxed account: uint64 id, ed25519
        r.take(40)
    elif kind == 3:  # claimable balance: ClaimableBalanceID (type 0, hash)
        if r.u32() != 0:
            raise r.fail("unknown ClaimableBalanceID type")
        r.take(32)
    else:
        raise r.fail(f"unknown SCAddress type {kind}")
    return r.buf[start : r.off]


#: fixed payload sizes of SCVal types after the tag (bool and error are checked separately)
_SCV_FIXED = {1: 0, 3: 4, 4: 4, 5: 8, 6: 8, 7: 8, 8: 8, 9: 16, 10: 16, 11: 32, 12: 32, 20: 0}
_SCV_BOOL, _SCV_ERROR, _SCV_STRING, _SCV_LEDGER_KEY_NONCE = 0, 2, 14, 21


def _r_scval(r: _Reader, depth: int = 0) -> None:
    if depth > MAX_XDR_DEPTH:
        raise r.fail("SCVal nested too deeply")
    kind = r.u32()
    size = _SCV_FIXED.get(kind)
    if size is not None:
        r.take(size)
    elif kind == _SCV_BOOL:
        r.flag()
    elif kind == _SCV_ERROR:
        etype = r.i32()
        if not 0 <= etype <= 9:
            raise r.fail(f"unknown SCErrorType {etype}")
        r.take(4)  # contract code (uint32) or SCErrorCode (int32)
    elif kind in (SCV_BYTES, _SCV_STRING):
        r.var_opaque()
    elif kind == SCV_SYMBOL:
        r.var_opaque(SCSYMBOL_MAX)
    elif kind == SCV_ADDRESS:
        _r_sc_address(r)
    elif kind == _SCV_LEDGER_KEY_NONCE:
        r.i64()
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
    elif kind == 1:  # TRUSTLINE
        _r_account_id(r)
        _r_asset(r, pool_share=True)
    elif kind == 2:  # OFFER: seller, int64 offer id
        _r_account_id(r)
        r.i64()
    elif kind == 3:  # DATA: account id, string64 name
        _r_account_id(r)
        r.var_opaque(64)
    elif kind == 4:  # CLAIMABLE_BALANCE
        if r.u32() != 0:
            raise r.fail("unknown ClaimableBalanceID type")
        r.take(32)
    elif kind in (5, 7, 9):  # LIQUIDITY_POOL, CONTRACT_CODE, TTL: a 32-byte hash
        r.take(32)
    elif kind == LE_CONTRACT_DATA:
        _r_sc_address(r)
        _r_scval(r)
        if r.u32() not in (0, DURABILITY_PERSISTENT):
            raise r.fail("unknown ContractDataDurability")
    elif kind == 8:  # CONFIG_SETTING: ConfigSettingID
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


# ---------------------------------------------------------------- results and accounts


def parse_transaction_result(result: bytes) -> tuple[int, int, str]:
    """(fee charged, result code, code name) of a ``TransactionResult``."""
    try:
        (fee,) = _i64(result, 0)
        (code,) = _i32(result, 8)
    except struct.error as exc:
        raise DecodeError(f"truncated TransactionResult: {exc}") from None
    return fee, code, TX_RESULT_NAMES.get(code, f"code {code}")


@dataclass(frozen=True, slots=True)
class AccountEntryInfo:
    sequence: int
    balance: int
    num_sub_entries: int
    selling_liabilities: int = 0
    num_sponsoring: int = 0
    num_sponsored: int = 0


def parse_account_entry(data: bytes) -> AccountEntryInfo:
    """Sequence, balance, sub-entries, selling liabilities and sponsorship counts of a
    ``LedgerEntryData`` of type ACCOUNT."""
    buf = data
    try:
        (kind,) = _u32(buf, 0)
        if kind != LE_ACCOUNT:
            raise DecodeError(f"not an account entry (type {kind})")
        off = _skip_account_id(buf, 4)
        (balance,) = _i64(buf, off)
        (sequence,) = _i64(buf, off + 8)
        (subentries,) = _u32(buf, off + 16)
        off += 20
        (has_inflation,) = _u32(buf, off)
        off += 4
        if has_inflation:
            off = _skip_account_id(buf, off)
        off += 4  # flags
        (n,) = _u32(buf, off)
        off += 4 + n + (-n % 4) + 4  # home domain, thresholds
        (n_signers,) = _u32(buf, off)
        off += 4
        if n_signers > 20:
            raise DecodeError("too many signers")
        for _ in range(n_signers):
            (skind,) = _u32(buf, off)
            off += 4 + 32
            if skind == 3:  # ed25519 signed payload: opaque payload<64>
                (n,) = _u32(buf, off)
                off += 4 + n + (-n % 4)
            elif skind not in (0, 1, 2):
                raise DecodeError(f"unknown signer key type {skind}")
            off += 4  # weight
        (ext,) = _u32(buf, off)
        selling = sponsoring = sponsored = 0
        if ext == 1:
            (selling,) = _i64(buf, off + 12)  # liabilities: buying, selling
            (ext2,) = _u32(buf, off + 20)
            if ext2 == 2:
                sponsored, sponsoring = struct.unpack_from(">II", buf, off + 24)
        elif ext != 0:
            raise DecodeError(f"unknown AccountEntry ext {ext}")
    except struct.error as exc:
        raise DecodeError(f"truncated AccountEntry: {exc}") from None
    return AccountEntryInfo(sequence, balance, subentries, selling, sponsoring, sponsored)
