"""The few Stellar XDR values the keeper writes and reads, packed by hand (no stellar-sdk).

Written from the XDR definitions (Stellar-transaction.x, Stellar-ledger-entries.x,
Stellar-contract.x). XDR is big-endian; every item is padded to 4 bytes; a union is its
int32 discriminant followed by the arm; an optional is a 4-byte 0/1 flag then the value; a
variable array is a 4-byte count then the items.

Writes: ledger keys, ``SCVal``\\ s, a ``Transaction`` holding one ``InvokeHostFunctionOp``
(``HOST_FUNCTION_TYPE_INVOKE_CONTRACT``), its ``TransactionEnvelope`` (``ENVELOPE_TYPE_TX``),
its hash, and a signed ``SorobanAuthorizationEntry`` for the default account contract.
Reads: ``SorobanTransactionData`` footprints, ``TransactionResult`` codes and fees, and
``AccountEntry`` sequence and balances. Malformed input raises :class:`DecodeError`.
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
    "InvokeTx",
    "account_ledger_key",
    "contract_data_ledger_key",
    "footprint_read_write",
    "network_id",
    "parse_account_entry",
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


def _skip_ledger_key(buf: bytes, off: int) -> int:
    (kind,) = _u32(buf, off)
    off += 4
    if kind == LE_CONTRACT_DATA:
        off = skip_scval(buf, skip_sc_address(buf, off))
        return off + 4
    if kind == LE_ACCOUNT:
        return _skip_account_id(buf, off)
    if kind in (5, 7, 9):  # LIQUIDITY_POOL, CONTRACT_CODE, TTL: a 32-byte hash
        return off + 32
    if kind == 1:  # TRUSTLINE: account id, TrustLineAsset
        off = _skip_account_id(buf, off)
        (asset,) = _u32(buf, off)
        off += 4
        sizes = {0: 0, 1: 4 + 36, 2: 12 + 36, 3: 32}
        if asset not in sizes:
            raise DecodeError(f"unknown asset type {asset}")
        return off + sizes[asset]
    if kind == 2:  # OFFER: seller, offer id
        return _skip_account_id(buf, off) + 8
    if kind == 3:  # DATA: account id, string64
        off = _skip_account_id(buf, off)
        (n,) = _u32(buf, off)
        return off + 4 + n + (-n % 4)
    if kind == 4:  # CLAIMABLE_BALANCE: ClaimableBalanceID (type 0, hash)
        return off + 36
    if kind == 8:  # CONFIG_SETTING: int32 id
        return off + 4
    raise DecodeError(f"unknown LedgerKey type {kind}")


def footprint_read_write(transaction_data: bytes) -> list[bytes]:
    """The read-write ``LedgerKey``\\ s (raw XDR) of a ``SorobanTransactionData``."""
    buf = transaction_data
    try:
        (ext,) = _u32(buf, 0)
        off = 4
        if ext == 1:  # SorobanResourcesExtV0: archivedSorobanEntries<>
            (n,) = _u32(buf, off)
            off += 4 + 4 * n
        elif ext != 0:
            raise DecodeError(f"unknown SorobanTransactionData ext {ext}")
        (n_ro,) = _u32(buf, off)
        off += 4
        if n_ro > len(buf):
            raise DecodeError("read-only count exceeds input")
        for _ in range(n_ro):
            off = _skip_ledger_key(buf, off)
        (n_rw,) = _u32(buf, off)
        off += 4
        if n_rw > len(buf):
            raise DecodeError("read-write count exceeds input")
        keys = []
        for _ in range(n_rw):
            end = _skip_ledger_key(buf, off)
            keys.append(buf[off:end])
            off = end
        # resources: instructions, diskReadBytes, writeBytes; then resourceFee
        if off + 12 + 8 != len(buf):
            raise DecodeError("SorobanTransactionData has the wrong length")
        return keys
    except struct.error as exc:
        raise DecodeError(f"truncated SorobanTransactionData: {exc}") from None


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
    credentials must name ``signer``'s account. Raises :class:`DecodeError` otherwise."""
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
