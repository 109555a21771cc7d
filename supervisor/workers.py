"""One shard's worker process as the arbiter handles it: start, pipe, signals, reaping.

A :class:`Worker` holds the process handles and the arbiter's timers for one shard; it is used
by the arbiter's main thread only. What the worker *says* goes to the registry, not here.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil
from loguru import logger

from supervisor import messages
from supervisor.config import ShardPlan
from supervisor.restarts import RestartBudget
from supervisor.worker_process import child_main, heartbeat_every_s


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(slots=True)
class Worker:
    """The arbiter's handle on one shard's current worker process."""

    name: str
    #: the keeper function the worker runs ("module:function")
    entry: str
    budget: RestartBudget = field(default_factory=RestartBudget)
    proc: Any = None
    conn: Connection | None = None
    ps: psutil.Process | None = None
    stop_requested: bool = False
    term_at: float | None = None
    kill_at: float | None = None
    hung: bool = False
    protocol_error: str | None = None
    backoff_until: float | None = None
    #: a reload changed the shard: start this plan once the current worker has stopped
    respawn_plan: ShardPlan | None = None
    #: a reload removed the shard: forget it once the current worker has stopped
    remove_after_stop: bool = False
    #: stopped by the operator (``sorotask ctl stop``): not started again until ``ctl start``
    held: bool = False
    #: a failed shard is started again at this monotonic time (``restart.failed_cooldown_s``)
    retry_at: float | None = None
    #: why the memory guard is draining this worker (it is then replaced, through the backoff)
    memory_drain: str | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(
        self,
        ctx: Any,
        plan: ShardPlan,
        log: dict[str, Any],
        orphan_grace_s: float,
        heartbeat_timeout_s: float,
    ) -> int:
        """Start a worker process and send it its spec; returns its pid (raises if it cannot
        start). It beats every :func:`heartbeat_every_s` of ``heartbeat_timeout_s``."""
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=child_main,
            args=(child, self.name, log, orphan_grace_s, heartbeat_every_s(heartbeat_timeout_s)),
            name=f"sorotask-worker-{self.name}",
            daemon=True,
        )
        try:
            proc.start()
        except Exception:
            child.close()
            parent.close()
            raise
        child.close()
        self.proc, self.conn, self.ps = proc, parent, None
        self.stop_requested = self.hung = False
        self.term_at = self.kill_at = self.backoff_until = self.retry_at = None
        self.protocol_error = self.memory_drain = None
        try:
            parent.send_bytes(messages.encode("spec", spec=plan.spec.to_dict(), entry=self.entry))
        except (OSError, messages.ProtocolError) as exc:
            logger.error("shard {}: cannot send the spec: {}", self.name, exc)
        return int(proc.pid)

    def signal(self, sig: int) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)

    def ask_stop(self, kill_at: float) -> None:
        """Graceful stop: a stop message (SIGTERM if the pipe is gone); SIGKILL at ``kill_at``."""
        self.stop_requested = True
        try:
            assert self.conn is not None
            self.conn.send_bytes(messages.encode("stop"))
        except (OSError, AssertionError):
            self.signal(signal.SIGTERM)
        self.kill_at = kill_at

    def terminate(self, now: float, kill_grace_s: float) -> None:
        """SIGTERM (and SIGCONT, for a stopped process) now, SIGKILL after the grace."""
        self.hung = True
        self.term_at = now
        self.kill_at = now + kill_grace_s
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)

    def receive(self, limit: int) -> Iterator[bytes]:
        """Up to ``limit`` waiting messages. At EOF the pipe is closed; an unreadable pipe is
        closed and raises OSError (e.g. a message over the size limit)."""
        conn = self.conn
        if conn is None:
            return
        for _ in range(limit):
            try:
                if not conn.poll():
                    return
                data = conn.recv_bytes(messages.MAX_MESSAGE_BYTES)
            except EOFError:
                self.close_pipe()
                return
            except OSError:
                self.close_pipe()
                raise
            yield data

    def close_pipe(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
            self.conn = None

    def reap(self) -> int | None:
        """Collect the exited process; its exit code (negative: killed by that signal)."""
        proc = self.proc
        proc.join(timeout=1.0)
        code = proc.exitcode
        self.close_pipe()
        with contextlib.suppress(ValueError):
            proc.close()
        self.proc = self.ps = None
        return code

    def kill_now(self) -> None:
        """SIGKILL and wait (at exit of the supervisor)."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.join(timeout=5)
        self.proc = None

    def sample(self) -> tuple[int, float] | None:
        """(RSS bytes, CPU percent since the last sample), None if it cannot be read."""
        pid = self.pid
        if pid is None:
            return None
        try:
            if self.ps is None or self.ps.pid != pid:
                self.ps = psutil.Process(pid)
                self.ps.cpu_percent(None)
            return self.ps.memory_info().rss, self.ps.cpu_percent(None)
        except (psutil.Error, OSError):
            self.ps = None
            return None
