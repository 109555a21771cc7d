"""The supervisor's parent process: one :class:`Arbiter` owns the whole lifecycle.

Main loop: ``multiprocessing.connection.wait`` over every worker pipe, every worker sentinel and a
self-pipe written by the signal handlers (which only record the signal), so messages, deaths,
signals and timers are all handled in one place, in one thread.

Per shard (OTP-style restart intensity): an unexpected exit restarts the worker, the first time
immediately, then with exponential backoff plus jitter; a worker that stayed up
``stable_after_s`` resets its backoff; more than ``max_restarts`` restarts within ``window_s``
marks the shard ``failed`` (logged loudly; the others keep running). Exit code
``ExitCode.CONFIG`` is never restarted. No message for ``heartbeat_timeout_s`` -> the worker is
hung: SIGTERM (+SIGCONT), SIGKILL after ``kill_grace_s``, then restarted (counted).

Signals: SIGTERM/SIGINT -> ``stop`` to every worker, wait ``shutdown_grace_s``, SIGKILL the rest,
exit 0; a second SIGINT kills at once. SIGHUP reloads the config file and restarts only shards
whose settings changed (and starts/stops added/removed shards).
"""

from __future__ import annotations

import contextlib
import enum
import json
import multiprocessing
import multiprocessing.connection as mpc
import os
import random
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from loguru import logger

from sorotask.exitcodes import ExitCode
from supervisor import messages
from supervisor.config import ConfigError, Plan, ShardPlan, load_config
from supervisor.logsetup import LogSettings
from supervisor.sdnotify import SdNotify
from supervisor.stats import ShardTotals, bounded_update, summary
from supervisor.worker_process import DEFAULT_ENTRY, PRELOAD, child_main

TEST_KEEPER_ENV = "SOROTASK_TEST_KEEPER"
TEST_KEEPER_MODULE = "tests.support.stand_ins"
MAX_MESSAGES_PER_WAKE = 2000
SAMPLE_EVERY_S = 1.0


class State(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    FAILED = "failed"
    STOPPED = "stopped"


def keeper_entries_from_env(value: str | None) -> dict[str, str]:
    """Parse the test hook ``SOROTASK_TEST_KEEPER``: ``module:fn`` or ``shard=module:fn;...``.

    It selects a stand-in keeper (see :mod:`tests.support.stand_ins`) for tests and chaos
    runs; ``*`` means every shard. Unset in production. Only functions of
    ``tests.support.stand_ins`` can be named: an environment variable must not be a way to
    make workers import and run arbitrary code (ValueError otherwise).
    """
    out: dict[str, str] = {}
    if not value:
        return out
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            name, _, entry = part.partition("=")
            name, entry = name.strip(), entry.strip()
        else:
            name, entry = "*", part
        module, _, func = entry.partition(":")
        if module != TEST_KEEPER_MODULE or not func.isidentifier():
            raise ValueError(
                f"{TEST_KEEPER_ENV} may name only {TEST_KEEPER_MODULE}:FUNCTION stand-ins, "
                f"got {entry!r}"
            )
        out[name] = entry
    return out


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(slots=True)
class Shard:
    """The supervisor's record of one shard and its current worker process."""

    plan: ShardPlan
    entry: str
    state: State = State.STOPPED
    proc: Any = None
    conn: mpc.Connection | None = None
    pid: int | None = None
    spawned_at: float = 0.0
    last_msg_at: float = 0.0
    hello: dict[str, Any] | None = None
    last_cycle: dict[str, Any] | None = None
    last_cycle_at: float | None = None
    restarts: int = 0
    restart_times: deque[float] = field(default_factory=deque)
    consecutive: int = 0
    backoff_until: float | None = None
    failed_reason: str | None = None
    stop_requested: bool = False
    term_at: float | None = None
    kill_at: float | None = None
    hung: bool = False
    protocol_error: str | None = None
    fatal: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    respawn_plan: ShardPlan | None = None
    remove_after_stop: bool = False
    last_exit_code: int | None = None
    totals: ShardTotals = field(default_factory=ShardTotals)
    #: this worker process's cycles only (to add what its goodbye reports beyond them)
    life: ShardTotals = field(default_factory=ShardTotals)
    ps: psutil.Process | None = None
    rss_bytes: int | None = None
    cpu_percent: float | None = None
    # replacement timing (monotonic), for the "ready in tens of ms" figure
    death_at: float | None = None
    replacement: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def alive(self) -> bool:
        return self.proc is not None


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
        self.shards: dict[str, Shard] = {
            s.name: Shard(plan=s, entry=self._entry_for(s.name)) for s in plan.local_shards
        }
        self.lock = threading.RLock()
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self.stopping = False
        self.stop_reason: str | None = None
        self.shutdown_deadline: float | None = None
        self.exit_code = ExitCode.OK
        self.status_url: str | None = None
        self._signals: deque[int] = deque()
        self._sig_r, self._sig_w = os.pipe()
        os.set_blocking(self._sig_r, False)
        os.set_blocking(self._sig_w, False)
        self._int_count = 0
        self._next_sample = 0.0
        self._next_progress = time.monotonic() + (self.settings.progress_every_s or 0.0)
        self._last_progress: dict[str, int] = {}
        self._deadline: float | None = None
        self._server: Any = None
        self._retired = ShardTotals()  # totals of shards removed by a reload
        self._retired_restarts = 0
        self.sd = SdNotify.from_environ()  # sd_notify: READY, WATCHDOG, STOPPING (systemd)

    # ------------------------------------------------------------------ helpers

    def _entry_for(self, name: str) -> str:
        return self.keeper_entries.get(name) or self.keeper_entries.get("*") or DEFAULT_ENTRY

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._sig_w, b"\0")

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def request_stop(self, reason: str = "requested") -> None:
        """Thread-safe: ask the main loop to shut down gracefully."""
        self.stop_reason = self.stop_reason or reason
        self._signals.append(0)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._sig_w, b"\0")

    # ------------------------------------------------------------------ process control

    def _spawn(self, s: Shard) -> None:
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(
            target=child_main,
            args=(child, s.name, self.log_settings.to_dict(), self.settings.orphan_grace_s),
            name=f"sorotask-worker-{s.name}",
            daemon=True,
        )
        t0 = time.monotonic()
        try:
            proc.start()
        except Exception as exc:
            child.close()
            parent.close()
            logger.error("shard {}: cannot start a worker: {}", s.name, exc)
            self._schedule_restart(s, f"start failed: {exc}")
            return
        child.close()
        now = time.monotonic()
        s.proc, s.conn, s.pid = proc, parent, proc.pid
        s.spawned_at = s.last_msg_at = now
        s.state = State.STARTING
        s.hello = None
        s.stop_requested = False
        s.term_at = s.kill_at = None
        s.hung = False
        s.protocol_error = None
        s.fatal = None
        s.final = None
        s.backoff_until = None
        s.ps = None
        s.rss_bytes = s.cpu_percent = None
        s.life = ShardTotals()
        if s.death_at is not None:
            s.replacement = {"spawn_ms": (now - s.death_at) * 1000}
        else:
            s.replacement = {}
        try:
            parent.send_bytes(messages.encode("spec", spec=s.plan.spec.to_dict(), entry=s.entry))
        except (OSError, messages.ProtocolError) as exc:
            logger.error("shard {}: cannot send the spec: {}", s.name, exc)
        logger.info(
            "shard {}: worker pid {} started ({:.1f} ms) range {}",
            s.name,
            proc.pid,
            (now - t0) * 1000,
            s.plan.range_text(),
        )

    def _signal(self, s: Shard, sig: int) -> None:
        if s.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(s.pid, sig)

    def _ask_stop(self, s: Shard, grace: float) -> None:
        """Graceful stop: a stop message (SIGTERM if the pipe is gone), SIGKILL after grace."""
        if not s.alive:
            return
        s.stop_requested = True
        s.state = State.STOPPING
        try:
            assert s.conn is not None
            s.conn.send_bytes(messages.encode("stop"))
        except (OSError, AssertionError):
            self._signal(s, signal.SIGTERM)
        s.kill_at = time.monotonic() + grace

    def _terminate_hung(self, s: Shard, why: str) -> None:
        logger.error(
            "shard {}: worker pid {} {}: SIGTERM, SIGKILL in {:.1f}s",
            s.name,
            s.pid,
            why,
            self.settings.kill_grace_s,
        )
        s.hung = True
        s.term_at = time.monotonic()
        s.kill_at = s.term_at + self.settings.kill_grace_s
        self._signal(s, signal.SIGTERM)
        self._signal(s, signal.SIGCONT)

    # ------------------------------------------------------------------ messages

    def _read_messages(self, s: Shard, *, drain: bool = False) -> None:
        conn = s.conn
        if conn is None:
            return
        for _ in range(MAX_MESSAGES_PER_WAKE if not drain else 1_000_000):
            try:
                if not conn.poll():
                    return
                data = conn.recv_bytes(messages.MAX_MESSAGE_BYTES)
            except (EOFError, OSError) as exc:
                if not isinstance(exc, EOFError) and s.protocol_error is None and s.alive:
                    self._protocol_violation(s, f"unreadable message: {exc}")
                self._close_conn(s)
                return
            if s.protocol_error is not None:
                continue  # discard until the worker is gone
            try:
                msg = messages.decode_from_worker(data)
                self._handle(s, msg)
            except messages.ProtocolError as exc:
                self._protocol_violation(s, str(exc))

    def _close_conn(self, s: Shard) -> None:
        if s.conn is not None:
            with contextlib.suppress(OSError):
                s.conn.close()
            s.conn = None

    def _protocol_violation(self, s: Shard, why: str) -> None:
        s.protocol_error = why
        logger.error(
            "shard {}: protocol violation from pid {}: {}; restarting it", s.name, s.pid, why
        )
        if not self.stopping:
            self._terminate_hung(s, "broke the pipe protocol")
            s.hung = False

    def _handle(self, s: Shard, msg: messages.Message) -> None:
        now = time.monotonic()
        s.last_msg_at = now
        t = msg.type
        if t == "heartbeat":
            return
        if s.final is not None and t in ("hello", "cycle", "goodbye"):
            raise messages.ProtocolError(f"{t} after goodbye")
        if t == "started":
            if msg["pid"] != s.pid:
                raise messages.ProtocolError(f"started: pid {msg['pid']} is not {s.pid}")
            if s.death_at is not None:
                s.replacement["ready_ms"] = (now - s.death_at) * 1000
            return
        if t == "hello":
            if s.hello is not None:
                raise messages.ProtocolError("second hello")
            if msg["pid"] != s.pid:
                raise messages.ProtocolError(f"hello: pid {msg['pid']} is not {s.pid}")
            s.hello = dict(msg.fields)
            expected = s.plan.keeper_public_key
            if expected and msg["keeper_public_key"] != expected:
                logger.warning(
                    "shard {}: keeper key {} differs from the validated {}: secret changed?",
                    s.name,
                    msg["keeper_public_key"],
                    expected,
                )
            if s.state == State.STARTING:
                s.state = State.RUNNING
            if s.death_at is not None:
                s.replacement["hello_ms"] = (now - s.death_at) * 1000
            logger.info(
                "shard {}: keeper {} running (pid {})", s.name, msg["keeper_public_key"], s.pid
            )
            return
        if t == "cycle":
            if s.hello is None:
                raise messages.ProtocolError("cycle before hello")
            s.totals.add_cycle(msg["stats"])
            s.life.add_cycle(msg["stats"])
            s.last_cycle = msg["stats"]
            s.last_cycle_at = now
            if s.death_at is not None and "first_cycle_ms" not in s.replacement:
                s.replacement["first_cycle_ms"] = (now - s.death_at) * 1000
                logger.info(
                    "shard {}: replacement timing {}",
                    s.name,
                    {k: round(v, 1) for k, v in s.replacement.items()},
                )
            return
        if t == "event":
            bounded_update(s.totals.events, {msg["kind"]: 1})
            return
        if t == "fatal":
            s.fatal = dict(msg.fields)
            logger.error("shard {}: fatal error (code {}): {}", s.name, msg["code"], msg["message"])
            return
        if t == "goodbye":
            s.final = dict(msg["final"])
            # transactions confirmed while draining are in no cycle: count them from the final
            for key in ("executed", "failed", "not_sent_by_simulation", "fees_spent"):
                value = s.final.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    extra = value - getattr(s.life, key)
                    if extra > 0:
                        setattr(s.totals, key, getattr(s.totals, key) + extra)
                        setattr(s.life, key, value)
            logger.info("shard {}: goodbye {}", s.name, s.final)
            return

    # ------------------------------------------------------------------ deaths and restarts

    def _reap(self, s: Shard) -> None:
        proc = s.proc
        self._read_messages(s, drain=True)
        proc.join(timeout=1.0)
        code = proc.exitcode
        self._close_conn(s)
        with contextlib.suppress(ValueError):
            proc.close()
        now = time.monotonic()
        uptime = now - s.spawned_at
        s.proc = None
        s.pid = None
        s.ps = None
        s.last_exit_code = code
        how = _describe_exit(code)
        if self.stopping or s.remove_after_stop:
            logger.info("shard {}: worker stopped ({}) after {:.1f}s", s.name, how, uptime)
            s.state = State.STOPPED
            if s.remove_after_stop:
                self._retired.add(s.totals)
                self._retired_restarts += s.restarts
                del self.shards[s.name]
            return
        if s.respawn_plan is not None:
            logger.info(
                "shard {}: stopped for reload ({}); starting with new settings", s.name, how
            )
            s.plan, s.respawn_plan = s.respawn_plan, None
            s.death_at = None
            self._spawn(s)
            return
        s.death_at = now
        if code == ExitCode.CONFIG:
            reason = (s.fatal or {}).get("message") or "configuration error"
            s.state = State.FAILED
            s.failed_reason = f"exit code {code} (configuration error): {reason}"
            logger.critical(
                "SHARD {} FAILED: {} -- not restarted; fix the config and reload (SIGHUP)",
                s.name,
                s.failed_reason,
            )
            return
        if s.protocol_error:
            why = f"protocol violation ({s.protocol_error})"
        elif s.hung:
            why = "hung (no heartbeat)"
        else:
            why = how
        logger.warning(
            "shard {}: worker pid exited unexpectedly: {} after {:.1f}s", s.name, why, uptime
        )
        if uptime >= self.settings.restart.stable_after_s:
            s.consecutive = 0
        self._schedule_restart(s, why)

    def _schedule_restart(self, s: Shard, why: str) -> None:
        policy = self.settings.restart
        now = time.monotonic()
        s.restart_times.append(now)
        while s.restart_times and s.restart_times[0] < now - policy.window_s:
            s.restart_times.popleft()
        if len(s.restart_times) > policy.max_restarts:
            s.state = State.FAILED
            s.failed_reason = (
                f"crash loop: {len(s.restart_times)} exits within {policy.window_s:g}s "
                f"(max_restarts {policy.max_restarts}); last: {why}"
            )
            logger.critical("SHARD {} FAILED: {} -- not restarted", s.name, s.failed_reason)
            return
        s.restarts += 1
        if s.consecutive == 0:
            delay = 0.0
        else:
            delay = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (s.consecutive - 1))
            delay *= 1 + random.uniform(-policy.jitter, policy.jitter)
        s.consecutive += 1
        if delay <= 0:
            self._spawn(s)
        else:
            s.state = State.BACKOFF
            s.backoff_until = now + delay
            logger.warning("shard {}: restart #{} in {:.2f}s", s.name, s.restarts, delay)

    # ------------------------------------------------------------------ timers

    def _tick(self) -> None:
        now = time.monotonic()
        st = self.settings
        if self._deadline is not None and now >= self._deadline and not self.stopping:
            self._begin_shutdown("duration elapsed")
        for s in list(self.shards.values()):
            if s.alive:
                if s.kill_at is not None and now >= s.kill_at:
                    logger.error(
                        "shard {}: worker pid {} still alive after grace: SIGKILL", s.name, s.pid
                    )
                    self._signal(s, signal.SIGKILL)
                    s.kill_at = None
                elif (
                    s.term_at is None
                    and not s.stop_requested
                    and now - s.last_msg_at > st.heartbeat_timeout_s
                ):
                    self._terminate_hung(s, f"sent nothing for {now - s.last_msg_at:.1f}s (hung)")
            elif (
                s.state == State.BACKOFF and s.backoff_until is not None and now >= s.backoff_until
            ):
                if self.stopping:
                    s.state = State.STOPPED
                else:
                    self._spawn(s)
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_EVERY_S
            self._sample()
        every = st.progress_every_s
        if every and now >= self._next_progress and not self.stopping:
            self._next_progress = now + every
            self._log_progress()
        if (
            not self.stopping
            and self.shards
            and all(s.state == State.FAILED for s in self.shards.values())
        ):
            logger.critical("every shard has failed: the supervisor stops")
            self.exit_code = ExitCode.SHARDS_FAILED
            self._begin_shutdown("every shard failed")
        if self.stopping and self.shutdown_deadline is not None and now >= self.shutdown_deadline:
            for s in self.shards.values():
                if s.alive:
                    logger.error(
                        "shard {}: still running after the shutdown grace: SIGKILL", s.name
                    )
                    self._signal(s, signal.SIGKILL)
            self.shutdown_deadline = None

    def _next_timeout(self) -> float:
        now = time.monotonic()
        times = [self._next_sample, self.sd.next_ping_at]  # sd_notify: watchdog pings
        if self.settings.progress_every_s:
            times.append(self._next_progress)
        if self._deadline is not None and not self.stopping:
            times.append(self._deadline)
        if self.shutdown_deadline is not None:
            times.append(self.shutdown_deadline)
        for s in self.shards.values():
            if s.alive:
                if s.kill_at is not None:
                    times.append(s.kill_at)
                if s.term_at is None and not s.stop_requested:
                    times.append(s.last_msg_at + self.settings.heartbeat_timeout_s + 0.01)
            elif s.backoff_until is not None:
                times.append(s.backoff_until)
        return max(0.0, min(times) - now)

    def _log_progress(self) -> None:
        """One line for people watching the log: totals and what changed since the last one."""
        doc = self.summary()
        last = self._last_progress
        delta = {k: doc[k] - last.get(k, 0) for k in ("executed", "failed", "restarts")}
        self._last_progress = {k: doc[k] for k in ("executed", "failed", "restarts")}
        running = sum(1 for s in self.shards.values() if s.state == State.RUNNING)
        logger.info(
            "progress: {}/{} shards running; cycles {}, checked {}, due {}, executed {} (+{}), "
            "failed {} (+{}), restarts {} (+{})",
            running,
            len(self.shards),
            doc["cycles"],
            doc["checked"],
            doc["due"],
            doc["executed"],
            delta["executed"],
            doc["failed"],
            delta["failed"],
            doc["restarts"],
            delta["restarts"],
        )

    def _sample(self) -> None:
        for s in self.shards.values():
            if not s.alive or s.pid is None:
                continue
            try:
                if s.ps is None or s.ps.pid != s.pid:
                    s.ps = psutil.Process(s.pid)
                    s.ps.cpu_percent(None)
                s.rss_bytes = s.ps.memory_info().rss
                s.cpu_percent = s.ps.cpu_percent(None)
            except (psutil.Error, OSError):
                s.ps = None

    # ------------------------------------------------------------------ signals, shutdown, reload

    def _handle_signals(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._sig_r, 4096):
                pass
        while self._signals:
            sig = self._signals.popleft()
            if sig == 0:
                self._begin_shutdown(self.stop_reason or "requested")
            elif sig == signal.SIGHUP:
                logger.info("SIGHUP: reloading {}", self.config_path)
                self.reload()
            elif sig == signal.SIGINT:
                self._int_count += 1
                if self._int_count >= 2:
                    self._kill_all("second SIGINT")
                else:
                    self._begin_shutdown("SIGINT")
            elif sig == signal.SIGTERM:
                self._begin_shutdown("SIGTERM")

    def _begin_shutdown(self, reason: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = reason
        grace = self.settings.shutdown_grace_s
        logger.info(
            "shutting down ({}): stopping {} workers, grace {:.0f}s",
            reason,
            sum(1 for s in self.shards.values() if s.alive),
            grace,
        )
        self.shutdown_deadline = time.monotonic() + grace
        for s in self.shards.values():
            if s.alive:
                self._ask_stop(s, grace)
            elif s.state != State.FAILED:
                s.state = State.STOPPED

    def _kill_all(self, reason: str) -> None:
        self.stopping = True
        self.stop_reason = self.stop_reason or reason
        logger.warning("{}: killing every worker now", reason)
        for s in self.shards.values():
            if s.alive:
                self._signal(s, signal.SIGKILL)
                s.state = State.STOPPING

    def reload(self) -> bool:
        """Reload the config file; restart only changed shards. False if the file is invalid."""
        if self.config_path is None:
            logger.warning("reload: no config file (demo): nothing to reload")
            return False
        try:
            plan = load_config(self.config_path, host_index=self.host_index_override)
        except ConfigError as exc:
            logger.error("reload: config invalid, keeping the running one:\n{}", exc)
            return False
        for w in plan.warnings:
            logger.warning("config: {}", w)
        old = self.settings
        for key in ("status_address", "log_dir", "json_logs", "log_level"):
            if getattr(old, key) != getattr(plan.settings, key):
                logger.warning("reload: supervisor.{} changed; applies after a restart", key)
        from dataclasses import replace

        self.settings = replace(
            plan.settings,
            status_address=old.status_address,
            log_dir=old.log_dir,
            json_logs=old.json_logs,
            log_level=old.log_level,
        )
        self.plan = plan
        new = {s.name: s for s in plan.local_shards}
        changed = added = removed = 0
        for name, s in list(self.shards.items()):
            if name not in new:
                removed += 1
                if s.alive:
                    s.remove_after_stop = True
                    self._ask_stop(s, self.settings.shutdown_grace_s)
                else:
                    self._retired.add(s.totals)
                    self._retired_restarts += s.restarts
                    del self.shards[name]
                continue
            np = new[name]
            entry = self._entry_for(name)
            same = (
                np.spec == s.plan.spec
                and entry == s.entry
                and np.keeper_public_key == s.plan.keeper_public_key
                and np.channel_public_keys == s.plan.channel_public_keys
            )
            if same and s.state != State.FAILED:  # a reload retries failed shards
                s.plan = np
                continue
            changed += 1
            s.entry = entry
            s.restart_times.clear()
            s.consecutive = 0
            s.failed_reason = None
            if s.alive:
                s.respawn_plan = np
                self._ask_stop(s, self.settings.shutdown_grace_s)
            else:
                s.plan = np
                s.death_at = None
                self._spawn(s)
        for name, np in new.items():
            if name not in self.shards:
                added += 1
                s = Shard(plan=np, entry=self._entry_for(name))
                self.shards[name] = s
                self._spawn(s)
        logger.info(
            "reload: {} changed, {} added, {} removed, {} unchanged",
            changed,
            added,
            removed,
            len(new) - changed - added,
        )
        return True

    # ------------------------------------------------------------------ main loop

    def run(self, duration: float | None = None) -> int:
        """Start every local shard and supervise until shutdown; returns the exit code."""
        from supervisor.status_server import StatusServer

        if duration is not None:
            self._deadline = time.monotonic() + duration
        Path(self.settings.log_dir).mkdir(parents=True, exist_ok=True)
        addr = self.settings.status_host_port()
        if addr is not None:
            try:
                self._server = StatusServer(self, addr[0], addr[1])
            except OSError as exc:
                logger.error("cannot listen on {}: {}", self.settings.status_address, exc)
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
            len(self.shards),
            self.settings.host_index,
            self.settings.host_count,
            self.status_url,
        )
        try:
            with self.lock:
                for s in self.shards.values():
                    self._spawn(s)
            self._loop()
        finally:
            self._kill_leftovers()
            if self._server is not None:
                self._server.stop()
            with contextlib.suppress(OSError):
                (Path(self.settings.log_dir) / "supervisor.json").unlink()
        logger.info("supervisor exits with code {} ({})", int(self.exit_code), self.stop_reason)
        return int(self.exit_code)

    def _loop(self) -> None:
        while True:
            with self.lock:
                if self.stopping and not any(s.alive for s in self.shards.values()):
                    return
                waitables: list[Any] = [self._sig_r]
                by_obj: dict[Any, Shard] = {}
                for s in self.shards.values():
                    if s.alive:
                        waitables.append(s.proc.sentinel)
                        by_obj[s.proc.sentinel] = s
                        if s.conn is not None:
                            waitables.append(s.conn)
                            by_obj[s.conn] = s
                timeout = self._next_timeout()
            ready = mpc.wait(waitables, timeout)
            with self.lock:
                dead: list[Shard] = []
                for obj in ready:
                    s = by_obj.get(obj)
                    if s is None:
                        continue
                    if isinstance(obj, int):
                        dead.append(s)
                    elif s.conn is obj:
                        self._read_messages(s)
                for s in dead:
                    if s.alive:
                        self._reap(s)
                self._handle_signals()
                self._tick()
                self.sd.loop(self.stopping, lambda: [x.state for x in self.shards.values()])

    def _kill_leftovers(self) -> None:
        for s in self.shards.values():
            if s.alive:
                self._signal(s, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    s.proc.join(timeout=5)
                s.proc = None
                s.pid = None
                s.state = State.STOPPED

    def _write_runtime_file(self) -> None:
        info = {
            "pid": os.getpid(),
            "status_url": self.status_url,
            "config": self.config_path,
            "started_at": self.started_at,
        }
        path = Path(self.settings.log_dir) / "supervisor.json"
        with contextlib.suppress(OSError):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            os.replace(tmp, path)

    # ------------------------------------------------------------------ views (any thread)

    def status(self) -> dict[str, Any]:
        """The ``GET /status`` document."""
        with self.lock:
            now = time.monotonic()
            shards = []
            total = ShardTotals()
            total.add(self._retired)
            for s in self.shards.values():
                spec = s.plan.spec
                total.add(s.totals)
                shards.append(
                    {
                        "name": s.name,
                        "range": [spec.range_first, spec.range_last],
                        "pid": s.pid,
                        "state": str(s.state),
                        "restarts": s.restarts,
                        "last_cycle": (
                            dict(s.last_cycle, age_s=round(now - s.last_cycle_at, 3))
                            if s.last_cycle is not None and s.last_cycle_at is not None
                            else None
                        ),
                        "totals": s.totals.to_dict(),
                        "rss_bytes": s.rss_bytes,
                        "cpu_percent": s.cpu_percent,
                        "heartbeat_age_s": round(now - s.last_msg_at, 3) if s.alive else None,
                        "keeper": (s.hello or {}).get("keeper_public_key")
                        or s.plan.keeper_public_key,
                        "uptime_s": round(now - s.spawned_at, 3) if s.alive else None,
                        "failed_reason": s.failed_reason,
                        "last_exit_code": s.last_exit_code,
                        "replacement_ms": {k: round(v, 2) for k, v in s.replacement.items()},
                        "host": s.plan.host,
                    }
                )
            return {
                "supervisor": {
                    "pid": os.getpid(),
                    "rss_bytes": self._self_rss(),
                    "uptime_s": round(now - self.started_mono, 3),
                    "stopping": self.stopping,
                    "config": self.config_path,
                    "host_index": self.settings.host_index,
                    "host_count": self.settings.host_count,
                },
                "shards": shards,
                "totals": dict(
                    total.to_dict(),
                    restarts=self._retired_restarts + sum(s.restarts for s in self.shards.values()),
                ),
            }

    @staticmethod
    def _self_rss() -> int | None:
        try:
            return psutil.Process().memory_info().rss
        except psutil.Error:
            return None

    def health(self) -> tuple[bool, list[str]]:
        """(healthy, reasons): every shard running with a fresh cycle."""
        reasons = []
        with self.lock:
            now = time.monotonic()
            if self.stopping:
                reasons.append("supervisor is stopping")
            if not self.shards:
                reasons.append("no shards on this host")
            for s in self.shards.values():
                max_age = self.settings.health_max_cycle_age_s or (
                    3 * s.plan.spec.poll_interval_s + 10
                )
                if s.state != State.RUNNING:
                    extra = f": {s.failed_reason}" if s.failed_reason else ""
                    reasons.append(f"shard {s.name} is {s.state}{extra}")
                elif s.last_cycle_at is None:
                    reasons.append(f"shard {s.name} has not finished a cycle yet")
                elif now - s.last_cycle_at > max_age:
                    reasons.append(
                        f"shard {s.name}: last cycle {now - s.last_cycle_at:.1f}s ago "
                        f"(max {max_age:g}s)"
                    )
        return not reasons, reasons

    def summary(self) -> dict[str, Any]:
        """The ``--summary-json`` document (plus each shard's state and final report)."""
        with self.lock:
            doc = summary({n: (s.totals, s.restarts) for n, s in self.shards.items()})
            for n, s in self.shards.items():
                doc["shards"][n]["state"] = str(s.state)
                if s.failed_reason:
                    doc["shards"][n]["failed_reason"] = s.failed_reason
                if s.final is not None:
                    doc["shards"][n]["final"] = s.final
            return doc
