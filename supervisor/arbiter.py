"""The supervisor's parent process: one :class:`Arbiter` owns the workers' lifecycle.

Main loop: ``multiprocessing.connection.wait`` over every worker pipe, every worker sentinel and a
self-pipe written by the signal handlers, so messages, deaths, signals and timers are all handled
in one place, in one thread. A signal handler only enqueues the signal's name; the main loop
calls ``handle_<name>`` (``handle_term``, ``handle_int``, ``handle_hup``; ``handle_stop`` for
:meth:`Arbiter.request_stop`; ``handle_ctl`` for requests from the control socket, which its
threads only queue: :mod:`supervisor.control`, :mod:`supervisor.commands`).

Per shard (:mod:`supervisor.restarts`): an unexpected exit restarts the worker, the first time
immediately, then with exponential backoff plus jitter; a worker that stayed up
``stable_after_s`` resets its backoff; more than ``max_restarts`` restarts within ``window_s``
marks the shard ``failed`` (logged loudly; the others keep running). Exit code
``ExitCode.CONFIG`` is never restarted. No message for ``heartbeat_timeout_s`` -> the worker is
hung: SIGTERM (+SIGCONT), SIGKILL after ``kill_grace_s``, then restarted (counted).

Signals: SIGTERM/SIGINT -> ``stop`` to every worker, wait ``shutdown_grace_s``, SIGKILL the rest,
exit 0; a second SIGINT kills at once. SIGHUP reloads the config file and restarts only shards
whose settings changed (and starts/stops added/removed shards).

What the workers report goes to the :class:`~supervisor.registry.Registry` (through the message
table of :mod:`supervisor.inbox`); the status server reads it through
:class:`~supervisor.view.View`, never through the arbiter.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.connection as mpc
import os
import signal
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from loguru import logger

from sorotask_core.exitcodes import ExitCode
from supervisor import commands
from supervisor.config import ConfigError, Plan, SupervisorSettings, load_config
from supervisor.control import ControlError, ControlServer, Request, socket_path
from supervisor.logsetup import LogSettings
from supervisor.pool import Pool
from supervisor.registry import Registry, State
from supervisor.sdnotify import SdNotify
from supervisor.status_server import StatusServer
from supervisor.testhook import TEST_KEEPER_ENV, keeper_entries_from_env
from supervisor.view import View
from supervisor.worker_process import DEFAULT_ENTRY, PRELOAD
from supervisor.workers import Worker

SAMPLE_EVERY_S = 1.0
#: the signals the supervisor handles, by the name of their ``handle_<name>`` method
SIGNALS = {signal.SIGTERM: "term", signal.SIGINT: "int", signal.SIGHUP: "hup"}


class Arbiter:
    """Runs one worker process per local shard of a :class:`Plan`."""

    def __init__(
        self,
        plan: Plan,
        *,
        config_path: str | None = None,
        keeper_entries: dict[str, str] | None = None,
        announce: bool = True,
        host_index: int | None = None,
    ) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.config_path = config_path
        #: ``--host-index`` given on the command line: a reload keeps it
        self.host_index_override = host_index
        self.keeper_entries = (
            keeper_entries
            if keeper_entries is not None
            else keeper_entries_from_env(os.environ.get(TEST_KEEPER_ENV))
        )
        self.announce = announce
        self.log_settings = LogSettings(
            log_dir=self.settings.log_dir,
            level=self.settings.log_level,
            json=self.settings.json_logs,
            rotation_mb=self.settings.log_rotation_mb,
            retention=self.settings.log_retention,
        )
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.registry = Registry.for_settings(self.settings, config_path, plan.local_shards)
        self.view = View(self.registry)
        self.pool = Pool(self.ctx, self.registry, self.settings, self.log_settings, self._entry_for)
        self.started_at = time.time()
        self.stopping = False
        self.stop_reason: str | None = None
        self.shutdown_deadline: float | None = None
        self.exit_code = ExitCode.OK
        self.status_url: str | None = None
        self._signals: deque[str] = deque()
        self._sig_r, self._sig_w = os.pipe()
        os.set_blocking(self._sig_r, False)
        os.set_blocking(self._sig_w, False)
        self._int_count = 0
        self._next_sample = 0.0
        self._next_progress = time.monotonic() + (self.settings.progress_every_s or 0.0)
        self._deadline: float | None = None
        self._server: StatusServer | None = None
        self._control: ControlServer | None = None
        self._requests: deque[Request] = deque()
        #: what the last reload did, or why it was refused (``sorotask ctl reload`` shows it)
        self.last_reload = ""
        self.sd = SdNotify.from_environ()  # sd_notify: READY, WATCHDOG, STOPPING (systemd)

    def _entry_for(self, name: str) -> str:
        return self.keeper_entries.get(name) or self.keeper_entries.get("*") or DEFAULT_ENTRY

    # ------------------------------------------------------------------ signals

    def _enqueue(self, name: str) -> None:
        self._signals.append(name)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._sig_w, b"\0")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._enqueue(SIGNALS[signum])

    def install_signal_handlers(self) -> None:
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)

    def request_stop(self, reason: str = "requested") -> None:
        """Thread-safe: ask the main loop to shut down gracefully."""
        self.stop_reason = self.stop_reason or reason
        self._enqueue("stop")

    def _handle_signals(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._sig_r, 4096):
                pass
        while self._signals:
            getattr(self, f"handle_{self._signals.popleft()}")()

    def handle_stop(self) -> None:
        self._begin_shutdown(self.stop_reason or "requested")

    def handle_term(self) -> None:
        self._begin_shutdown("SIGTERM")

    def handle_int(self) -> None:
        self._int_count += 1
        if self._int_count >= 2:
            self._kill_all("second SIGINT")
        else:
            self._begin_shutdown("SIGINT")

    def handle_hup(self) -> None:
        logger.info("SIGHUP: reloading {}", self.config_path)
        self.reload()

    def _submit(self, request: Request) -> None:
        """Control socket threads: queue a request for the main loop."""
        self._requests.append(request)
        self._enqueue("ctl")

    def handle_ctl(self) -> None:
        while self._requests:
            request = self._requests.popleft()
            try:
                reply = commands.answer(self, request)
            except Exception as exc:  # a bug must not take the supervisor down
                logger.exception("control: {} failed", request.command)
                reply = {"ok": False, "error": f"internal error: {exc}"}
            request.answer(reply)

    # ------------------------------------------------------------------ timers

    def _tick(self) -> None:
        now = time.monotonic()
        st = self.settings
        if self._deadline is not None and now >= self._deadline and not self.stopping:
            self._begin_shutdown("duration elapsed")
        self.pool.check_timers(now)
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_EVERY_S
            self.pool.sample()
        every = st.progress_every_s
        if every and now >= self._next_progress and not self.stopping:
            self._next_progress = now + every
            logger.info("{}", self.view.progress())
        if (
            not self.stopping
            and len(self.registry)
            and all(rec.state == State.FAILED for rec in self.registry)
        ):
            logger.critical("every shard has failed: the supervisor stops")
            self.exit_code = ExitCode.SHARDS_FAILED
            self._begin_shutdown("every shard failed")
        if self.stopping and self.shutdown_deadline is not None and now >= self.shutdown_deadline:
            for w in self.pool:
                if w.alive:
                    logger.error(
                        "shard {}: still running after the shutdown grace: SIGKILL", w.name
                    )
                    w.signal(signal.SIGKILL)
            self.shutdown_deadline = None

    def _next_timeout(self) -> float:
        times = [self._next_sample, self.sd.next_ping_at, *self.pool.next_times()]
        if self.settings.progress_every_s:
            times.append(self._next_progress)
        if self._deadline is not None and not self.stopping:
            times.append(self._deadline)
        if self.shutdown_deadline is not None:
            times.append(self.shutdown_deadline)
        return max(0.0, min(times) - time.monotonic())

    # ------------------------------------------------------------------ shutdown, reload

    def _set_stopping(self) -> None:
        self.stopping = self.pool.stopping = True
        self.registry.update_facts(stopping=True)

    def _begin_shutdown(self, reason: str) -> None:
        if self.stopping:
            return
        self._set_stopping()
        self.stop_reason = reason
        grace = self.settings.shutdown_grace_s
        logger.info(
            "shutting down ({}): stopping {} workers, grace {:.0f}s",
            reason,
            self.pool.alive(),
            grace,
        )
        self.shutdown_deadline = time.monotonic() + grace
        self.pool.stop_all(grace)

    def _kill_all(self, reason: str) -> None:
        self._set_stopping()
        self.stop_reason = self.stop_reason or reason
        logger.warning("{}: killing every worker now", reason)
        self.pool.kill_all()

    def _reloaded_settings(self, new: SupervisorSettings) -> SupervisorSettings:
        """The new settings, except those that apply only at start (logged)."""
        old = self.settings
        kept = ("status_address", "log_dir", "json_logs", "log_level")
        for key in kept:
            if getattr(old, key) != getattr(new, key):
                logger.warning("reload: supervisor.{} changed; applies after a restart", key)
        return replace(new, **{key: getattr(old, key) for key in kept})

    def reload(self) -> bool:
        """Reload the config file; restart only changed shards. False if the file is invalid."""
        if self.config_path is None:
            self.last_reload = "no config file (demo): nothing to reload"
            logger.warning("reload: {}", self.last_reload)
            return False
        try:
            plan = load_config(
                self.config_path, host_index=self.host_index_override, dry_run=self.plan.dry_run
            )
        except ConfigError as exc:
            self.last_reload = f"config invalid, keeping the running one:\n{exc}"
            logger.error("reload: {}", self.last_reload)
            return False
        for warning in plan.warnings:
            logger.warning("config: {}", warning)
        self.settings = st = self._reloaded_settings(plan.settings)
        self.plan = plan
        self.registry.update_facts(
            host_index=st.host_index,
            host_count=st.host_count,
            health_max_cycle_age_s=st.health_max_cycle_age_s,
        )
        self.pool.settings = st
        new = {s.name: s for s in plan.local_shards}
        changed, added, removed = self.pool.apply(new)
        self.last_reload = (
            f"{changed} changed, {added} added, {removed} removed, "
            f"{len(new) - changed - added} unchanged"
        )
        logger.info("reload: {}", self.last_reload)
        return True

    # ------------------------------------------------------------------ main loop

    def run(self, duration: float | None = None) -> int:
        """Start every local shard and supervise until shutdown; returns the exit code."""
        if duration is not None:
            self._deadline = time.monotonic() + duration
        Path(self.settings.log_dir).mkdir(parents=True, exist_ok=True)
        try:  # first: the socket's umask must be set while this process has one thread
            self._control = ControlServer(socket_path(self.settings.state_dir), self._submit)
        except ControlError as exc:
            logger.error("{}", exc)
            return ExitCode.CRASH
        self._control.start()
        addr = self.settings.status_host_port()
        if addr is not None:
            try:
                self._server = StatusServer(self.view, addr[0], addr[1])
            except OSError as exc:
                logger.error("cannot listen on {}: {}", self.settings.status_address, exc)
                self._control.stop()
                return ExitCode.CRASH
            self._server.start()
            self.status_url = self._server.url
        self._write_runtime_file()
        if self.announce:
            print(f"sorotask: status at {self.status_url or '(disabled)'}", flush=True)
            print(f"sorotask: logs in {self.settings.log_dir}", flush=True)
        logger.info(
            "supervisor pid {} starting {} shards (host {}/{}), status {}",
            os.getpid(),
            len(self.registry),
            self.settings.host_index,
            self.settings.host_count,
            self.status_url,
        )
        try:
            for w in self.pool:
                self.pool.spawn(w)
            self._loop()
        finally:
            self._control.stop()
            while self._requests:
                self._requests.popleft().answer({"ok": False, "error": "the supervisor exited"})
            self.pool.kill_leftovers()
            if self._server is not None:
                self._server.stop()
            with contextlib.suppress(OSError):
                (Path(self.settings.log_dir) / "supervisor.json").unlink()
        logger.info("supervisor exits with code {} ({})", int(self.exit_code), self.stop_reason)
        return int(self.exit_code)

    def _loop(self) -> None:
        while True:
            if self.stopping and not self.pool.alive():
                return
            waitables: list[Any] = [self._sig_r]
            by_obj: dict[Any, Worker] = {}
            for w in self.pool:
                if w.alive:
                    waitables.append(w.proc.sentinel)
                    by_obj[w.proc.sentinel] = w
                    if w.conn is not None:
                        waitables.append(w.conn)
                        by_obj[w.conn] = w
            ready = mpc.wait(waitables, self._next_timeout())
            dead: list[Worker] = []
            for obj in ready:
                w = by_obj.get(obj)
                if w is None:
                    continue
                if isinstance(obj, int):
                    dead.append(w)
                elif w.conn is obj:
                    self.pool.read_messages(w)
            for w in dead:
                if w.alive:
                    self.pool.reap(w)
            self._handle_signals()
            self._tick()
            self.sd.loop(self.stopping, lambda: [rec.state for rec in self.registry])

    def _write_runtime_file(self) -> None:
        info = {
            "pid": os.getpid(),
            "status_url": self.status_url,
            "control_socket": str(self._control.path) if self._control else None,
            "config": self.config_path,
            "started_at": self.started_at,
        }
        path = Path(self.settings.log_dir) / "supervisor.json"
        with contextlib.suppress(OSError):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            os.replace(tmp, path)
