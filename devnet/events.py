"""Contract events of applied transactions, and getEvents as stellar-rpc answers it.

Events are kept per ledger for the retention window. A request is checked like stellar-rpc's
``GetEventsRequest.Valid`` (-32602), then its start must lie in the ledger range (-32600
"startLedger must be within the ledger range: A - B"); one request scans at most 10,000
ledgers and returns at most ``limit`` events (default 100, at most 10,000). Its ``cursor``
is the last event's id when the page is full, else the end of the scanned window, so a
client resumes from it without missing or repeating events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stellar_sdk import StrKey
from stellar_sdk import xdr as sx

#: stellar-rpc's limits
LEDGER_SCAN_LIMIT = 10_000
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_FILTERS = 5
MAX_CONTRACT_IDS = 5
MAX_TOPICS = 5
MAX_TOPIC_SEGMENTS = 4
#: toid's transaction and operation fields (SEP-35): 20 and 12 bits
TX_MASK = (1 << 20) - 1
OP_MASK = (1 << 12) - 1
U32_MASK = (1 << 32) - 1

Cursor = tuple[int, int, int, int]  # ledger, transaction order (1-based), operation, event


def cursor_str(c: Cursor) -> str:
    ledger, tx, op, event = c
    return f"{(ledger << 32) | ((tx & TX_MASK) << 12) | (op & OP_MASK):019d}-{event:010d}"


_CURSOR = re.compile(r"([0-9]{1,19})-([0-9]{1,10})")


def parse_cursor(text: str) -> Cursor:
    m = _CURSOR.fullmatch(text)
    if m is None or int(m.group(1)) >= 1 << 63 or int(m.group(2)) > U32_MASK:
        raise EventParamError(f"invalid event id {text}")
    toid = int(m.group(1))
    return toid >> 32, (toid >> 12) & TX_MASK, toid & OP_MASK, int(m.group(2))


@dataclass(slots=True)
class StoredEvent:
    cursor: Cursor
    close_time: int
    tx_hash: str
    contract_id: str
    topics: list[str]
    value: str

    def to_json(self) -> dict[str, Any]:
        ledger, tx, op, _event = self.cursor
        return {
            "type": "contract",
            "ledger": ledger,
            "ledgerClosedAt": datetime.fromtimestamp(self.close_time, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "contractId": self.contract_id,
            "id": cursor_str(self.cursor),
            "operationIndex": op,
            "transactionIndex": tx,
            # only successful transactions emit contract events
            "inSuccessfulContractCall": True,
            "txHash": self.tx_hash,
            "topic": self.topics,
            "value": self.value,
        }


class EventStore:
    """Events by ledger, oldest ledger first."""

    def __init__(self) -> None:
        self.by_ledger: dict[int, list[StoredEvent]] = {}

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
        self.by_ledger.setdefault(ledger, []).append(
            StoredEvent(
                cursor=(ledger, tx_order, op_index, event_index),
                close_time=close_time,
                tx_hash=tx_hash,
                contract_id=StrKey.encode_contract(event.contract_id.contract_id.hash),
                topics=[t.to_xdr() for t in event.body.v0.topics],
                value=event.body.v0.data.to_xdr(),
            )
        )

    def prune(self, oldest_ledger: int) -> None:
        for ledger in [seq for seq in self.by_ledger if seq < oldest_ledger]:
            del self.by_ledger[ledger]


class EventParamError(ValueError):
    """-32602: the request is invalid."""


class EventRangeError(ValueError):
    """-32600: the request's start is outside the ledger range."""


def _parse_topic(i: int, j: int, topic: Any) -> list[str]:
    where = f"filter {i} invalid: topic {j} invalid"
    if not isinstance(topic, list) or not all(isinstance(s, str) for s in topic):
        raise EventParamError(f"{where}: a topic is a list of segments")
    segments = topic[:-1] if topic and topic[-1] == "**" else topic
    if not segments:
        raise EventParamError(f"{where}: topic must have at least 1 segment")
    out = []
    for k, seg in enumerate(segments, 1):
        if seg == "**":
            raise EventParamError(
                f"{where}: segment {k} invalid: wildcard '**' is only allowed as the last segment"
            )
        if seg != "*":
            try:
                seg = sx.SCVal.from_xdr(seg).to_xdr()  # canonical, so bytes compare
            except Exception as exc:  # the generated decoders raise many exception types
                raise EventParamError(f"{where}: segment {k} invalid") from exc
        out.append(seg)
    if len(out) > MAX_TOPIC_SEGMENTS:
        raise EventParamError(f"{where}: topic cannot have more than 4 segments")
    return [*out, "**"] if len(out) < len(topic) else out


def _parse_filters(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise EventParamError("filters must be a list")
    if len(raw) > MAX_FILTERS:
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
        if len(ids) > MAX_CONTRACT_IDS:
            raise EventParamError(f"filter {i} invalid: maximum 5 contract IDs per filter")
        topics = f.get("topics") or []
        if not isinstance(topics, list):
            raise EventParamError(f"filter {i} invalid: topics must be a list")
        if len(topics) > MAX_TOPICS:
            raise EventParamError(f"filter {i} invalid: maximum 5 topics per filter")
        for j, cid in enumerate(ids, 1):
            if not isinstance(cid, str) or not StrKey.is_valid_contract(cid):
                raise EventParamError(f"filter {i} invalid: contract ID {j} invalid")
        parsed = [_parse_topic(i, j, t) for j, t in enumerate(topics, 1)]
        out.append({"types": type_set, "ids": set(ids), "topics": parsed})
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
    return all(seg == "*" or seg == topics[i] for i, seg in enumerate(head))


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


def _uint(params: dict[str, Any], name: str) -> int:
    value = params.get(name) or 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MASK:
        raise EventParamError(f"invalid parameters: {name} must be a uint32")
    return value


def query(
    store: EventStore,
    params: dict[str, Any],
    *,
    oldest: int,
    latest: int,
) -> tuple[list[dict[str, Any]], str]:
    """Events matching ``params``; returns (events, cursor). Raises :class:`EventParamError`
    or :class:`EventRangeError`."""
    if params.get("xdrFormat") not in (None, "", "base64"):
        raise EventParamError("the devnet answers getEvents in xdrFormat base64 only")
    pagination = params.get("pagination")
    if pagination is None:
        pagination = {}
    if not isinstance(pagination, dict):
        raise EventParamError("invalid parameters: pagination must be an object")
    raw_cursor = pagination.get("cursor")
    if raw_cursor is not None and not isinstance(raw_cursor, str):
        raise EventParamError("invalid parameters: cursor must be a string")
    limit = pagination.get("limit") or 0
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise EventParamError("invalid parameters: limit must be a positive integer")
    start_ledger = _uint(params, "startLedger")
    end_ledger = _uint(params, "endLedger")
    cursor = parse_cursor(raw_cursor) if raw_cursor else None
    # GetEventsRequest.Valid, in its order
    if cursor is not None:
        if start_ledger or end_ledger:
            raise EventParamError("ledger ranges and cursor cannot both be set")
    elif start_ledger <= 0:
        raise EventParamError("startLedger must be positive")
    if limit > MAX_LIMIT:
        raise EventParamError(f"limit must not exceed {MAX_LIMIT}")
    filters = _parse_filters(params.get("filters"))
    # the handler: resume right after the cursor, scan at most LEDGER_SCAN_LIMIT ledgers
    if cursor is not None:
        ledger, tx, op, event = cursor
        start: Cursor = (ledger, tx, op, (event + 1) & U32_MASK)
    else:
        start = (start_ledger, 0, 0, 0)
    limit = limit or DEFAULT_LIMIT
    end = min(start[0] + LEDGER_SCAN_LIMIT, latest + 1)
    if end_ledger:
        end = min(end_ledger, end)
    if not oldest <= start[0] <= latest:
        raise EventRangeError(f"startLedger must be within the ledger range: {oldest} - {latest}")
    found: list[dict[str, Any]] = []
    by_ledger = store.by_ledger
    for seq in range(start[0], end):
        for ev in by_ledger.get(seq, ()):
            if ev.cursor < start or not _matches(filters, ev):
                continue
            found.append(ev.to_json())
            if len(found) >= limit:
                return found, found[-1]["id"]
    # the end of the scanned window (endLedger is exclusive)
    return found, cursor_str((end - 1, TX_MASK, OP_MASK, U32_MASK))
