"""The transaction the keeper writes, packed by hand (no stellar-sdk), and its result.

Written from the XDR definitions (Stellar-transaction.x): a ``Transaction`` holding one
``InvokeHostFunctionOp`` (``HOST_FUNCTION_TYPE_INVOKE_CONTRACT``), its ``TransactionEnvelope``
(``ENVELOPE_TYPE_TX``), its hash, a signed ``SorobanAuthorizationEntry`` for the default account
contract, and the code and fee of a ``TransactionResult``. The XDR primitives and ``SCVal``
encoders are :mod:`sorotask_core.xdr`; the strict readers of simulation answers are
:mod:`shard_worker.strict_xdr`. Malformed input raises :class:`DecodeError`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from shard_worker.strict_xdr import (
    SOROBAN_CREDENTIALS_ADDRESS,
    SOROBAN_CREDENTIALS_SOURCE_ACCOUNT,
    parse_auth_entry,
    parse_soroban_data,
)
from sorotask_core.signing import Signer
from sorotask_core.xdr import (
    DecodeError,
    b64encode,
    opaque_var,
    pack_i64,
    pack_u32,
    pack_u64,
    sc_address_account,
    sc_address_contract,
    scv_bytes,
    scv_map,
    scv_symbol,
    scv_vec,
    skip_sc_address,
    skip_scval,
    unpack_i32,
    unpack_i64,
    unpack_u32,
)

__all__ = [
    "TX_RESULT_NAMES",
    "InvokeTx",
    "parse_transaction_result",
    "sign_auth_entry",
    "with_resource_fee",
]

# EnvelopeType
ENVELOPE_TYPE_TX = 2
ENVELOPE_TYPE_SOROBAN_AUTHORIZATION = 9
OP_INVOKE_HOST_FUNCTION = 24
HOST_FUNCTION_TYPE_INVOKE_CONTRACT = 0
PRECOND_NONE, PRECOND_TIME = 0, 1

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
            cond = pack_u32(PRECOND_NONE)
        else:
            cond = (
                pack_u32(PRECOND_TIME)
                + pack_u64(self.time_bounds[0])
                + pack_u64(self.time_bounds[1])
            )
        op = b"".join(
            (
                pack_u32(0),  # no operation source account
                pack_u32(OP_INVOKE_HOST_FUNCTION),
                pack_u32(HOST_FUNCTION_TYPE_INVOKE_CONTRACT),
                sc_address_contract(self.contract),
                opaque_var(self.function),
                pack_u32(len(self.args)),
                *self.args,
                pack_u32(len(self.auth)),
                *self.auth,
            )
        )
        ext = pack_u32(0) if self.soroban_data is None else pack_u32(1) + self.soroban_data
        return b"".join(
            (
                pack_u32(0) + self.source,  # MuxedAccount KEY_TYPE_ED25519
                pack_u32(self.fee),
                pack_i64(self.sequence),
                cond,
                pack_u32(0),  # MEMO_NONE
                pack_u32(1),  # one operation
                op,
                ext,
            )
        )

    def hash(self, net_id: bytes) -> bytes:
        """SHA-256 of the ``TransactionSignaturePayload`` (network id, ENVELOPE_TYPE_TX, tx)."""
        return hashlib.sha256(net_id + pack_u32(ENVELOPE_TYPE_TX) + self.tx_bytes()).digest()

    def sign(self, signer: Signer, net_id: bytes) -> bytes:
        """Add ``signer``'s decorated signature; returns the transaction hash."""
        digest = self.hash(net_id)
        self.signatures.append((signer.hint, signer.sign(digest)))
        return digest

    def envelope_bytes(self) -> bytes:
        sigs = b"".join(hint + opaque_var(sig) for hint, sig in self.signatures)
        return pack_u32(ENVELOPE_TYPE_TX) + self.tx_bytes() + pack_u32(len(self.signatures)) + sigs

    def envelope_b64(self) -> str:
        return b64encode(self.envelope_bytes())


_SIG_KEYS = (scv_symbol(b"public_key"), scv_symbol(b"signature"))


def sign_auth_entry(entry: bytes, signer: Signer, valid_until: int, net_id: bytes) -> bytes:
    """``entry`` (a ``SorobanAuthorizationEntry``) signed by ``signer``, valid through
    ledger ``valid_until``. Source-account credentials are returned unchanged; address
    credentials must name ``signer``'s account. The entry is parsed strictly first
    (:func:`parse_auth_entry`); raises :class:`DecodeError` otherwise."""
    parse_auth_entry(entry)
    try:
        (kind,) = unpack_u32(entry, 0)
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
    expiry = pack_u32(valid_until)
    preimage = pack_u32(ENVELOPE_TYPE_SOROBAN_AUTHORIZATION) + net_id + nonce + expiry + invocation
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


# ---------------------------------------------------------------- results


def parse_transaction_result(result: bytes) -> tuple[int, int, str]:
    """(fee charged, result code, code name) of a ``TransactionResult``."""
    try:
        (fee,) = unpack_i64(result, 0)
        (code,) = unpack_i32(result, 8)
    except struct.error as exc:
        raise DecodeError(f"truncated TransactionResult: {exc}") from None
    return fee, code, TX_RESULT_NAMES.get(code, f"code {code}")


def with_resource_fee(transaction_data: bytes, resource_fee: int) -> bytes:
    """``transaction_data`` (a ``SorobanTransactionData``) declaring ``resource_fee``.

    The resource fee is the structure's last field (an int64 after the resources); core takes
    the transaction's fee minus it as the inclusion bid, so a margin on the resource fee must
    go here, not only into the fee field. The input is parsed strictly first (raises
    :class:`DecodeError`)."""
    data = parse_soroban_data(transaction_data)
    if resource_fee < data.resource_fee:
        raise ValueError(f"resource fee {resource_fee} below the simulated {data.resource_fee}")
    return transaction_data[:-8] + pack_i64(resource_fee)
