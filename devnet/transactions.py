"""Parsing and checking transactions, and applying them at ledger close.

sendTransaction's checks, in stellar-core's order, are in devnet/admission.py; the queue and
surge pricing in devnet/surge.py. An accepted transaction is applied when a ledger that includes
it closes: its fee is charged and its sequence number consumed whether the invocation succeeds or
fails.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from stellar_sdk import Keypair, StrKey
from stellar_sdk import xdr as sx
from stellar_sdk.exceptions import BadSignatureError

from devnet import fees, xdrfast
from devnet.accounts import Accounts
from devnet.archival import restorable
from devnet.events import EventStore
from devnet.host import AuthContext, Footprint, Host, HostError
from devnet.ledger import BASE_FEE, LedgerState
from devnet.sorotask_contract import CONTRACTS, FAILED, SOROTASK_ID
from sorotask_core.contract import FN_EXECUTE

TRC = sx.TransactionResultCode


class TxCounters(Protocol):
    """The node's counters that applying a transaction adds to."""

    tx_applied: int
    tx_failed: int

    def fee(self, account: str, amount: int) -> None: ...


class Chain(Protocol):
    """What applying a transaction needs of the node (``devnet.node.Devnet`` passes itself):
    the ledger and accounts it changes, the events it records, its counters and executions."""

    @property
    def network_id(self) -> bytes: ...
    @property
    def ledger(self) -> LedgerState: ...
    @property
    def accounts(self) -> Accounts: ...
    @property
    def events(self) -> EventStore: ...
    @property
    def stats(self) -> TxCounters: ...

    def record_execution(
        self,
        *,
        task_id: int | None,
        ledger: int,
        timestamp: int,
        keeper: str | None,
        tx_hash: str,
        effect: str,
    ) -> None: ...


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


@dataclass(slots=True)
class TxRecord:
    hash_hex: str
    successful: bool
    ledger: int
    created_at: int
    application_order: int
    envelope_b64: str
    result_b64: str
    meta_b64: str
    events_b64: list[str] = field(default_factory=list)


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


def footprint_of(data: sx.SorobanTransactionData, restore: set[str] | None = None) -> Footprint:
    fp = data.resources.footprint
    return Footprint(
        read_only={k.to_xdr() for k in fp.read_only},
        read_write={k.to_xdr() for k in fp.read_write},
        restore=restore or set(),
    )


def apply_transaction(
    node: Chain,
    ptx: ParsedTx,
    ledger_seq: int,
    close_time: int,
    order: int,
    inclusion_fee: int = BASE_FEE,
) -> TxRecord | None:
    """Apply one queued transaction in ledger ``ledger_seq``, charging ``inclusion_fee`` (the
    ledger's surge price, at most the bid) plus the declared resource fee. Returns None when the
    transaction is no longer valid (it is dropped, as stellar-core drops it from its queue)."""
    acct = node.accounts.get(ptx.source)
    if acct is None or ptx.seq_num != acct.seq_num + 1 or acct.balance < ptx.fee:
        return None
    try:
        check_bounds(ptx.tx, ledger_seq, close_time)
    except TxRejected:
        return None
    fee = min(inclusion_fee, ptx.fee - ptx.resource_fee) + ptx.resource_fee
    node.accounts.charge(acct, fee, ptx.seq_num)
    node.stats.fee(ptx.source, fee)

    restore, unmarked = restorable(node.ledger.get, ptx.soroban_data, ledger_seq)
    host = Host(
        node.ledger,
        ledger_seq=ledger_seq,
        timestamp=close_time,
        auth=AuthContext(
            source_account=ptx.op_source, network_id=node.network_id, entries=ptx.auth
        ),
        contracts=CONTRACTS,
        footprint=footprint_of(ptx.soroban_data, restore),
    )
    retval: sx.SCVal | None = None
    error: HostError | None = None
    try:
        if unmarked:  # core fails it before the host runs (INVOKE_HOST_FUNCTION_ENTRY_ARCHIVED)
            raise HostError("Storage", "MissingValue", "footprint entry is archived")
        out = host.call(ptx.contract_id, ptx.function, ptx.args)
        retval = out if isinstance(out, sx.SCVal) else sx.SCVal.from_xdr_bytes(out)
    except HostError as exc:
        error = exc
    except Exception as exc:  # a devnet bug must not kill the close loop
        error = HostError("Context", "InternalError", repr(exc))

    if error is None:
        host.commit()
        events = host.events
        success_hash = hashlib.sha256(
            sx.InvokeHostFunctionSuccessPreImage(return_value=retval, events=events).to_xdr_bytes()
        ).digest()
        op_result = sx.InvokeHostFunctionResult(
            code=sx.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_SUCCESS,
            success=sx.Hash(success_hash),
        )
        code = TRC.txSUCCESS
    else:
        events = []
        op_result = sx.InvokeHostFunctionResult(
            code=sx.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_ENTRY_ARCHIVED
            if unmarked
            else sx.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_TRAPPED
        )
        code = TRC.txFAILED
    result = sx.TransactionResult(
        fee_charged=sx.Int64(fee),
        result=sx.TransactionResultResult(
            code=code,
            results=[
                sx.OperationResult(
                    code=sx.OperationResultCode.opINNER,
                    tr=sx.OperationResultTr(
                        type=sx.OperationType.INVOKE_HOST_FUNCTION,
                        invoke_host_function_result=op_result,
                    ),
                )
            ],
        ),
        ext=sx.TransactionResultExt(v=0),
    )
    meta = sx.TransactionMeta(
        v=4,
        v4=sx.TransactionMetaV4(
            ext=sx.ExtensionPoint(0),
            tx_changes_before=sx.LedgerEntryChanges([]),
            operations=[
                sx.OperationMetaV2(
                    ext=sx.ExtensionPoint(0),
                    changes=sx.LedgerEntryChanges([]),
                    events=list(events),
                )
            ],
            tx_changes_after=sx.LedgerEntryChanges([]),
            soroban_meta=sx.SorobanTransactionMetaV2(
                ext=sx.SorobanTransactionMetaExt(v=0),
                return_value=retval,
            ),
            events=[],
            diagnostic_events=[],
        ),
    )
    record = TxRecord(
        hash_hex=ptx.hash_hex,
        successful=error is None,
        ledger=ledger_seq,
        created_at=close_time,
        application_order=order,
        envelope_b64=ptx.envelope_b64,
        result_b64=result.to_xdr(),
        meta_b64=meta.to_xdr(),
        events_b64=[ev.to_xdr() for ev in events],
    )
    if error is None:
        node.stats.tx_applied += 1
        for i, ev in enumerate(events):
            node.events.add(ledger_seq, close_time, order, 0, i, ptx.hash_hex, ev)
    else:
        node.stats.tx_failed += 1
    if ptx.contract_id == SOROTASK_ID and ptx.function == FN_EXECUTE:
        effect = host.effect or FAILED
        if error is not None and effect not in ("unauthorized",):
            effect = FAILED
        node.record_execution(
            task_id=host.task_id,
            ledger=ledger_seq,
            timestamp=close_time,
            keeper=host.keeper,
            tx_hash=ptx.hash_hex,
            effect=effect,
        )
    return record


def record_to_json(rec: TxRecord) -> dict[str, Any]:
    return {
        "status": "SUCCESS" if rec.successful else "FAILED",
        "txHash": rec.hash_hex,
        "applicationOrder": rec.application_order,
        "feeBump": False,
        "envelopeXdr": rec.envelope_b64,
        "resultXdr": rec.result_b64,
        "resultMetaXdr": rec.meta_b64,
        "ledger": rec.ledger,
        "createdAt": str(rec.created_at),
        "diagnosticEventsXdr": [],
        "events": {"transactionEventsXdr": [], "contractEventsXdr": [rec.events_b64]},
    }


def account_key_b64(account_id: str) -> str:
    return xdrfast.b64(xdrfast.account_key(StrKey.decode_ed25519_public_key(account_id)))
