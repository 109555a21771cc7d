"""Pipe protocol between the supervisor and its workers: explicit, versioned, orjson bytes.

Every message is one JSON object ``{"v": 1, "type": TYPE, ...fields}`` sent with
``Connection.send_bytes`` (never pickle: a worker must not be able to make the supervisor run
code). The receiver validates the version, the type for its direction, the required fields and
their JSON types, and the size (at most :data:`MAX_MESSAGE_BYTES`).

supervisor -> worker
    ``spec {spec, entry}``  the shard's WorkerSpec (``entry`` = "module:function" keeper)
    ``stop {}``             drain in-flight transactions and exit 0
worker -> supervisor
    ``started {pid}``       the worker process is up and has its spec (readiness)
    ``hello {pid, keeper_public_key, channel_public_keys}``  the keeper started
    ``heartbeat {}``        liveness (every fifth of ``heartbeat_timeout_s``, at most 2 s)
    ``cycle {stats}``       one poll cycle's CycleStats (fields: ``sorotask_core.stats``)
    ``event {kind, data}``  a task outcome
    ``fatal {code, message}``  a fatal error; the worker exits with ``code`` next
    ``goodbye {final}``     final statistics before a clean exit
    ``endpoints {figures}`` each RPC endpoint's figures (a shard with ``network.rpc_urls``;
                            at most once a second): labels only, never a URL or header value
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sorotask_core.stats import CYCLE_FIELDS, problem

VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20

#: type -> {field: accepted python types after JSON decoding}
TO_WORKER: dict[str, dict[str, tuple[type, ...]]] = {
    "spec": {"spec": (dict,), "entry": (str,)},
    "stop": {},
}
FROM_WORKER: dict[str, dict[str, tuple[type, ...]]] = {
    "started": {"pid": (int,)},
    "hello": {"pid": (int,), "keeper_public_key": (str,), "channel_public_keys": (list,)},
    "heartbeat": {},
    "cycle": {"stats": (dict,)},
    "event": {"kind": (str,), "data": (dict,)},
    "fatal": {"code": (int,), "message": (str,)},
    "goodbye": {"final": (dict,)},
    "endpoints": {"figures": (dict,)},
}


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
    """Every field declared in ``sorotask_core.stats`` that is present has a valid value (a
    missing one means its default; unknown keys are ignored)."""
    for f in CYCLE_FIELDS:
        if f.name in stats:
            why = problem(f, stats[f.name])
            if why is not None:
                raise ProtocolError(f"cycle: stats.{f.name} {why}")


def _check_pid(msg: Message) -> None:
    if msg["pid"] <= 0:
        raise ProtocolError(f"{msg.type}: bad pid")


def _check_hello(msg: Message) -> None:
    if not all(isinstance(k, str) for k in msg["channel_public_keys"]):
        raise ProtocolError("hello: channel_public_keys must be strings")
    _check_pid(msg)


def _check_endpoints(msg: Message) -> None:
    eps = msg["figures"].get("endpoints")
    if not isinstance(eps, list) or not all(
        isinstance(e, dict) and isinstance(e.get("endpoint"), str) for e in eps
    ):
        raise ProtocolError("endpoints: figures.endpoints must be a list of endpoint figures")


#: checks beyond the field types, by message type
CONTENT_CHECKS: dict[str, Callable[[Message], None]] = {
    "started": _check_pid,
    "hello": _check_hello,
    "cycle": lambda msg: _check_cycle_stats(msg["stats"]),
    "endpoints": _check_endpoints,
}


def decode_from_worker(data: bytes) -> Message:
    """Validate a worker's message; raises ProtocolError."""
    msg = _decode(data, FROM_WORKER)
    check = CONTENT_CHECKS.get(msg.type)
    if check is not None:
        check(msg)
    return msg


def decode_to_worker(data: bytes) -> Message:
    """Validate the supervisor's message in a worker; raises ProtocolError."""
    return _decode(data, TO_WORKER)
