"""getEvents answers shaped like stellar-rpc's, for the event-sync tests (topics built with
stellar-sdk: an encoder independent of the worker's)."""

from __future__ import annotations

from stellar_sdk import StrKey, scval

CONTRACT = StrKey.encode_contract(bytes(range(32)))
OTHER_CONTRACT = StrKey.encode_contract(bytes(32))
TX_MASK, OP_MASK, EV_MAX = 0xFFFFF, 0xFFF, 0xFFFFFFFF


def event_id(ledger: int, tx: int, op: int = 0, index: int = 0) -> str:
    """stellar-rpc's Cursor.String(): SEP-35 toid, then the event index."""
    return f"{(ledger << 32) | (tx << 12) | op:019d}-{index:010d}"


def window_end(ledger: int) -> str:
    return event_id(ledger, TX_MASK, OP_MASK, EV_MAX)


def event(
    ledger: int,
    tx: int,
    name: str,
    task_id: int,
    *,
    index: int = 0,
    ok: bool | None = True,
    contract: str = CONTRACT,
) -> dict:
    ev = {
        "type": "contract",
        "ledger": ledger,
        "ledgerClosedAt": "2026-01-01T00:00:00Z",
        "contractId": contract,
        "id": event_id(ledger, tx, 1, index),
        "operationIndex": 0,
        "transactionIndex": tx,
        "txHash": "ab" * 32,
        "topic": [scval.to_symbol(name).to_xdr(), scval.to_uint64(task_id).to_xdr()],
        "value": scval.to_void().to_xdr(),
    }
    if ok is not None:
        ev["inSuccessfulContractCall"] = ok
    return ev


def answer(events: list[dict], latest: int, oldest: int = 1, cursor: str | None = None) -> dict:
    return {
        "events": events,
        "cursor": cursor if cursor is not None else window_end(latest),
        "latestLedger": latest,
        "oldestLedger": oldest,
        "latestLedgerCloseTime": "1700000000",
        "oldestLedgerCloseTime": "1690000000",
    }
