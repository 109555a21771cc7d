"""What each ``sorotask ctl`` command does, run by the arbiter's main loop.

The control socket's threads only queue a :class:`~supervisor.control.Request`; the main loop
calls :func:`answer` for it (``Arbiter.handle_ctl``), so these functions change shard state in
the one thread that owns it. A stopped shard (``stop``) stays stopped, through worker exits and
reloads, until ``start``; ``restart`` drains the worker and starts a new one; ``start`` also
starts a failed or backing-off shard at once; ``reload`` is SIGHUP's reload.
"""

from __future__ import annotations

from typing import Any, Protocol

from loguru import logger

from supervisor.control import Request
from supervisor.pool import Pool
from supervisor.registry import State
from supervisor.view import View


class Controlled(Protocol):
    """What the commands need of the arbiter (which calls :func:`answer` with itself)."""

    view: View
    pool: Pool
    stopping: bool
    config_path: str | None
    #: what the last reload did, or why it was refused
    last_reload: str

    def reload(self) -> bool: ...


def stop_shard(pool: Pool, name: str) -> str:
    """Drain the shard's worker; it stays stopped until :func:`start_shard`."""
    w, rec = pool.workers[name], pool.registry[name]
    w.respawn_plan = w.memory_drain = w.retry_at = w.backoff_until = None
    if w.held:
        return f"shard {name} is already {'stopping' if w.alive else 'stopped'}"
    w.held = True
    if w.alive:
        if not w.stop_requested:
            pool.ask_stop(w, pool.settings.shutdown_grace_s)
        logger.info("shard {}: stop requested by sorotask ctl (pid {})", name, w.pid)
        return (
            f"stopping shard {name}: worker pid {w.pid} finishes its in-flight transactions; "
            f"the shard stays stopped until `sorotask ctl start {name}`"
        )
    was = rec.state
    pool.registry.update(name, state=State.STOPPED, failed_reason=None)
    logger.info("shard {}: stopped by sorotask ctl (was {})", name, was)
    return f"shard {name} stopped (was {was}); `sorotask ctl start {name}` starts it"


def start_shard(pool: Pool, name: str) -> str:
    """Start a stopped, failed or backing-off shard now."""
    w, rec = pool.workers[name], pool.registry[name]
    if w.alive and not w.held:
        return f"shard {name} is already {rec.state} (worker pid {w.pid})"
    w.held = False
    if w.alive:  # still draining after a stop: a new worker starts once it has exited
        w.respawn_plan = rec.plan
        return f"shard {name} is still stopping; a new worker starts once it has exited"
    logger.info("shard {}: started by sorotask ctl (was {})", name, rec.state)
    w.budget.reset()
    pool.registry.update(name, failed_reason=None, death_at=None)
    pool.spawn(w)
    if w.alive:
        return f"shard {name} started: worker pid {w.pid}"
    return f"shard {name} could not start ({rec.state}); see the supervisor log"


def restart_shard(pool: Pool, name: str) -> str:
    """Drain the shard's worker and start a new one (a stopped shard just starts)."""
    w, rec = pool.workers[name], pool.registry[name]
    if not w.alive:
        return start_shard(pool, name)
    w.held = False
    w.memory_drain = None
    w.respawn_plan = rec.plan
    if not w.stop_requested:
        pool.ask_stop(w, pool.settings.shutdown_grace_s)
    logger.info("shard {}: restart requested by sorotask ctl (pid {})", name, w.pid)
    return f"restarting shard {name}: worker pid {w.pid} drains, then a new one starts"


SHARD_COMMANDS = {"stop": stop_shard, "start": start_shard, "restart": restart_shard}


def answer(arbiter: Controlled, request: Request) -> dict[str, Any]:
    """The reply to one request (main loop only)."""
    if request.command == "status":
        return {"ok": True, "status": arbiter.view.status()}
    if arbiter.stopping:
        return {"ok": False, "error": "the supervisor is shutting down"}
    if request.command == "reload":
        logger.info("sorotask ctl reload: reloading {}", arbiter.config_path)
        if arbiter.reload():
            return {"ok": True, "message": f"reloaded {arbiter.config_path}: {arbiter.last_reload}"}
        return {"ok": False, "error": f"reload refused: {arbiter.last_reload}"}
    name = request.shard or ""
    if name not in arbiter.pool.workers:
        here = ", ".join(arbiter.pool.workers) or "none"
        return {"ok": False, "error": f"unknown shard {name!r}; shards on this host: {here}"}
    return {"ok": True, "message": SHARD_COMMANDS[request.command](arbiter.pool, name)}
