"""Parsing and checking transactions: the envelope's shape, time and ledger bounds, signatures,
the declared resource fee, and the ERROR answers.

sendTransaction's checks, in stellar-core's order, are in devnet/admission.py; the queue and
surge pricing in devnet/surge.py; applying an accepted transaction when a ledger closes in
devnet/apply.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from stellar_sdk import Keypair, StrKey
from stellar_sdk import xdr as sx
from stellar_sdk.exceptions import BadSignatureError

from devnet import fees
from devnet.ledger import BASE_FEE

TRC = sx.TransactionResultCode


class TxRejected(Exception):
    """sendTransaction answers ERROR with this result code."""

    def __init__(self, code: sx.TransactionResultCode, fee_charged: int = BASE_FEE) -> None:
        super().__init__(code.name)
        self.code = code
        self.fee_charged = fee_charged


@dataclass(slots=True)
class ParsedTx:
    hash_hex: str
    envelope_b64: str
    tx: sx.Transaction
    signatures: list[sx.DecoratedSignature]
    source: str
    op_source: str
    contract_id: str
    function: str
    args: list[sx.SCVal]
    auth: list[sx.SorobanAuthorizationEntry]
    soroban_data: sx.SorobanTransactionData
    fee: int
    resource_fee: int
    seq_num: int


def muxed_to_account_id(muxed: sx.MuxedAccount) -> str:
    if muxed.ed25519 is not None:
        return StrKey.encode_ed25519_public_key(muxed.ed25519.uint256)
    assert muxed.med25519 is not None
    return StrKey.encode_ed25519_public_key(muxed.med25519.ed25519.uint256)


def transaction_hash(network_id: bytes, tx: sx.Transaction) -> bytes:
    payload = (
        network_id + sx.EnvelopeType.ENVELOPE_TYPE_TX.value.to_bytes(4, "big") + tx.to_xdr_bytes()
    )
    return hashlib.sha256(payload).digest()


def parse_envelope(envelope_b64: str, network_id: bytes) -> ParsedTx:
    """Decode and check the shape of a Soroban invoke-contract transaction.

    Raises ``ValueError`` for undecodable XDR (invalid_xdr) and :class:`TxRejected` for
    envelopes the devnet cannot or will not accept.
    """
    try:
        env = sx.TransactionEnvelope.from_xdr(envelope_b64)
    except Exception as exc:  # the generated decoders raise many exception types
        raise ValueError("invalid_xdr") from exc
    if env.type != sx.EnvelopeType.ENVELOPE_TYPE_TX or env.v1 is None:
        raise TxRejected(TRC.txNOT_SUPPORTED)
    tx = env.v1.tx
    digest = transaction_hash(network_id, tx)
    if not tx.operations:
        raise TxRejected(TRC.txMISSING_OPERATION)
    if len(tx.operations) != 1:
        raise TxRejected(TRC.txMALFORMED)
    op = tx.operations[0]
    if op.body.type != sx.OperationType.INVOKE_HOST_FUNCTION:
        raise TxRejected(TRC.txNOT_SUPPORTED)
    ihf = op.body.invoke_host_function_op
    assert ihf is not None
    hf = ihf.host_function
    if hf.type != sx.HostFunctionType.HOST_FUNCTION_TYPE_INVOKE_CONTRACT:
        raise TxRejected(TRC.txNOT_SUPPORTED)
    if tx.ext.v != 1 or tx.ext.soroban_data is None:
        raise TxRejected(TRC.txMALFORMED)
    call = hf.invoke_contract
    assert call is not None
    if call.contract_address.type != sx.SCAddressType.SC_ADDRESS_TYPE_CONTRACT:
        raise TxRejected(TRC.txMALFORMED)
    source = muxed_to_account_id(tx.source_account)
    op_source = muxed_to_account_id(op.source_account) if op.source_account else source
    return ParsedTx(
        hash_hex=digest.hex(),
        envelope_b64=envelope_b64,
        tx=tx,
        signatures=list(env.v1.signatures),
        source=source,
        op_source=op_source,
        contract_id=StrKey.encode_contract(call.contract_address.contract_id.contract_id.hash),
        function=call.function_name.sc_symbol.decode("utf-8", "replace"),
        args=list(call.args),
        auth=list(ihf.auth),
        soroban_data=tx.ext.soroban_data,
        fee=tx.fee.uint32,
        resource_fee=tx.ext.soroban_data.resource_fee.int64,
        seq_num=tx.seq_num.sequence_number.int64,
    )


def _time_bounds(tx: sx.Transaction) -> tuple[sx.TimeBounds | None, sx.LedgerBounds | None]:
    cond = tx.cond
    if cond.type == sx.PreconditionType.PRECOND_TIME:
        return cond.time_bounds, None
    if cond.type == sx.PreconditionType.PRECOND_V2 and cond.v2 is not None:
        return cond.v2.time_bounds, cond.v2.ledger_bounds
    return None, None


def check_bounds(tx: sx.Transaction, ledger_seq: int, close_time: int) -> None:
    """txTOO_EARLY / txTOO_LATE for a transaction applied in ``ledger_seq`` at ``close_time``."""
    tb, lb = _time_bounds(tx)
    if tb is not None:
        if tb.min_time.time_point.uint64 > close_time:
            raise TxRejected(TRC.txTOO_EARLY)
        max_time = tb.max_time.time_point.uint64
        if max_time != 0 and max_time < close_time:
            raise TxRejected(TRC.txTOO_LATE)
    if lb is not None:
        if lb.min_ledger.uint32 > ledger_seq:
            raise TxRejected(TRC.txTOO_EARLY)
        if lb.max_ledger.uint32 != 0 and lb.max_ledger.uint32 <= ledger_seq:
            raise TxRejected(TRC.txTOO_LATE)


def check_signatures(ptx: ParsedTx) -> None:
    payload = bytes.fromhex(ptx.hash_hex)
    needed = {ptx.source, ptx.op_source}
    keys = {StrKey.decode_ed25519_public_key(a): a for a in needed}
    satisfied: set[str] = set()
    for sig in ptx.signatures:
        hint = sig.hint.signature_hint
        matched = False
        for raw, account in keys.items():
            if raw[-4:] != hint:
                continue
            try:
                Keypair.from_raw_ed25519_public_key(raw).verify(payload, sig.signature.signature)
            except (BadSignatureError, ValueError):
                continue
            satisfied.add(account)
            matched = True
            break
        if not matched:
            raise TxRejected(TRC.txBAD_AUTH_EXTRA if satisfied == needed else TRC.txBAD_AUTH)
    if satisfied != needed:
        raise TxRejected(TRC.txBAD_AUTH)


def declared_min_resource_fee(data: sx.SorobanTransactionData) -> int:
    res = data.resources
    return fees.resource_fee(
        instructions=res.instructions.uint32,
        read_entries=len(res.footprint.read_only),
        write_entries=len(res.footprint.read_write),
        read_bytes=res.disk_read_bytes.uint32,
        write_bytes=res.write_bytes.uint32,
    )


def error_result_b64(code: sx.TransactionResultCode, fee_charged: int) -> str:
    return sx.TransactionResult(
        fee_charged=sx.Int64(fee_charged),
        result=sx.TransactionResultResult(code=code),
        ext=sx.TransactionResultExt(v=0),
    ).to_xdr()


class TryAgainLater(Exception):
    pass
