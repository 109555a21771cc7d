"""The self-contained soak: a devnet and a real supervisor subprocess, the monkey and the devnet's
fault phases for the run, a calm end, SIGTERM; then the devnet's own record is analysed and
every invariant of :mod:`sorotask.chaos` is checked."""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sorotask.chaos.analysis import Cause, LedgerClock, TaskSeed, analysis_violations, analyze
from sorotask.chaos.monkey import Monkey, recovery_violations
from sorotask.chaos.params import FAULT_PHASES, ChaosParams, plan_tasks, soak_config
from sorotask.chaos.report import accounting_text, say
from sorotask.toolkit import (
    LedgerSampler,
    ProcessRecord,
    StatusWatcher,
    provision_split_secrets,
    seed_tasks,
    shard_of,
    start_supervisor,
    temporary_secrets,
    terminate,
    wait_shards_running,
    wait_status_url,
    write_yaml,
)

#: the chaos loop's step (s)
TICK_S = 0.02


def watch(
    run_end: float, proc: subprocess.Popen[bytes], monkey: Monkey, violations: list[str]
) -> Iterator[float]:
    """The chaos loop of every soak: ``time.monotonic()`` every :data:`TICK_S` s until
    ``run_end``, the monkey ticked first; stops early (a violation) when the supervisor
    exits. ``for now in watch(...): ...`` is the loop; its body, the soak's chaos."""
    while True:
        now = time.monotonic()
        if now >= run_end:
            return
        if proc.poll() is not None:
            violations.append(f"supervisor exited early with code {proc.returncode}")
            return
        monkey.tick()
        yield now
        time.sleep(TICK_S)


def run_soak(p: ChaosParams, *, quiet: bool = False) -> dict[str, Any]:
    """Run the self-contained soak and return the report (see :mod:`sorotask.chaos`)."""
    return Soak(p, quiet=quiet).run()


class Soak:
    """One soak run, phase by phase: prepare, start, chaos, wind down, judge."""

    #: invariant 2 (every late window attributed to a cause); ``--hostile`` uses percentiles
    judge_late_windows = True

    def __init__(self, p: ChaosParams, *, quiet: bool = False) -> None:
        self.p = p
        self.quiet = quiet
        self.rng = random.Random(p.seed)
        self.own_tmp = p.workdir is None
        # absolute: the supervisor runs in another directory (a relative --workdir made it
        # look for the config there: "config file does not exist")
        self.work = Path(p.workdir or tempfile.mkdtemp(prefix="sorotask-chaos-")).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.t_origin = time.monotonic()
        self.report: dict[str, Any] = {
            "mode": "soak",
            "params": p.to_json(),
            "workdir": str(self.work),
        }
        self.violations: list[str] = []
        self.procs = ProcessRecord()
        self.causes: list[Cause] = []
        self.fault_log: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.watcher: StatusWatcher | None = None
        self.sampler: LedgerSampler | None = None
        self.monkey: Monkey | None = None

    def run(self) -> dict[str, Any]:
        from devnet.process import DevnetProcess

        p = self.p
        devnet = DevnetProcess(
            tasks=0,
            close_every=p.close_every,
            ledger_seconds=p.ledger_seconds,
            log_path=self.work / "devnet.log",
            replicas=p.replicas,
        )
        with temporary_secrets(self.work) as secrets_dir:
            # a terminal's Ctrl-C must not reach the devnet before the supervisor has drained
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                devnet.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            try:
                self.procs.add(devnet.pid)
                self._run(devnet, secrets_dir)
            except BaseException as exc:
                self.violations.append(f"chaos run aborted: {type(exc).__name__}: {exc}")
                if isinstance(exc, KeyboardInterrupt):
                    raise
            finally:
                self._stop_everything(devnet)
        self._check_nothing_left()
        return self.report

    def _run(self, devnet: Any, secrets_dir: Path) -> None:
        clock, calls = self._prepare(devnet, secrets_dir)
        running_ledger, seeds = self._start(clock, calls)
        self._chaos(devnet)
        final_doc, end_ledger, status_counts = self._wind_down()
        self._judge(devnet, clock, seeds, final_doc, running_ledger, end_ledger, status_counts)

    def _prepare(self, devnet: Any, secrets_dir: Path) -> tuple[LedgerClock, list[dict[str, Any]]]:
        """Seed the workload, fund and write the keys, write the config."""
        p = self.p
        latest = devnet.rpc("getLatestLedger")
        self.clock = clock = LedgerClock(
            int(latest["sequence"]), int(latest["closeTime"]), p.ledger_seconds
        )
        startup_ledgers = math.ceil(6.0 / p.close_every)
        calls = plan_tasks(p, clock.t0, startup_ledgers)
        seed_tasks(devnet.info.rpc_url, calls)
        provision_split_secrets(devnet, secrets_dir, p.shards, p.channels)
        self.info = devnet.info
        self.cfg_path = write_yaml(
            self.work / "chaos.yaml", soak_config(p, devnet.info, self.work, secrets_dir)
        )
        return clock, calls

    def _start(self, clock: LedgerClock, calls: list[dict[str, Any]]) -> tuple[int, list[TaskSeed]]:
        """Start the supervisor and the watchers; wait until every shard ran a cycle."""
        p, work = self.p, self.work
        out_path = work / "supervisor.out"
        self.summary_path = work / "summary.json"
        self.proc = proc = start_supervisor(
            self.cfg_path, out_path, cwd=work, extra_args=("--summary-json", str(self.summary_path))
        )
        self.procs.add(proc.pid)
        url = wait_status_url(proc, out_path, 30)
        say(
            self.quiet,
            f"devnet {self.info.rpc_url}, supervisor pid {proc.pid} at {url}, work {work}",
        )
        self.sampler = sampler = LedgerSampler(self.info.rpc_url).start()
        self.watcher = watcher = StatusWatcher(url)
        watcher.on_doc.append(self.procs.from_status)
        watcher.start()
        self.monkey = Monkey(
            watcher, self.rng, ledger_now=lambda: sampler.value, recover_timeout=p.recover_timeout
        )
        names = [f"shard-{i + 1}" for i in range(p.shards)]
        if not wait_shards_running(watcher, names, proc, out_path, timeout=30):
            raise RuntimeError(f"shards not running within 30 s; see {work / 'logs'}")
        running_ledger = sampler.sample() or clock.seq0
        seeds = [
            TaskSeed(i + 1, shard_of(watcher.latest(), i + 1), c["interval"], c["last_run"])
            for i, c in enumerate(calls)
        ]
        self.causes.append(Cause("startup", None, clock.seq0, running_ledger))
        say(self.quiet, f"all {p.shards} shards running at ledger {running_ledger}; chaos begins")
        return running_ledger, seeds

    def _chaos(self, devnet: Any) -> None:
        """Kills, stops and fault phases until the calm end; then the calm end."""
        p, rng = self.p, self.rng
        proc, monkey, sampler = self.proc, self.monkey, self.sampler
        assert proc is not None and monkey is not None and sampler is not None
        t_run0 = time.monotonic()
        chaos_end = t_run0 + max(0.0, p.duration - p.quiet_s)
        run_end = t_run0 + p.duration
        next_kill = t_run0 + p.warmup_s
        next_stop = t_run0 + p.warmup_s + p.stop_every / 2
        next_fault = t_run0 + p.warmup_s + 1.0
        fault_i = 0
        fault_on: tuple[str, int, float] | None = None  # (name, start ledger, off at)
        for now in watch(run_end, proc, monkey, self.violations):
            if fault_on is not None and now >= fault_on[2]:
                self._end_fault(devnet, fault_on)
                fault_on = None
                next_fault = now + p.fault_gap_s
            if now < chaos_end:
                if p.kill_every > 0 and now >= next_kill:
                    monkey.act("kill")
                    next_kill = now + p.kill_every * rng.uniform(0.7, 1.3)
                if p.stop_every > 0 and now >= next_stop:
                    if rng.random() < 0.5:
                        monkey.act("stop_long", p.long_stop_s)
                    else:
                        monkey.act("stop_short", rng.uniform(*p.short_stop_s))
                    next_stop = now + p.stop_every * rng.uniform(0.7, 1.3)
                if p.faults and fault_on is None and now >= next_fault:
                    name, faults = FAULT_PHASES[fault_i % len(FAULT_PHASES)]
                    fault_i += 1
                    devnet.set_faults(**faults)
                    fault_on = (name, sampler.sample() or 0, now + p.fault_s)
        if fault_on is not None:
            self._end_fault(devnet, fault_on)

    def _end_fault(self, devnet: Any, fault_on: tuple[str, int, float]) -> None:
        assert self.sampler is not None
        devnet.set_faults()
        end_l = self.sampler.sample() or fault_on[1]
        self.causes.append(Cause("fault", None, fault_on[1], end_l, fault_on[0]))
        self.fault_log.append(
            {"fault": fault_on[0], "start_ledger": fault_on[1], "end_ledger": end_l}
        )

    def _wind_down(self) -> tuple[dict[str, Any] | None, int, dict[str, Any]]:
        """Let every shard recover, take the last /status, SIGTERM the supervisor."""
        proc, monkey, sampler, watcher = self.proc, self.monkey, self.sampler, self.watcher
        assert proc is not None and monkey is not None and sampler is not None
        assert watcher is not None
        monkey.release_all()
        monkey.wait_recovered(self.p.recover_timeout)
        for a in monkey.actions:
            if a.refused is None and a.ledger is not None:
                end = a.recovered_ledger if a.recovered_ledger is not None else None
                if end is None:
                    end = sampler.sample() or a.ledger
                self.causes.append(Cause(a.kind, a.shard, a.ledger, end, f"pid {a.pid}"))
        watcher.poll_once()
        final_doc = watcher.latest()
        end_ledger = sampler.sample() or self.clock.seq0
        watcher.stop()  # /status is judged until shutdown begins
        status_counts = watcher.counts()
        # graceful stop; everything the keepers sent reaches a final status
        code = terminate(proc, 40)
        if code is None:
            self.violations.append("supervisor did not exit within 40 s of SIGTERM")
            code = proc.returncode
        self.report["supervisor_exit_code"] = code
        if code != 0:
            self.violations.append(f"supervisor exit code {code} after SIGTERM")
        sampler.stop()
        return final_doc, end_ledger, status_counts

    def _judge(
        self,
        devnet: Any,
        clock: LedgerClock,
        seeds: list[TaskSeed],
        final_doc: dict[str, Any] | None,
        running_ledger: int,
        end_ledger: int,
        status_counts: dict[str, Any],
    ) -> None:
        """Invariants 1-5 from the devnet's record and the monkey's figures; the report."""
        p, work = self.p, self.work
        assert self.monkey is not None
        devnet.close_ledger(2)
        executions = devnet.executions()
        stats = devnet.stats()
        # the raw record, for anyone who wants to check the analysis independently
        (work / "devnet_executions.json").write_text(json.dumps(executions))
        (work / "tasks.json").write_text(json.dumps([asdict(s) for s in seeds]))
        ana = analyze(
            seeds=seeds,
            executions=executions,
            clock=clock,
            causes=self.causes,
            end_ledger=end_ledger,
            late_ledgers=p.late_ledgers,
            hold_ledgers=p.hold_ledgers,
        )
        fig = self.monkey.figures(final_doc, self.t_origin)
        self.violations += recovery_violations(fig)
        self.violations += analysis_violations(ana, late_windows=self.judge_late_windows)
        if status_counts["failures"]:
            self.violations.append(f"/status failed {status_counts['failures']} times")
        if ana["executions"] == 0:
            self.violations.append("nothing was executed")
        summary: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads(self.summary_path.read_text())
        self.report.update(
            {
                "ledgers": {
                    "first": clock.seq0,
                    "shards_running": running_ledger,
                    "end": end_ledger,
                    "count": end_ledger - clock.seq0,
                },
                "chaos": fig,
                "faults": self.fault_log,
                "status": status_counts,
                "executions": ana["executions"],
                "wasted": ana["wasted_total"],
                "wasted_by_effect": ana["wasted"],
                "analysis": ana,
                "devnet": {
                    k: stats.get(k)
                    for k in (
                        "tx_applied",
                        "tx_failed",
                        "tx_rejected",
                        "tx_refused_copies",
                        "tx_dropped",
                        "fees_total",
                    )
                },
                "keeper_summary": {
                    k: summary.get(k) for k in ("executed", "failed", "restarts", "cycles")
                },
                "accounting": accounting_text(p),
            }
        )

    def _stop_everything(self, devnet: Any) -> None:
        """Whatever happened: no stopped worker, no supervisor, no devnet left running."""
        if self.monkey is not None:
            self.monkey.release_all()
        if self.watcher is not None:
            self.watcher.halt()
        if self.sampler is not None:
            self.sampler.halt()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self.procs.add_tree(proc.pid)
            terminate(proc, 20)
        devnet.stop()

    def _check_nothing_left(self) -> None:
        """Invariant 6; then the verdict (the work directory goes when all is well)."""
        # the orphan grace: workers of a dead supervisor go within seconds
        deadline = time.monotonic() + 10
        left = self.procs.still_alive()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.procs.still_alive()
        self.report["processes_seen"] = len(self.procs.seen)
        self.report["processes_left"] = left
        if left:
            self.violations.append(f"processes of ours still running after shutdown: {left}")
        self.report["violations"] = self.violations
        self.report["ok"] = not self.violations
        self.report["wall_s"] = round(time.monotonic() - self.t_origin, 1)
        if self.own_tmp and not self.violations:
            shutil.rmtree(self.work, ignore_errors=True)
