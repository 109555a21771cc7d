"""What the supervisor does with each message from a worker: one handler per type, in a table.

:func:`dispatch` runs inside ``Registry.edit`` (the arbiter holds the shard's record open): a
handler checks the message against the conversation so far and records what it says. A
message out of order raises :class:`~supervisor.messages.ProtocolError` (the arbiter then
replaces the worker). Handlers never touch processes or pipes.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from shard_worker.reporting import format_event
from sorotask_core.stats import OUTCOMES
from supervisor.messages import FROM_WORKER, Message, ProtocolError
from supervisor.registry import ShardRecord, State
from supervisor.stats import bounded_update

Handler = Callable[[ShardRecord, Message, float], None]

#: messages a worker may not send after its goodbye
NOT_AFTER_GOODBYE = frozenset({"hello", "cycle", "goodbye"})


def _check_pid(rec: ShardRecord, msg: Message) -> None:
    if msg["pid"] != rec.pid:
        raise ProtocolError(f"{msg.type}: pid {msg['pid']} is not {rec.pid}")


def on_heartbeat(rec: ShardRecord, msg: Message, now: float) -> None:
    """Liveness only: :func:`dispatch` has already noted the time."""


def on_started(rec: ShardRecord, msg: Message, now: float) -> None:
    _check_pid(rec, msg)
    if rec.death_at is not None:
        rec.replacement["ready_ms"] = (now - rec.death_at) * 1000


def on_hello(rec: ShardRecord, msg: Message, now: float) -> None:
    if rec.hello is not None:
        raise ProtocolError("second hello")
    _check_pid(rec, msg)
    rec.hello = dict(msg.fields)
    key = msg["keeper_public_key"]
    expected = rec.plan.keeper_public_key
    if expected and key != expected:
        logger.warning(
            "shard {}: keeper key {} differs from the validated {}: secret changed?",
            rec.name,
            key,
            expected,
        )
    if rec.state == State.STARTING:
        rec.state = State.RUNNING
    if rec.death_at is not None:
        rec.replacement["hello_ms"] = (now - rec.death_at) * 1000
    logger.info("shard {}: keeper {} running (pid {})", rec.name, key, rec.pid)


def on_cycle(rec: ShardRecord, msg: Message, now: float) -> None:
    if rec.hello is None:
        raise ProtocolError("cycle before hello")
    stats = msg["stats"]
    rec.totals.add_cycle(stats)
    rec.life.add_cycle(stats)
    rec.last_cycle = stats
    rec.last_cycle_at = now
    if rec.death_at is not None and "first_cycle_ms" not in rec.replacement:
        rec.replacement["first_cycle_ms"] = (now - rec.death_at) * 1000
        logger.info(
            "shard {}: replacement timing {}",
            rec.name,
            {k: round(v, 1) for k, v in rec.replacement.items()},
        )


def on_event(rec: ShardRecord, msg: Message, now: float) -> None:
    bounded_update(rec.totals.events, {msg["kind"]: 1})


def on_fatal(rec: ShardRecord, msg: Message, now: float) -> None:
    rec.fatal = dict(msg.fields)
    logger.error("shard {}: fatal error (code {}): {}", rec.name, msg["code"], msg["message"])


def on_goodbye(rec: ShardRecord, msg: Message, now: float) -> None:
    rec.final = dict(msg["final"])
    # transactions confirmed while draining are in no cycle: count them from the final report
    for key in OUTCOMES:
        value = rec.final.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            extra = value - getattr(rec.life, key)
            if extra > 0:
                setattr(rec.totals, key, getattr(rec.totals, key) + extra)
                setattr(rec.life, key, value)
    shown = {k: v for k, v in rec.final.items() if k != "would_execute"}  # a dry run's list
    logger.info("shard {}: {}", rec.name, format_event("goodbye", shown))  # key=value


def on_endpoints(rec: ShardRecord, msg: Message, now: float) -> None:
    """The latest figures of the shard's RPC endpoints (replaced each time)."""
    rec.endpoints = msg["figures"]


HANDLERS: dict[str, Handler] = {
    "heartbeat": on_heartbeat,
    "started": on_started,
    "hello": on_hello,
    "cycle": on_cycle,
    "event": on_event,
    "fatal": on_fatal,
    "goodbye": on_goodbye,
    "endpoints": on_endpoints,
}
assert HANDLERS.keys() == FROM_WORKER.keys(), "every worker message type needs a handler"


def dispatch(rec: ShardRecord, msg: Message, now: float) -> None:
    """Apply one validated worker message to its shard's record; raises ProtocolError."""
    rec.last_msg_at = now
    if rec.final is not None and msg.type in NOT_AFTER_GOODBYE:
        raise ProtocolError(f"{msg.type} after goodbye")
    HANDLERS[msg.type](rec, msg, now)
