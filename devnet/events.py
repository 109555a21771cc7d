"""Contract events of applied transactions, for getEvents."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stellar_sdk import StrKey
from stellar_sdk import xdr as sx


@dataclass(slots=True)
class StoredEvent:
    id: str
    ledger: int
    close_time: int
    tx_index: int
    op_index: int
    tx_hash: str
    contract_id: str
    topics: list[str]
    value: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "contract",
            "ledger": self.ledger,
            "ledgerClosedAt": datetime.fromtimestamp(self.close_time, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "contractId": self.contract_id,
            "id": self.id,
            "operationIndex": self.op_index,
            "transactionIndex": self.tx_index,
            "txHash": self.tx_hash,
            "topic": self.topics,
            "value": self.value,
        }


def toid(ledger: int, tx_order: int, op_index: int) -> int:
    """SEP-35 total order id (tx_order is 1-based)."""
    return (ledger << 32) | (tx_order << 12) | op_index


def event_id(ledger: int, tx_order: int, op_index: int, event_index: int) -> str:
    return f"{toid(ledger, tx_order, op_index):019d}-{event_index:010d}"


class EventStore:
    def __init__(self, max_events: int = 200_000) -> None:
        self.events: deque[StoredEvent] = deque(maxlen=max_events)

    def add(
        self,
        ledger: int,
        close_time: int,
        tx_order: int,
        op_index: int,
        event_index: int,
        tx_hash: str,
        event: sx.ContractEvent,
    ) -> None:
        assert event.contract_id is not None and event.body.v0 is not None
        self.events.append(
            StoredEvent(
                id=event_id(ledger, tx_order, op_index, event_index),
                ledger=ledger,
                close_time=close_time,
                tx_index=tx_order,
                op_index=op_index,
                tx_hash=tx_hash,
                contract_id=StrKey.encode_contract(event.contract_id.contract_id.hash),
                topics=[t.to_xdr() for t in event.body.v0.topics],
                value=event.body.v0.data.to_xdr(),
            )
        )

    def prune(self, oldest_ledger: int) -> None:
        while self.events and self.events[0].ledger < oldest_ledger:
            self.events.popleft()


class EventParamError(ValueError):
    pass


def _parse_filters(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise EventParamError("filters must be a list")
    if len(raw) > 5:
        raise EventParamError("maximum 5 filters per request")
    out = []
    for i, f in enumerate(raw, 1):
        if not isinstance(f, dict):
            raise EventParamError(f"filter {i} invalid: must be an object")
        types = f.get("type") or ""
        if not isinstance(types, str):
            raise EventParamError(f"filter {i} invalid: filter type invalid")
        type_set = {t for t in types.split(",") if t}
        if type_set - {"system", "contract"}:
            raise EventParamError(
                f"filter {i} invalid: filter type invalid: if set, type must be either "
                "'system' or 'contract'"
            )
        ids = f.get("contractIds") or []
        if not isinstance(ids, list):
            raise EventParamError(f"filter {i} invalid: contractIds must be a list")
        if len(ids) > 5:
            raise EventParamError(f"filter {i} invalid: maximum 5 contract IDs per filter")
        for j, cid in enumerate(ids, 1):
            if not isinstance(cid, str) or not StrKey.is_valid_contract(cid):
                raise EventParamError(f"filter {i} invalid: contract ID {j} invalid")
        topics = f.get("topics") or []
        if not isinstance(topics, list) or len(topics) > 5:
            raise EventParamError(f"filter {i} invalid: maximum 5 topics per filter")
        parsed_topics = []
        for j, topic in enumerate(topics, 1):
            if not isinstance(topic, list) or not topic:
                raise EventParamError(
                    f"filter {i} invalid: topic {j} invalid: topic must have at least 1 segment"
                )
            segs = []
            for seg in topic:
                if not isinstance(seg, str):
                    raise EventParamError(f"filter {i} invalid: topic {j} invalid")
                if seg not in ("*", "**"):
                    try:
                        seg = sx.SCVal.from_xdr(seg).to_xdr()
                    except Exception as exc:
                        raise EventParamError(f"filter {i} invalid: topic {j} invalid") from exc
                segs.append(seg)
            parsed_topics.append(segs)
        out.append({"types": type_set, "ids": set(ids), "topics": parsed_topics})
    return out


def _topic_matches(flt: list[str], topics: list[str]) -> bool:
    if flt and flt[-1] == "**":
        head = flt[:-1]
        if len(topics) < len(head):
            return False
    else:
        head = flt
        if len(topics) != len(head):
            return False
    return all(seg in ("*", "**") or seg == topics[i] for i, seg in enumerate(head))


def _matches(filters: list[dict[str, Any]], ev: StoredEvent) -> bool:
    if not filters:
        return True
    for f in filters:
        if f["types"] and "contract" not in f["types"]:
            continue
        if f["ids"] and ev.contract_id not in f["ids"]:
            continue
        if f["topics"] and not any(_topic_matches(t, ev.topics) for t in f["topics"]):
            continue
        return True
    return False


def query(
    store: EventStore,
    params: dict[str, Any],
    *,
    oldest: int,
    latest: int,
) -> tuple[list[dict[str, Any]], str]:
    """Events matching ``params``; returns (events, cursor). Raises EventParamError."""
    pagination = params.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise EventParamError("pagination must be an object")
    cursor = pagination.get("cursor")
    limit = pagination.get("limit") or 100
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise EventParamError("limit must be a positive integer")
    if limit > 10000:
        raise EventParamError("limit must not exceed 10000")
    start = params.get("startLedger") or 0
    end = params.get("endLedger") or 0
    for name, v in (("startLedger", start), ("endLedger", end)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise EventParamError(f"{name} must be a positive integer")
    if cursor:
        if start or end:
            raise EventParamError("ledger ranges and cursor cannot both be set")
        if not isinstance(cursor, str) or len(cursor.split("-")) != 2:
            raise EventParamError("invalid cursor")
        after = cursor
    else:
        if start <= 0:
            raise EventParamError("startLedger must be positive")
        if start < oldest or start > latest:
            raise EventParamError(
                f"startLedger must be between the oldest ledger: {oldest} and the latest "
                f"ledger: {latest} for this rpc instance."
            )
        after = event_id(start, 0, 0, 0)
        after = f"{int(after.split('-')[0]) - 1:019d}-{0:010d}"
    filters = _parse_filters(params.get("filters"))
    end_ledger = end or (latest + 1)
    found: list[dict[str, Any]] = []
    for ev in store.events:
        if ev.id <= after:
            continue
        if ev.ledger >= end_ledger:
            break
        if _matches(filters, ev):
            found.append(ev.to_json())
            if len(found) >= limit:
                return found, ev.id
    return found, event_id(min(end_ledger, latest + 1), 0, 0, 0)
