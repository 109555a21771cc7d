"""getEvents on the wire for the SoroTask contract: request params, answers, topics (no SDK).

* :func:`events_request`: the params (one filter: this contract, the three topic symbols, any
  id; the cursor carried from call to call, or a ``startLedger`` after a scan);
* :func:`parse_events`: an answer into the task ids it names (:class:`EventBatch`); topics are
  decoded by hand (``SCV_SYMBOL`` then an XDR string; ``SCV_U64`` then 8 bytes big-endian);
  events of a failed call (``inSuccessfulContractCall`` false), of other contracts or with
  other topics are ignored and counted; anything malformed raises ``RpcMalformedError``;
* :func:`cursor_ledger`: the ledger of a stellar-rpc event id or cursor, which is
  ``"%019d-%010d" % (toid, event index)`` with ``toid = ledger << 32 | tx << 12 | op``; when a
  scan ends before ``limit`` events the cursor is the end of the scanned window (its ledger,
  maximal tx, op and event).

:mod:`shard_worker.eventsync` follows the events from call to call with these.
"""

from __future__ import annotations

import binascii
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from shard_worker.errors import RpcMalformedError
from sorotask_core.contract import EVENT_GAS_DEPOSITED, EVENT_NAMES, EVENT_TASK_REGISTERED
from sorotask_core.xdr import SCV_SYMBOL, SCV_U64, b64encode, scv_symbol

__all__ = [
    "EVENT_NAMES",
    "MAX_LIMIT",
    "METHOD",
    "EventBatch",
    "cursor_ledger",
    "decode_symbol_topic",
    "decode_u64_topic",
    "events_request",
    "parse_events",
    "symbol_topic_b64",
]

METHOD = "getEvents"
#: stellar-rpc's largest page
MAX_LIMIT = 10_000
_CURSOR_RE = re.compile(r"(\d{1,19})-(\d{1,10})")

_TAG_U64 = struct.Struct(">IQ")


# ---------------------------------------------------------------------- topics


def symbol_topic_b64(name: str) -> str:
    """An ``SCV_SYMBOL`` SCVal as base64 XDR (a topic filter segment)."""
    raw = name.encode("ascii")
    if not 0 < len(raw) <= 32:
        raise ValueError("a symbol has 1 to 32 characters")
    return b64encode(scv_symbol(raw))


def _b64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("topic is not a string")
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"topic is not base64: {exc}") from None


def decode_symbol_topic(text: object) -> str:
    """The symbol in a base64 ``SCV_SYMBOL`` topic; ``ValueError`` for anything else."""
    buf = _b64(text)
    if len(buf) < 8:
        raise ValueError("topic too short for a symbol")
    kind, n = struct.unpack_from(">II", buf, 0)
    if kind != SCV_SYMBOL:
        raise ValueError(f"topic is SCVal type {kind}, not a symbol")
    if n > 32 or len(buf) != 8 + n + (-n % 4):
        raise ValueError("symbol length does not match the topic")
    if any(buf[8 + n :]):
        raise ValueError("symbol padding is not zero")
    try:
        return buf[8 : 8 + n].decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("symbol is not ASCII") from None


def decode_u64_topic(text: object) -> int:
    """The number in a base64 ``SCV_U64`` topic; ``ValueError`` for anything else."""
    buf = _b64(text)
    if len(buf) != 12:
        raise ValueError("topic is not a 12-byte u64 SCVal")
    kind, value = _TAG_U64.unpack(buf)
    if kind != SCV_U64:
        raise ValueError(f"topic is SCVal type {kind}, not u64")
    return value


_NAME_TOPICS = tuple(symbol_topic_b64(name) for name in EVENT_NAMES)
_TOPIC_NAME = dict(zip(_NAME_TOPICS, EVENT_NAMES, strict=True))


def cursor_ledger(cursor: str) -> int | None:
    """The ledger a stellar-rpc event id or cursor points into; None when it does not parse."""
    m = _CURSOR_RE.fullmatch(cursor) if isinstance(cursor, str) else None
    if m is None:
        return None
    toid = int(m.group(1))
    return toid >> 32 if toid < 1 << 63 else None


# ---------------------------------------------------------------------- request


def events_request(
    contract_id: str,
    *,
    cursor: str | None = None,
    start_ledger: int | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
    """getEvents params: exactly one of ``cursor`` (resume right after it) or
    ``start_ledger`` (inclusive; must lie in the RPC's ledger range)."""
    if (cursor is None) == (start_ledger is None):
        raise ValueError("give exactly one of cursor and start_ledger")
    if not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}")
    params: dict[str, Any] = {
        "filters": [
            {
                "type": "contract",
                "contractIds": [contract_id],
                "topics": [[topic, "*"] for topic in _NAME_TOPICS],
            }
        ],
        "pagination": {"limit": limit},
    }
    if cursor is not None:
        params["pagination"]["cursor"] = cursor
    else:
        assert start_ledger is not None
        if start_ledger <= 0:
            raise ValueError("start_ledger must be positive")
        params["startLedger"] = start_ledger
    return params


# ---------------------------------------------------------------------- answer


@dataclass(slots=True)
class EventBatch:
    """What one getEvents answer said about this contract's tasks."""

    cursor: str
    #: the ledger the cursor points into
    cursor_ledger: int
    latest_ledger: int
    oldest_ledger: int | None
    registered: set[int] = field(default_factory=set)
    deposited: set[int] = field(default_factory=set)
    withdrawn: set[int] = field(default_factory=set)
    #: events accepted (each named a task)
    events: int = 0
    #: events ignored because their contract call failed
    failed_calls: int = 0
    #: events already seen (by id)
    duplicates: int = 0
    #: events of another contract, type or topic (the filter should have left them out)
    foreign: int = 0
    #: a full page, or a scan window that ended before the latest ledger: call again now
    more: bool = False
    #: ids of the events accepted, in answer order
    event_ids: list[str] = field(default_factory=list)

    @property
    def ids(self) -> set[int]:
        """Every task id named: the entries to read again."""
        return self.registered | self.deposited | self.withdrawn

    @property
    def max_registered(self) -> int | None:
        """The highest id registered (the Counter is at least this)."""
        return max(self.registered) if self.registered else None


def _int(obj: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RpcMalformedError(METHOD, f"{name} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise RpcMalformedError(METHOD, f"{name} is not an integer") from None


def parse_events(
    result: object,
    contract_id: str,
    *,
    limit: int,
    seen: set[str] | None = None,
) -> EventBatch:
    """The task ids a getEvents ``result`` names. Ids in ``seen`` are skipped as duplicates
    (and the new ids are added to it). Raises ``RpcMalformedError`` for an answer that is not a
    getEvents answer, or an event of this contract with one of its topics that does not
    decode (a task change we cannot read is a change we would miss)."""
    if not isinstance(result, dict):
        raise RpcMalformedError(METHOD, f"result is {type(result).__name__}, expected an object")
    events = result.get("events")
    if events is None:
        events = []
    if not isinstance(events, list):
        raise RpcMalformedError(METHOD, "events is not a list")
    cursor = result.get("cursor")
    if not isinstance(cursor, str) or not cursor:
        raise RpcMalformedError(METHOD, "no cursor in the answer")
    latest = _int(result, "latestLedger")
    oldest = _int(result, "oldestLedger", required=False)
    assert latest is not None
    at = cursor_ledger(cursor)
    batch = EventBatch(
        cursor=cursor,
        cursor_ledger=at if at is not None else latest,
        latest_ledger=latest,
        oldest_ledger=oldest,
    )
    batch.more = len(events) >= limit or (at is not None and at < latest)
    for ev in events:
        if not isinstance(ev, dict):
            raise RpcMalformedError(METHOD, "an event is not an object")
        event_id = ev.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise RpcMalformedError(METHOD, "an event has no id")
        if ev.get("type", "contract") != "contract" or ev.get("contractId") != contract_id:
            batch.foreign += 1
            continue
        topics = ev.get("topic")
        if not isinstance(topics, list) or not topics:
            raise RpcMalformedError(METHOD, f"event {event_id} has no topics")
        name = _TOPIC_NAME.get(topics[0])
        if name is None:
            # not one of ours byte for byte: still check it is a symbol at all
            try:
                decode_symbol_topic(topics[0])
            except ValueError as exc:
                raise RpcMalformedError(METHOD, f"event {event_id}: {exc}") from None
            batch.foreign += 1
            continue
        if len(topics) != 2:
            raise RpcMalformedError(
                METHOD, f"event {event_id}: {name} with {len(topics)} topics, expected 2"
            )
        try:
            task_id = decode_u64_topic(topics[1])
        except ValueError as exc:
            raise RpcMalformedError(METHOD, f"event {event_id}: {name} id: {exc}") from None
        if ev.get("inSuccessfulContractCall", True) is False:
            batch.failed_calls += 1
            continue
        if seen is not None:
            if event_id in seen:
                batch.duplicates += 1
                continue
            seen.add(event_id)
        batch.event_ids.append(event_id)
        batch.events += 1
        if name == EVENT_TASK_REGISTERED:
            batch.registered.add(task_id)
        elif name == EVENT_GAS_DEPOSITED:
            batch.deposited.add(task_id)
        else:
            batch.withdrawn.add(task_id)
    return batch
