"""simulateTransaction: run the invocation against the latest ledger and report what it needs.

Shapes follow stellar-rpc: a contract error or panic is not a JSON-RPC error but a result with
``error`` (``"HostError: Error(Contract, #2)..."``), ``events`` and ``latestLedger`` and no
``transactionData``/``minResourceFee``/``results``. Malformed envelopes also come back in
``error`` ("Could not unmarshal transaction"), exactly as stellar-rpc answers them.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from stellar_sdk import StrKey
from stellar_sdk import xdr as sx

from devnet import fees, xdrfast
from devnet.host import AuthContext, Host, HostError
from devnet.ledger import ledger_entry_b64
from devnet.sorotask_contract import CONTRACTS
from devnet.transactions import muxed_to_account_id
from sorotask_core.contract import instance_key_b64

if TYPE_CHECKING:
    from devnet.node import Devnet

AUTH_MODES = ("enforce", "record", "record_allow_nonroot")
#: stellar-rpc (since PR #588) refuses to simulate a transaction with a memo; wording: the devnet's
MEMO_ERROR = "transaction memo is not supported for Soroban transactions"

_OP_TYPE_NAMES = {
    t: "OperationType" + "".join(part.capitalize() for part in t.name.split("_"))
    for t in sx.OperationType
}


def _diag(event: sx.ContractEvent, ok: bool) -> str:
    return sx.DiagnosticEvent(in_successful_contract_call=ok, event=event).to_xdr()


def _error_event(contract_id: str, err: HostError) -> sx.ContractEvent:
    detail = err.detail or str(err)
    return sx.ContractEvent(
        ext=sx.ExtensionPoint(0),
        contract_id=sx.ContractID(sx.Hash(StrKey.decode_contract(contract_id))),
        type=sx.ContractEventType.DIAGNOSTIC,
        body=sx.ContractEventBody(
            v=0,
            v0=sx.ContractEventV0(
                topics=[
                    sx.SCVal(sx.SCValType.SCV_SYMBOL, sym=sx.SCSymbol(b"error")),
                    err.scval(),
                ],
                data=sx.SCVal(sx.SCValType.SCV_STRING, str=sx.SCString(detail.encode()[:200])),
            ),
        ),
    )


def simulate(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    latest = node.ledger.sequence
    try:
        env = sx.TransactionEnvelope.from_xdr(params["transaction"])
    except Exception:
        return {"error": "Could not unmarshal transaction", "latestLedger": 0}
    if env.type == sx.EnvelopeType.ENVELOPE_TYPE_TX and env.v1 is not None:
        tx = env.v1.tx
        ops = tx.operations
        tx_source = muxed_to_account_id(tx.source_account)
    elif env.type == sx.EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP and env.fee_bump is not None:
        tx = env.fee_bump.tx.inner_tx.v1.tx
        ops = tx.operations
        tx_source = muxed_to_account_id(tx.source_account)
    else:
        return {"error": "Could not unmarshal transaction", "latestLedger": 0}
    if len(ops) != 1:
        return {"error": "Transaction contains more than one operation", "latestLedger": 0}
    if tx.memo.type != sx.MemoType.MEMO_NONE:  # core refuses Soroban transactions with a memo
        return {"error": MEMO_ERROR, "latestLedger": 0}
    op = ops[0]
    auth_mode = params.get("authMode") or ""
    if auth_mode and auth_mode not in AUTH_MODES:
        return {
            "error": "optional 'authMode' must be one of enforce,record,record_allow_nonroot "
            "when included",
            "latestLedger": 0,
        }
    if op.body.type != sx.OperationType.INVOKE_HOST_FUNCTION:
        name = _OP_TYPE_NAMES.get(op.body.type, str(op.body.type))
        return {
            "error": f"Transaction contains unsupported operation type: {name}",
            "latestLedger": 0,
        }
    ihf = op.body.invoke_host_function_op
    assert ihf is not None
    has_auth = len(ihf.auth) > 0
    if not auth_mode:
        auth_mode = "enforce" if has_auth else "record"
    elif has_auth and auth_mode != "enforce":
        return {
            "error": f"cannot set authMode to '{auth_mode}' with an auth footprint",
            "latestLedger": 0,
        }
    hf = ihf.host_function
    call = hf.invoke_contract
    if hf.type != sx.HostFunctionType.HOST_FUNCTION_TYPE_INVOKE_CONTRACT or call is None:
        return {
            "error": "the devnet simulates only InvokeContract host functions",
            "latestLedger": latest,
        }
    if call.contract_address.type != sx.SCAddressType.SC_ADDRESS_TYPE_CONTRACT:
        return {"error": "HostError: Error(Value, InvalidInput)", "latestLedger": latest}
    source = muxed_to_account_id(op.source_account) if op.source_account else tx_source
    contract_id = StrKey.encode_contract(call.contract_address.contract_id.contract_id.hash)
    function = call.function_name.sc_symbol.decode("utf-8", "replace")

    host = Host(
        node.ledger,
        ledger_seq=latest,
        timestamp=node.ledger.close_time,
        auth=AuthContext(
            source_account=source,
            network_id=node.network_id,
            entries=list(ihf.auth) if auth_mode == "enforce" else None,
        ),
        contracts=CONTRACTS,
    )
    try:
        out = host.call(contract_id, function, list(call.args))
    except HostError as err:
        return _error_response(node, contract_id, err, host)
    except Exception as exc:  # a devnet bug must come back as an error, not a crash
        err = HostError("Context", "InternalError", repr(exc))
        return _error_response(node, contract_id, err, host)
    retval_b64 = out.to_xdr() if isinstance(out, sx.SCVal) else xdrfast.b64(out)

    ro, rw = host.touched()
    ro_keys = sorted(base64.b64decode(k) for k in ro)
    rw_keys = sorted(base64.b64decode(k) for k in rw)
    instructions = fees.BASE_INSTRUCTIONS + fees.CALL_INSTRUCTIONS * max(0, _calls(host) - 1)
    read_bytes = host.read_bytes
    write_bytes = host.write_bytes
    min_fee = fees.resource_fee(
        instructions=instructions,
        read_entries=len(ro_keys),
        write_entries=len(rw_keys),
        read_bytes=read_bytes,
        write_bytes=write_bytes,
    )
    # protocol 23: archived entries are restored by the invocation itself; their indices in
    # the read-write footprint go in ext v1 (archivedSorobanEntries)
    restored = {base64.b64decode(k) for k in host.restored}
    archived = [i for i, k in enumerate(rw_keys) if k in restored]
    ext = (
        sx.SorobanTransactionDataExt(
            v=1,
            resource_ext=sx.SorobanResourcesExtV0([sx.Uint32(i) for i in archived]),
        )
        if archived
        else sx.SorobanTransactionDataExt(v=0)
    )
    data = sx.SorobanTransactionData(
        ext=ext,
        resources=sx.SorobanResources(
            footprint=sx.LedgerFootprint(
                read_only=[sx.LedgerKey.from_xdr_bytes(k) for k in ro_keys],
                read_write=[sx.LedgerKey.from_xdr_bytes(k) for k in rw_keys],
            ),
            instructions=sx.Uint32(instructions),
            disk_read_bytes=sx.Uint32(read_bytes),
            write_bytes=sx.Uint32(write_bytes),
        ),
        resource_fee=sx.Int64(min_fee),
    )
    auth = [a.to_xdr() for a in host.auth.recorded] if auth_mode != "enforce" else []
    result: dict[str, Any] = {
        "transactionData": data.to_xdr(),
        "minResourceFee": str(min_fee),
        "events": [_diag(ev, True) for ev in host.events],
        "results": [{"auth": auth, "xdr": retval_b64}],
        "latestLedger": latest,
    }
    changes = _state_changes(node, host, latest)
    if changes:
        result["stateChanges"] = changes
    return result


def _calls(host: Host) -> int:
    # number of contract instances touched approximates the number of calls made
    return sum(1 for k in host.reads if k in _instance_keys())


_INSTANCE_CACHE: set[str] = set()


def _instance_keys() -> set[str]:
    if not _INSTANCE_CACHE:
        _INSTANCE_CACHE.update(instance_key_b64(cid) for cid in CONTRACTS)
    return _INSTANCE_CACHE


def _state_changes(node: Devnet, host: Host, latest: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key_b64, (data_b64, _live_until) in host.writes.items():
        old = node.ledger.get(key_b64)
        before = ledger_entry_b64(old) if old is not None else None
        after = (
            None
            if data_b64 is None
            else xdrfast.b64(xdrfast.ledger_entry(latest, base64.b64decode(data_b64)))
        )
        kind = "created" if before is None else ("deleted" if after is None else "updated")
        out.append({"type": kind, "key": key_b64, "before": before, "after": after})
    return out


def _error_response(node: Devnet, contract_id: str, err: HostError, host: Host) -> dict[str, Any]:
    event = _error_event(contract_id, err)
    text = (
        f"HostError: {err}\n\nEvent log (newest first):\n"
        f"   0: [Diagnostic Event] contract:{contract_id}, topics:[error, {err}], "
        f'data:"{err.detail or err}"\n'
    )
    events = [_diag(ev, False) for ev in host.events] + [_diag(event, False)]
    return {"error": text, "events": events, "latestLedger": node.ledger.sequence}
