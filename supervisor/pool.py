"""Every local shard's worker process: start, stop, messages, deaths, restarts and timers.

The :class:`~supervisor.arbiter.Arbiter` decides *when* (signals, shutdown, reload, its main
loop); the :class:`Pool` does it for each shard and applies the per-shard rules: an unexpected
exit restarts the worker (:mod:`supervisor.restarts`), ``ExitCode.CONFIG`` is never restarted,
a silent worker is hung and replaced, a worker that breaks the pipe protocol is replaced, a
``failed`` shard is started again after ``restart.failed_cooldown_s``, a worker above
``restart.max_rss_mb`` is drained and replaced, and a shard the operator stopped
(``sorotask ctl stop``, :mod:`supervisor.commands`) stays stopped until ``ctl start``. What a
worker says goes through :mod:`supervisor.inbox` into the registry. Main thread only.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from loguru import logger

from sorotask_core.exitcodes import ExitCode
from supervisor import inbox, messages
from supervisor.config import ShardPlan, SupervisorSettings
from supervisor.logsetup import LogSettings
from supervisor.registry import Registry, State
from supervisor.workers import Worker, describe_exit

MAX_MESSAGES_PER_WAKE = 2000
MIB = 1024 * 1024


class Pool:
    """One :class:`~supervisor.workers.Worker` per local shard of the registry."""

    def __init__(
        self,
        ctx: Any,
        registry: Registry,
        settings: SupervisorSettings,
        log_settings: LogSettings,
        entry_for: Callable[[str], str],
    ) -> None:
        self.ctx = ctx
        self.registry = registry
        #: replaced by the arbiter on a reload
        self.settings = settings
        self.log_settings = log_settings
        self.entry_for = entry_for
        self.workers = {name: Worker(name, entry_for(name)) for name in registry.names()}
        #: set by the arbiter's shutdown: exits are no longer restarted
        self.stopping = False

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self.workers.values()))

    def alive(self) -> int:
        return sum(1 for w in self.workers.values() if w.alive)

    # ------------------------------------------------------------------ process control

    def spawn(self, w: Worker) -> None:
        plan = self.registry[w.name].plan
        t0 = time.monotonic()
        try:
            pid = w.start(
                self.ctx,
                plan,
                self.log_settings.to_dict(),
                self.settings.orphan_grace_s,
                self.settings.heartbeat_timeout_s,
            )
        except Exception as exc:
            logger.error("shard {}: cannot start a worker: {}", w.name, exc)
            self._schedule_restart(w, f"start failed: {exc}")
            return
        now = time.monotonic()
        with self.registry.edit(w.name) as rec:
            rec.worker_started(pid, now)
        logger.info(
            "shard {}: worker pid {} started ({:.1f} ms) range {}",
            w.name,
            pid,
            (now - t0) * 1000,
            plan.range_text(),
        )

    def ask_stop(self, w: Worker, grace: float) -> None:
        """Graceful stop: a stop message (SIGTERM if the pipe is gone), SIGKILL after grace."""
        if w.alive:
            w.ask_stop(time.monotonic() + grace)
            self.registry.update(w.name, state=State.STOPPING)

    def stop_all(self, grace: float) -> None:
        for w in self:
            if w.alive:
                self.ask_stop(w, grace)
            elif self.registry[w.name].state != State.FAILED:
                self.registry.update(w.name, state=State.STOPPED)

    def kill_all(self) -> None:
        for w in self:
            if w.alive:
                w.signal(signal.SIGKILL)
                self.registry.update(w.name, state=State.STOPPING)

    def kill_leftovers(self) -> None:
        for w in self:
            if w.alive:
                w.kill_now()
                self.registry.update(w.name, pid=None, state=State.STOPPED)

    def _terminate_hung(self, w: Worker, why: str) -> None:
        grace = self.settings.kill_grace_s
        logger.error(
            "shard {}: worker pid {} {}: SIGTERM, SIGKILL in {:.1f}s", w.name, w.pid, why, grace
        )
        w.terminate(time.monotonic(), grace)

    def sample(self) -> None:
        for w in self:
            sample = w.sample()
            if sample is not None:
                self.registry.update(w.name, rss_bytes=sample[0], cpu_percent=sample[1])
                self._guard_memory(w, sample[0])

    def _guard_memory(self, w: Worker, rss: int) -> None:
        """Drain and replace a worker whose RSS is above ``restart.max_rss_mb``."""
        limit = self.settings.restart.max_rss_mb
        if limit is None or rss <= limit * MIB or self.stopping:
            return
        if w.stop_requested or w.term_at is not None or w.held or not w.alive:
            return  # already on its way out
        w.memory_drain = f"RSS {rss / MIB:.1f} MiB above restart.max_rss_mb {limit:g}"
        with self.registry.edit(w.name) as rec:
            rec.memory_restarts += 1
        logger.warning(
            "shard {}: worker pid {} uses {:.1f} MiB RSS, above restart.max_rss_mb {:g}: "
            "draining it and starting a new one",
            w.name,
            w.pid,
            rss / MIB,
            limit,
        )
        self.ask_stop(w, self.settings.shutdown_grace_s)

    # ------------------------------------------------------------------ messages

    def read_messages(self, w: Worker, *, drain: bool = False) -> None:
        try:
            for data in w.receive(1_000_000 if drain else MAX_MESSAGES_PER_WAKE):
                if w.protocol_error is not None:
                    continue  # discard until the worker is gone
                try:
                    msg = messages.decode_from_worker(data)
                    with self.registry.edit(w.name) as rec:
                        inbox.dispatch(rec, msg, time.monotonic())
                except messages.ProtocolError as exc:
                    self._protocol_violation(w, str(exc))
        except OSError as exc:
            if w.protocol_error is None and w.alive:
                self._protocol_violation(w, f"unreadable message: {exc}")

    def _protocol_violation(self, w: Worker, why: str) -> None:
        w.protocol_error = why
        logger.error(
            "shard {}: protocol violation from pid {}: {}; restarting it", w.name, w.pid, why
        )
        if not self.stopping:
            self._terminate_hung(w, "broke the pipe protocol")
            w.hung = False

    # ------------------------------------------------------------------ deaths and restarts

    def reap(self, w: Worker) -> None:
        self.read_messages(w, drain=True)
        code = w.reap()
        now = time.monotonic()
        with self.registry.edit(w.name) as rec:
            rec.worker_exited(code)
            uptime = now - rec.spawned_at
            fatal = rec.fatal
        how = describe_exit(code)
        if self.stopping or w.remove_after_stop or w.held:
            why = " (sorotask ctl stop: stays stopped until ctl start)" if w.held else ""
            logger.info("shard {}: worker stopped ({}) after {:.1f}s{}", w.name, how, uptime, why)
            self.registry.update(w.name, state=State.STOPPED)
            if w.remove_after_stop:
                self._forget(w.name)
            return
        if w.respawn_plan is not None:
            logger.info("shard {}: stopped to be replaced ({}); starting a new worker", w.name, how)
            self.registry.update(w.name, plan=w.respawn_plan, death_at=None)
            w.respawn_plan = None
            self.spawn(w)
            return
        self.registry.update(w.name, death_at=now)
        if code == ExitCode.CONFIG:
            reason = (fatal or {}).get("message") or "configuration error"
            self._fail(w, f"exit code {code} (configuration error): {reason}", "fix the config")
            return
        if w.memory_drain is not None:
            why = f"memory guard: {w.memory_drain}"
        elif w.protocol_error:
            why = f"protocol violation ({w.protocol_error})"
        elif w.hung:
            why = "hung (no heartbeat)"
        else:
            why = how
        logger.warning(
            "shard {}: worker pid exited unexpectedly: {} after {:.1f}s", w.name, why, uptime
        )
        if uptime >= self.settings.restart.stable_after_s:
            w.budget.stable()
        self._schedule_restart(w, why)

    def _schedule_restart(self, w: Worker, why: str) -> None:
        policy = self.settings.restart
        now = time.monotonic()
        delay = w.budget.next_start(policy, now)
        if delay is None:
            self._fail(w, w.budget.crash_loop(policy, why), "a crash loop")
            return
        with self.registry.edit(w.name) as rec:
            rec.restarts += 1
            restarts = rec.restarts
        if delay <= 0:
            self.spawn(w)
        else:
            w.backoff_until = now + delay
            self.registry.update(w.name, state=State.BACKOFF)
            logger.warning("shard {}: restart #{} in {:.2f}s", w.name, restarts, delay)

    def _fail(self, w: Worker, reason: str, hint: str) -> None:
        """Mark the shard ``failed`` (loudly, every time); schedule its retry after the
        cooldown."""
        cooldown = self.settings.restart.failed_cooldown_s
        w.retry_at = None if cooldown is None else time.monotonic() + cooldown
        retries = self.registry[w.name].failed_retries
        when = (
            f"started again in {cooldown:g}s (restart.failed_cooldown_s)"
            if cooldown is not None
            else "not started again until `sorotask ctl start` or SIGHUP"
        )
        again = f"; failed again after {retries} retries" if retries else ""
        # logged first: whoever sees `failed` in /status finds the reason in the log
        logger.critical("SHARD {} FAILED: {} -- {} ({}){}", w.name, reason, when, hint, again)
        self.registry.update(w.name, state=State.FAILED, failed_reason=reason)

    def _retry_failed(self, w: Worker) -> None:
        w.retry_at = None
        w.budget.reset()
        with self.registry.edit(w.name) as rec:
            rec.failed_retries += 1
            n, reason = rec.failed_retries, rec.failed_reason
            rec.failed_reason = rec.death_at = None
            # in the same edit: /status (another thread) never shows `failed` without a reason
            rec.state = State.STARTING
        logger.warning(
            "shard {}: failed ({}); starting it again after restart.failed_cooldown_s (retry #{})",
            w.name,
            reason,
            n,
        )
        self.spawn(w)

    # ------------------------------------------------------------------ timers

    def check_timers(self, now: float) -> None:
        """SIGKILL after a grace, hung workers, the end of a backoff."""
        for w in self:
            rec = self.registry[w.name]
            if w.alive:
                if w.kill_at is not None and now >= w.kill_at:
                    logger.error(
                        "shard {}: worker pid {} still alive after grace: SIGKILL", w.name, w.pid
                    )
                    w.signal(signal.SIGKILL)
                    w.kill_at = None
                elif (
                    w.term_at is None
                    and not w.stop_requested
                    and now - rec.last_msg_at > self.settings.heartbeat_timeout_s
                ):
                    silent = now - rec.last_msg_at
                    self._terminate_hung(w, f"sent nothing for {silent:.1f}s (hung)")
            elif (
                rec.state == State.BACKOFF
                and w.backoff_until is not None
                and now >= w.backoff_until
            ):
                if self.stopping:
                    self.registry.update(w.name, state=State.STOPPED)
                else:
                    self.spawn(w)
            elif (
                rec.state == State.FAILED
                and w.retry_at is not None
                and now >= w.retry_at
                and not self.stopping
            ):
                self._retry_failed(w)

    def next_times(self) -> Iterator[float]:
        """When :meth:`check_timers` has something to do next."""
        for w in self.workers.values():
            if w.alive:
                if w.kill_at is not None:
                    yield w.kill_at
                if w.term_at is None and not w.stop_requested:
                    last = self.registry[w.name].last_msg_at
                    yield last + self.settings.heartbeat_timeout_s + 0.01
            elif w.backoff_until is not None:
                yield w.backoff_until
            elif w.retry_at is not None and self.registry[w.name].state == State.FAILED:
                yield w.retry_at

    # ------------------------------------------------------------------ reload

    def apply(self, new: dict[str, ShardPlan]) -> tuple[int, int, int]:
        """Make the local shards those of ``new``: restart only those whose settings changed
        (or that failed), start added ones, stop removed ones. Returns (changed, added,
        removed)."""
        grace = self.settings.shutdown_grace_s
        changed = added = removed = 0
        for name, w in list(self.workers.items()):
            if name not in new:
                removed += 1
                if w.alive:
                    w.remove_after_stop = True
                    self.ask_stop(w, grace)
                else:
                    self._forget(name)
                continue
            np, rec = new[name], self.registry[name]
            if w.held:  # stopped by the operator: it stays stopped, with the new settings
                self.registry.update(name, plan=np)
                continue
            entry = self.entry_for(name)
            same = (
                np.spec == rec.plan.spec
                and entry == w.entry
                and np.keeper_public_key == rec.plan.keeper_public_key
                and np.channel_public_keys == rec.plan.channel_public_keys
            )
            if same and rec.state != State.FAILED:  # a reload retries failed shards
                self.registry.update(name, plan=np)
                continue
            changed += 1
            w.entry = entry
            w.budget.reset()
            w.retry_at = None
            self.registry.update(name, failed_reason=None)
            if w.alive:
                w.respawn_plan = np
                self.ask_stop(w, grace)
            else:
                self.registry.update(name, plan=np, death_at=None)
                self.spawn(w)
        for name, np in new.items():
            if name not in self.workers:
                added += 1
                self.registry.add(np)
                self.workers[name] = w = Worker(name, self.entry_for(name))
                self.spawn(w)
        return changed, added, removed

    def _forget(self, name: str) -> None:
        self.registry.retire(name)
        del self.workers[name]
