"""Following the SoroTask contract's events with getEvents: which tasks changed since last time.

Only three calls change what a keeper decides on, and each emits an event naming the task
(../shared/SOROBAN_FACTS.md, "Events of the SoroTask contract"): ``register``
("TaskRegistered", id), ``deposit_gas`` ("GasDeposited", id), ``withdraw_gas`` ("GasWithdrawn",
id). ``execute`` emits nothing and only moves ``last_run`` forward, which the due index covers.

Here, without stellar-sdk:

* :func:`events_request`: the getEvents params (one filter: this contract, the three topic
  symbols, any id; the cursor carried from call to call, or a ``startLedger`` after a scan);
* :func:`parse_events`: an answer into the task ids it names (:class:`EventBatch`); topics are
  decoded by hand (``SCV_SYMBOL`` then an XDR string; ``SCV_U64`` then 8 bytes big-endian);
  events of a failed call (``inSuccessfulContractCall`` false), of other contracts or with
  other topics are ignored and counted; anything malformed raises ``RpcMalformedError``;
* :class:`EventSync`: the position (cursor and its ledger), deduplication by event id, and the
  decision, with a reason for the log, that only a full re-read is safe: no position yet, a
  position older than the RPC's oldest ledger (retention), a -32600 "startLedger must be within
  the ledger range" below the range, a getEvents failure, a saved position for another
  contract or ahead of the network.

stellar-rpc's event ids and cursors are ``"%019d-%010d" % (toid, event index)`` where
``toid = ledger << 32 | tx << 12 | op``; when a scan ends before ``limit`` events the cursor is
the end of the scanned window (its ledger, maximal tx, op and event).
"""

from __future__ import annotations

import binascii
import re
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from shard_worker.decode import _SYMBOL as SCV_SYMBOL  # tomorrow: sorotask_core.xdr
from shard_worker.decode import _U64T as SCV_U64  # tomorrow: sorotask_core.xdr
from shard_worker.errors import RpcError, RpcMalformedError, RpcResponseError

__all__ = [
    "EVENT_NAMES",
    "MAX_LIMIT",
    "EventBatch",
    "EventSync",
    "Position",
    "cursor_ledger",
    "decode_symbol_topic",
    "decode_u64_topic",
    "events_request",
    "parse_events",
    "symbol_topic_b64",
    "window_reason",
]

METHOD = "getEvents"
#: the events that name a task whose entry must be read again
EVENT_NAMES = ("TaskRegistered", "GasDeposited", "GasWithdrawn")
#: stellar-rpc's largest page
MAX_LIMIT = 10_000
#: JSON-RPC "invalid request": what stellar-rpc answers for a start outside its ledger range
INVALID_REQUEST = -32600
_RANGE_RE = re.compile(r"startLedger must be within the ledger range:\s*(\d+)\s*-\s*(\d+)")
_CURSOR_RE = re.compile(r"(\d{1,19})-(\d{1,10})")

_U32 = struct.Struct(">I")
_TAG_U64 = struct.Struct(">IQ")


# ---------------------------------------------------------------------- topics


def symbol_topic_b64(name: str) -> str:
    """An ``SCV_SYMBOL`` SCVal as base64 XDR (a topic filter segment)."""
    raw = name.encode("ascii")
    if not 0 < len(raw) <= 32:
        raise ValueError("a symbol has 1 to 32 characters")
    body = _U32.pack(SCV_SYMBOL) + _U32.pack(len(raw)) + raw + b"\0" * (-len(raw) % 4)
    return binascii.b2a_base64(body, newline=False).decode("ascii")


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
        if name == "TaskRegistered":
            batch.registered.add(task_id)
        elif name == "GasDeposited":
            batch.deposited.add(task_id)
        else:
            batch.withdrawn.add(task_id)
    return batch


# ---------------------------------------------------------------------- the follower


@dataclass(frozen=True, slots=True)
class Position:
    """Where the next getEvents call starts: right after ``cursor``, or at ``ledger`` itself
    when there is no cursor (just after a full scan). ``ledger`` is what retention is checked
    against."""

    ledger: int
    cursor: str | None = None


class EventSync:
    """One shard's event follower: builds each request, digests each answer, and says when
    only a full re-read is safe.

    Usage, once a ledger::

        if sync.rescan_reason: full scan (noting the latest ledger L0 first); sync.start_at(L0)
        params = sync.request()
        try: batch = sync.accept(await rpc.call("getEvents", params))
        except RpcError as exc: sync.fail(exc)   # may set rescan_reason
        re-read batch.ids (and the Counter when batch.registered); repeat while batch.more

    ``rescan_after_failures`` consecutive getEvents failures (default 1: any failure, as issue
    12 asks) drop the position. A node whose latest ledger is up to ``lag_tolerance`` ledgers
    behind the position (a lagging replica behind a load balancer) is not a failure: the same
    request is made again later; further behind, it is taken for a reset network.
    """

    def __init__(
        self,
        contract_id: str,
        *,
        limit: int = 1000,
        recent_ids: int = 20_000,
        rescan_after_failures: int = 1,
        lag_tolerance: int = 10,
    ) -> None:
        if not 0 < limit <= MAX_LIMIT or recent_ids < 1 or rescan_after_failures < 1:
            raise ValueError("limit 1..10000, recent_ids >= 1, rescan_after_failures >= 1")
        if lag_tolerance < 0:
            raise ValueError("lag_tolerance >= 0")
        #: how far ahead of a node's latest ledger the position may be before it is taken for
        #: a reset network rather than a lagging node
        self.lag_tolerance = lag_tolerance
        self.contract_id = contract_id
        self.limit = limit
        self.rescan_after_failures = rescan_after_failures
        self.position: Position | None = None
        #: why a full re-read is needed (None while the events can be followed)
        self.rescan_reason: str | None = "no events position yet (first start)"
        self.failures = 0
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._recent = recent_ids

    # ------------------------------------------------------------------ position

    def start_at(self, ledger: int) -> None:
        """A full scan that began at ``ledger`` (the latest ledger seen before its first read)
        is done: follow events from that ledger on (its events may be seen twice: harmless)."""
        if ledger <= 0:
            raise ValueError("ledger must be positive")
        self.position = Position(ledger)
        self.rescan_reason = None
        self.failures = 0

    def resume(self, position: Position, *, oldest_ledger: int, latest_ledger: int) -> str | None:
        """Resume from a saved position after a restart, given the RPC's ledger range (from
        getHealth). Returns None when resumed; else the reason a full re-read is needed
        (also left in :attr:`rescan_reason`)."""
        reason = window_reason(
            position.ledger, oldest_ledger, latest_ledger, lag_tolerance=self.lag_tolerance
        )
        if reason is not None:
            self._drop(f"restart: {reason}")
            return self.rescan_reason
        self.position = position
        self.rescan_reason = None
        self.failures = 0
        return None

    def check_window(self, oldest_ledger: int, latest_ledger: int) -> str | None:
        """Check the position against the RPC's range (getHealth's oldestLedger, say): drops
        it and returns the reason when events between it and now are gone."""
        if self.position is None:
            return self.rescan_reason
        if self.position.ledger < oldest_ledger:
            self._drop(window_reason(self.position.ledger, oldest_ledger, latest_ledger) or "")
        return self.rescan_reason

    def _drop(self, reason: str) -> None:
        self.position = None
        self.rescan_reason = reason
        self.failures = 0

    # ------------------------------------------------------------------ calls

    def request(self) -> dict[str, Any]:
        """The params of the next getEvents call."""
        pos = self.position
        if pos is None:
            raise RuntimeError(f"no events position: full re-read needed ({self.rescan_reason})")
        if pos.cursor is not None:
            return events_request(self.contract_id, cursor=pos.cursor, limit=self.limit)
        return events_request(self.contract_id, start_ledger=pos.ledger, limit=self.limit)

    def accept(self, result: object) -> EventBatch:
        """Digest a getEvents answer to :meth:`request`: moves the position to its cursor.
        A malformed answer counts as a failure (see :meth:`fail`) and is raised."""
        if self.position is None:
            raise RuntimeError("accept() without a position")
        try:
            batch = parse_events(result, self.contract_id, limit=self.limit, seen=self._seen)
        except RpcMalformedError as exc:
            self.fail(exc)
            raise
        if batch.oldest_ledger is not None and self.position.ledger < batch.oldest_ledger:
            # the server answered although our start is gone: events may be missing
            self._drop(
                window_reason(self.position.ledger, batch.oldest_ledger, batch.latest_ledger) or ""
            )
            return batch
        self.position = Position(batch.cursor_ledger, batch.cursor)
        self.failures = 0
        self._remember_seen(batch.event_ids)
        return batch

    def _remember_seen(self, event_ids: list[str]) -> None:
        """Keep the most recent ``recent_ids`` event ids (older ones lie behind the cursor)."""
        seen, order = self._seen, self._order
        order.extend(event_ids)
        while len(order) > self._recent:
            seen.discard(order.popleft())

    def fail(self, error: BaseException | str) -> str | None:
        """A getEvents call failed. Returns the rescan reason when the position is dropped,
        None when the same request should simply be made again later."""
        pos = self.position
        if isinstance(error, RpcResponseError) and error.code == INVALID_REQUEST:
            m = _RANGE_RE.search(error.rpc_message)
            if m is not None and pos is not None:
                oldest, latest = int(m.group(1)), int(m.group(2))
                if latest < pos.ledger <= latest + self.lag_tolerance:
                    return None  # a node behind us: not a failure, ask again later
                self._drop(
                    window_reason(pos.ledger, oldest, latest, lag_tolerance=self.lag_tolerance)
                    or f"getEvents refused the position (ledger {pos.ledger}): {error.rpc_message}"
                )
                return self.rescan_reason
        self.failures += 1
        if self.failures >= self.rescan_after_failures:
            what = str(error) if isinstance(error, (RpcError, str)) else repr(error)
            n = self.failures
            self._drop(f"getEvents failed{f' {n} times in a row' if n > 1 else ''}: {what}")
            return self.rescan_reason
        return None


def window_reason(
    position_ledger: int, oldest_ledger: int, latest_ledger: int, *, lag_tolerance: int = 0
) -> str | None:
    """Why events since ``position_ledger`` cannot be followed on an RPC holding
    ``oldest_ledger .. latest_ledger``; None when they can. A position up to
    ``lag_tolerance`` ledgers ahead of the RPC is a lagging node, not a reset network."""
    if position_ledger < oldest_ledger:
        return (
            f"the events position (ledger {position_ledger}) is older than the RPC's oldest "
            f"ledger {oldest_ledger}: {oldest_ledger - position_ledger} ledgers of events are "
            f"gone (retention {latest_ledger - oldest_ledger + 1} ledgers)"
        )
    if position_ledger > latest_ledger + lag_tolerance:
        return (
            f"the events position (ledger {position_ledger}) is ahead of the RPC's latest "
            f"ledger {latest_ledger} (a reset network, or another RPC)"
        )
    return None
