"""Applying a queued transaction when a ledger that includes it closes.

Its fee is charged and its sequence number consumed whether the invocation succeeds or fails;
the host runs the call against the ledger, and the result, the meta, the contract events and
(for the SoroTask contract's ``execute``) the execution record are written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from stellar_sdk import xdr as sx

from devnet.accounts import Account, Accounts
from devnet.archival import restorable
from devnet.events import EventStore
from devnet.host import AuthContext, Footprint, Host, HostError
from devnet.ledger import BASE_FEE, LedgerState
from devnet.sorotask_contract import CONTRACTS, FAILED, SOROTASK_ID
from devnet.transactions import TRC, ParsedTx, TxRejected, check_bounds
from sorotask_core.contract import FN_EXECUTE


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

    def record_execution(self, execution: Execution) -> None: ...


@dataclass(slots=True)
class Execution:
    """One ``execute`` of the SoroTask contract as the devnet records it (its effect)."""

    task_id: int | None
    ledger: int
    timestamp: int
    keeper: str | None
    tx_hash: str
    effect: str

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "ledger": self.ledger,
            "timestamp": self.timestamp,
            "keeper": self.keeper,
            "tx_hash": self.tx_hash,
            "effect": self.effect,
        }


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


def footprint_of(data: sx.SorobanTransactionData, restore: set[str] | None = None) -> Footprint:
    fp = data.resources.footprint
    return Footprint(
        read_only={k.to_xdr() for k in fp.read_only},
        read_write={k.to_xdr() for k in fp.read_write},
        restore=restore or set(),
    )


def payer_if_valid(
    accounts: Accounts, ptx: ParsedTx, ledger_seq: int, close_time: int
) -> Account | None:
    """The source account when ``ptx`` can still be applied in this ledger (the next sequence
    number, the fee covered, within its time bounds); None when core would drop it."""
    acct = accounts.get(ptx.source)
    if acct is None or ptx.seq_num != acct.seq_num + 1 or acct.balance < ptx.fee:
        return None
    try:
        check_bounds(ptx.tx, ledger_seq, close_time)
    except TxRejected:
        return None
    return acct


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
    acct = payer_if_valid(node.accounts, ptx, ledger_seq, close_time)
    if acct is None:
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
            Execution(host.task_id, ledger_seq, close_time, host.keeper, ptx.hash_hex, effect)
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
