"""Pipe protocol between the supervisor and its workers: explicit, versioned, orjson bytes.

Every message is one JSON object ``{"v": 1, "type": TYPE, ...fields}`` sent with
``Connection.send_bytes`` (never pickle: a worker must not be able to make the supervisor run
code). The receiver validates the version, the type for its direction, the required fields and
their JSON types, and the size (at most :data:`MAX_MESSAGE_BYTES`).

supervisor -> worker
    ``spec {spec, entry}``  the shard's WorkerSpec (``entry`` = "module:function" keeper)
    ``stop {}``             drain in-flight transactions and exit 0
    ``reload {spec}``       reserved (the supervisor restarts changed shards instead)
worker -> supervisor
    ``started {pid}``       the worker process is up and has its spec (readiness)
    ``hello {pid, keeper_public_key, channel_public_keys}``  the keeper started
    ``heartbeat {}``        liveness (at least every second)
    ``cycle {stats}``       one poll cycle's CycleStats
    ``event {kind, data}``  a task outcome
    ``fatal {code, message}``  a fatal error; the worker exits with ``code`` next
    ``goodbye {final}``     final statistics before a clean exit
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20

_NUM = (int, float)

#: type -> {field: accepted python types after JSON decoding}
TO_WORKER: dict[str, dict[str, tuple[type, ...]]] = {
    "spec": {"spec": (dict,), "entry": (str,)},
    "stop": {},
    "reload": {"spec": (dict,)},
}
FROM_WORKER: dict[str, dict[str, tuple[type, ...]]] = {
    "started": {"pid": (int,)},
    "hello": {"pid": (int,), "keeper_public_key": (str,), "channel_public_keys": (list,)},
    "heartbeat": {},
    "cycle": {"stats": (dict,)},
    "event": {"kind": (str,), "data": (dict,)},
    "fatal": {"code": (int,), "message": (str,)},
    "goodbye": {"final": (dict,)},
}

#: CycleStats fields the supervisor aggregates, with their types
CYCLE_INT_FIELDS = (
    "cycle",
    "ledger",
    "checked",
    "due",
    "read_errors",
    "executed",
    "failed",
    "not_sent_by_simulation",
    "in_flight",
    "queue_depth",
    "fees_spent",
)
CYCLE_NUM_FIELDS = ("duration_s", "mean_execution_s")
CYCLE_DICT_INT_FIELDS = ("skipped", "rpc_calls", "rpc_errors")
CYCLE_DICT_NUM_FIELDS = ("rpc_latency_s",)


class ProtocolError(ValueError):
    """A message that breaks the protocol (the sending worker gets restarted)."""


@dataclass(frozen=True, slots=True)
class Message:
    type: str
    fields: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def encode(type_: str, **fields: Any) -> bytes:
    """Encode one message; raises ProtocolError for an unknown type or an oversized result."""
    if type_ not in TO_WORKER and type_ not in FROM_WORKER:
        raise ProtocolError(f"unknown message type {type_!r}")
    data = orjson.dumps({"v": VERSION, "type": type_, **fields})
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"{type_} message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


def _is_type(v: Any, types: tuple[type, ...]) -> bool:
    if isinstance(v, bool) and bool not in types:
        return False
    return isinstance(v, types)


def _decode(data: bytes, schema: dict[str, dict[str, tuple[type, ...]]]) -> Message:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError("message is not bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("message is not a JSON object")
    v = obj.pop("v", None)
    if not _is_type(v, (int,)) or v != VERSION:
        raise ProtocolError(f"unsupported protocol version {v!r} (expected {VERSION})")
    type_ = obj.pop("type", None)
    if not isinstance(type_, str) or type_ not in schema:
        raise ProtocolError(f"unexpected message type {type_!r}")
    fields = schema[type_]
    for name, types in fields.items():
        if name not in obj:
            raise ProtocolError(f"{type_}: missing field {name!r}")
        if not _is_type(obj[name], types):
            raise ProtocolError(f"{type_}: field {name!r} has the wrong type")
    extra = set(obj) - set(fields)
    if extra:
        raise ProtocolError(f"{type_}: unknown fields {', '.join(sorted(extra))}")
    return Message(type_, obj)


def _check_cycle_stats(stats: dict[str, Any]) -> None:
    def bad(name: str) -> ProtocolError:
        return ProtocolError(f"cycle: stats.{name} is missing or has the wrong type")

    for name in CYCLE_INT_FIELDS:
        v = stats.get(name, 0)
        if not _is_type(v, (int,)) or v < 0:
            raise bad(name)
    for name in CYCLE_NUM_FIELDS:
        v = stats.get(name, 0.0)
        if not _is_type(v, _NUM) or not math.isfinite(v) or v < 0:
            raise bad(name)
    for name in CYCLE_DICT_INT_FIELDS + CYCLE_DICT_NUM_FIELDS:
        d = stats.get(name, {})
        if not isinstance(d, dict):
            raise bad(name)
        for k, v in d.items():
            ok = _is_type(v, (int,) if name in CYCLE_DICT_INT_FIELDS else _NUM)
            if not isinstance(k, str) or not ok or v < 0:
                raise bad(f"{name}[{k!r}]")
    if not isinstance(stats.get("shard", ""), str):
        raise bad("shard")
    err = stats.get("cycle_error")
    if err is not None and not isinstance(err, str):
        raise bad("cycle_error")


def decode_from_worker(data: bytes) -> Message:
    """Validate a worker's message; raises ProtocolError."""
    msg = _decode(data, FROM_WORKER)
    if msg.type == "hello" and not all(isinstance(k, str) for k in msg["channel_public_keys"]):
        raise ProtocolError("hello: channel_public_keys must be strings")
    if msg.type == "cycle":
        _check_cycle_stats(msg["stats"])
    if msg.type in ("started", "hello") and msg["pid"] <= 0:
        raise ProtocolError(f"{msg.type}: bad pid")
    return msg


def decode_to_worker(data: bytes) -> Message:
    """Validate the supervisor's message in a worker; raises ProtocolError."""
    return _decode(data, TO_WORKER)
