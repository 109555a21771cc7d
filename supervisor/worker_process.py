"""The worker process: one shard's keeper, started by the supervisor from a forkserver.

The forkserver preloads :data:`PRELOAD` once, so a new worker is a fork of an interpreter that
already has the keeper and its libraries (aiohttp, PyNaCl, orjson, loguru) imported: ready in
milliseconds. The worker never imports stellar-sdk (it builds its transactions from bytes),
which keeps a worker's RSS near 55 MiB at 25k tasks.

In the child (:func:`child_main`):

* ``PR_SET_PDEATHSIG`` (Linux) plus two parent checks (parent pid changes; the supervisor's end
  of the pipe reaches EOF) make an orphaned worker stop, and exit with ``ExitCode.ORPHANED``
  within ``orphan_grace_s`` at the latest, even when the supervisor died by SIGKILL;
* loguru writes to the shard's own log file;
* the first pipe message is the ``spec``; the worker answers ``started`` and runs the keeper
  coroutine ``entry(spec, reporter, stop)`` in an asyncio loop; a :class:`PipeReporter` turns
  the keeper's reports into pipe messages;
* a ``stop`` message or SIGTERM set ``stop``: the keeper drains and returns; SIGINT is
  ignored (a terminal's Ctrl-C reaches the whole process group: the supervisor drains its
  workers, or kills them on a second Ctrl-C; a worker stopping on its own would look like a
  crash to it, and it would start a replacement);
* the exit code is the keeper's return value (``ExitCode.CRASH`` if it raised).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger

from shard_worker.reporting import LoggingReporter
from shard_worker.spec import CycleStats, WorkerSpec
from sorotask_core.exitcodes import ExitCode
from supervisor import messages
from supervisor.logsetup import LogSettings, configure, redact

DEFAULT_ENTRY = "shard_worker.keeper:run_keeper"
FALLBACK_ENTRY = "shard_worker:run_keeper"
#: modules the forkserver imports once, before it forks any worker
PRELOAD = [
    "orjson",
    "loguru",
    "aiohttp",
    "nacl.signing",
    "shard_worker",
    "shard_worker.spec",
    "shard_worker.keeper",
    "supervisor.messages",
    "supervisor.logsetup",
    "supervisor.worker_process",
]
PR_SET_PDEATHSIG = 1
SPEC_TIMEOUT_S = 30.0
#: the longest interval between a worker's heartbeats (and its parent checks)
HEARTBEAT_MAX_S = 2.0

KeeperFn = Callable[[WorkerSpec, Any, asyncio.Event], Awaitable[int]]


def heartbeat_every_s(heartbeat_timeout_s: float) -> float:
    """How often a worker beats (and checks its parent) for a supervisor that declares it
    hung after ``heartbeat_timeout_s`` without a message: a fifth of that, so a late beat or
    two is never a hang, at most :data:`HEARTBEAT_MAX_S` (each beat wakes an idle worker:
    beats and parent checks every 0.5 s were most of a 1M worker's CPU between ledgers)."""
    return min(HEARTBEAT_MAX_S, heartbeat_timeout_s / 5)


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies. False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def resolve_entry(entry: str) -> KeeperFn:
    """Import ``module:function``."""
    module_name, _, func_name = entry.partition(":")
    if not module_name or not func_name:
        raise ValueError(f"keeper entry must be 'module:function', got {entry!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        if entry != DEFAULT_ENTRY:
            raise
        module_name, _, func_name = FALLBACK_ENTRY.partition(":")
        module = importlib.import_module(module_name)
    return getattr(module, func_name)


class PipeReporter:
    """A ``shard_worker.spec.Reporter`` that sends every report as a pipe message.

    Never raises: a broken pipe means the supervisor is gone and calls ``on_broken``.
    """

    def __init__(
        self,
        conn: Connection,
        on_broken: Callable[[], None],
        log: LoggingReporter | None = None,
        heartbeat_s: float = HEARTBEAT_MAX_S,
    ) -> None:
        self.connection = conn
        #: how often the keeper should call :meth:`heartbeat`
        self.heartbeat_s = heartbeat_s
        self._on_broken = on_broken
        self._lock = threading.Lock()
        self.broken = False
        #: also writes every report to the shard's own log (one line per cycle and event)
        self.log = log

    def _send(self, type_: str, **fields: Any) -> None:
        if self.broken:
            return
        try:
            data = messages.encode(type_, **fields)
        except (messages.ProtocolError, TypeError) as exc:
            logger.error("cannot encode {} message: {}", type_, exc)
            return
        try:
            with self._lock:
                self.connection.send_bytes(data)
        except (OSError, ValueError):
            self.broken = True
            self._on_broken()

    def hello(self, pid: int, keeper_public_key: str, channel_public_keys: list[str]) -> None:
        if self.log is not None:
            self.log.hello(pid, keeper_public_key, channel_public_keys)
        self._send(
            "hello",
            pid=pid,
            keeper_public_key=keeper_public_key,
            channel_public_keys=list(channel_public_keys),
        )

    def heartbeat(self) -> None:
        self._send("heartbeat")

    def cycle(self, stats: CycleStats | dict[str, Any]) -> None:
        if self.log is not None and isinstance(stats, CycleStats):
            self.log.cycle(stats)
        data = asdict(stats) if is_dataclass(stats) else dict(stats)  # type: ignore[arg-type]
        self._send("cycle", stats=data)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.event(kind, data)
        self._send("event", kind=str(kind), data=dict(data))

    def fatal(self, code: int, message: str) -> None:
        if self.log is not None:
            self.log.fatal(code, message)
        self._send("fatal", code=int(code), message=redact(str(message)))

    def endpoints(self, figures: dict[str, Any]) -> None:
        self._send("endpoints", figures=dict(figures))

    def goodbye(self, final: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.goodbye(final)
        self._send("goodbye", final=dict(final))


class _Orphan:
    """Parent-death handling: stop the keeper, hard exit after the grace."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.orphaned = False
        self.stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def trigger(self, why: str) -> None:
        if self.orphaned:
            return
        self.orphaned = True
        logger.warning("supervisor is gone ({}): stopping, exit within {:.1f}s", why, self.grace_s)
        timer = threading.Timer(self.grace_s, lambda: os._exit(ExitCode.ORPHANED))
        timer.daemon = True
        timer.start()
        if self.loop is not None and self.stop is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.stop.set)


def _receive_spec(conn: Connection) -> tuple[WorkerSpec, str]:
    if not conn.poll(SPEC_TIMEOUT_S):
        raise TimeoutError("no spec from the supervisor")
    msg = messages.decode_to_worker(conn.recv_bytes(messages.MAX_MESSAGE_BYTES))
    if msg.type != "spec":
        raise messages.ProtocolError(f"expected a spec message first, got {msg.type}")
    return WorkerSpec.from_dict(msg["spec"]), msg["entry"]


async def _run(
    conn: Connection,
    spec: WorkerSpec,
    keeper: KeeperFn,
    orphan: _Orphan,
    ppid: int,
    heartbeat_s: float = HEARTBEAT_MAX_S,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    orphan.stop, orphan.loop = stop, loop
    reporter = PipeReporter(
        conn,
        lambda: orphan.trigger("pipe broken"),
        log=LoggingReporter(spec.name),
        heartbeat_s=heartbeat_s,
    )

    def on_sigterm() -> None:
        logger.info("signal SIGTERM: stopping")
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)

    def on_readable() -> None:
        try:
            while conn.poll():
                msg = messages.decode_to_worker(conn.recv_bytes(messages.MAX_MESSAGE_BYTES))
                if msg.type == "stop":
                    logger.info("stop requested by the supervisor")
                    stop.set()
                else:
                    logger.warning("unexpected {} message from the supervisor", msg.type)
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            orphan.trigger("pipe closed")
        except messages.ProtocolError as exc:
            logger.error("bad message from the supervisor: {}", exc)

    loop.add_reader(conn.fileno(), on_readable)

    async def parent_watch() -> None:
        while True:
            await asyncio.sleep(heartbeat_s)
            if os.getppid() != ppid:
                orphan.trigger("parent process changed")
                return

    watch = asyncio.create_task(parent_watch())
    try:
        code = await keeper(spec, reporter, stop)
    except Exception as exc:
        logger.opt(exception=exc).error("keeper crashed: {}", exc)
        reporter.fatal(ExitCode.CRASH, f"keeper crashed: {type(exc).__name__}: {exc}")
        code = ExitCode.CRASH
    finally:
        watch.cancel()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(conn.fileno())
    if orphan.orphaned:
        return ExitCode.ORPHANED
    return int(code) if isinstance(code, int) else ExitCode.CRASH


def child_main(
    conn: Connection,
    shard: str,
    log: dict[str, Any],
    orphan_grace_s: float,
    heartbeat_s: float = HEARTBEAT_MAX_S,
) -> None:
    """Entry point of a worker process (runs in a forkserver child); it beats every
    ``heartbeat_s`` (:func:`heartbeat_every_s`)."""
    ppid = os.getppid()
    set_parent_death_signal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor's (see the module notes)
    orphan = _Orphan(orphan_grace_s)
    if os.getppid() != ppid:  # the parent died before prctl took effect
        os._exit(ExitCode.ORPHANED)
    # a SIGTERM before the loop's handler is installed: stop as orphan would
    signal.signal(signal.SIGTERM, lambda *_: orphan.trigger("SIGTERM before start"))
    configure(LogSettings(**log), shard, stderr=False)
    logger.info("worker process {} starting", os.getpid())
    try:
        spec, entry = _receive_spec(conn)
    except (EOFError, OSError):
        raise SystemExit(ExitCode.ORPHANED) from None
    except Exception as exc:
        logger.error("no usable spec: {}", exc)
        raise SystemExit(ExitCode.CRASH) from None
    try:
        keeper = resolve_entry(entry)
    except Exception as exc:
        logger.error("cannot load keeper {}: {}", entry, exc)
        with contextlib.suppress(Exception):
            conn.send_bytes(messages.encode("fatal", code=ExitCode.CONFIG, message=str(exc)))
        raise SystemExit(ExitCode.CONFIG) from None
    with contextlib.suppress(OSError, ValueError):
        conn.send_bytes(messages.encode("started", pid=os.getpid()))
    t0 = time.monotonic()
    if orphan.orphaned:
        raise SystemExit(ExitCode.ORPHANED)
    code = asyncio.run(_run(conn, spec, keeper, orphan, ppid, heartbeat_s))
    logger.info("worker exits with code {} after {:.1f}s", code, time.monotonic() - t0)
    logger.complete()
    logger.remove()
    with contextlib.suppress(OSError):
        conn.close()
    raise SystemExit(code)
