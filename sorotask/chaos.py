"""``sorotask chaos``: kill workers, stop them, break the RPC; check from the devnet's own record
that nothing was lost or executed twice, and report how the keeper recovered.

Two modes::

    sorotask chaos [--duration S] [--report PATH] [--shards 4] [--tasks 2000] [--seed N]
    sorotask chaos --target URL --yes [--duration S] [--report PATH]

**Self-contained soak** (default): a devnet subprocess with fast ledger closes, ``--tasks``
recurring tasks, the supervisor as a real subprocess (``python -m sorotask.cli run --config``)
with ``--shards`` shards (each with channel accounts and a ``state_dir`` journal). For the
bounded run it SIGKILLs a random worker every ``--kill-every`` s, SIGSTOPs another every
``--stop-every`` s (briefly, or long enough to be detected as hung), and cycles the devnet
through fault phases (``devnet_setFaults``: latency spikes, HTTP 503, dropped connections,
TRY_AGAIN_LATER, transactions accepted as PENDING and never applied). The last part of the run
is quiet so every shard can catch up; then the supervisor gets SIGTERM.

Workload: ``--hot`` tasks (spread over the id range) recur every ``--hot-interval`` ledgers, so
they come due several times during a run; the other tasks form a stream with first due times
staggered at ``--cold-rate`` per ledger and recur after ``(tasks - hot) / cold-rate`` ledgers.
The keeper polls every ``close_every / 2`` s: it sees a ledger within half a ledger of its
close, so a due task can land in the next ledger or the one after (the strict bound below is
achievable with a ledger to spare).

**Invariants** (from the devnet's ``devnet_executions`` record, not the keeper's claims):

1. no wasted transaction: zero ``noop_not_due``, ``resolver_skipped``, ``unauthorized`` and
   ``failed`` effects (every target succeeds); no task executed twice in one due window;
2. lateness: each due window runs from the first ledger whose close time reaches the task's due
   time to the ledger that executed it (or the last ledger of the run). A window longer than
   ``--late-ledgers`` (3) is a *late window*. It is **attributed** when it overlaps a recorded
   cause -- a kill/stop-to-recovery window of its own shard, a devnet fault phase (any shard),
   or start-up -- and ends within ``hold + 3`` ledgers after that cause ended, where ``hold`` is
   ``ceil(tx_timeout_s / ledger_seconds) + 2``: a transaction in flight when the cause ended
   (journaled by a killed worker, or accepted and never applied) holds its task until its time
   bound passes, and one more poll dispatches it again. Any other late window is a violation
   (``unexplained``, or ``beyond accounted window``). Every late window is listed with its
   cause(s);
3. every shard is back to ``running`` (new pid, a finished cycle) after each kill and each hung
   replacement, within ``--recover-timeout`` s;
4. per shard, restarts reported by ``/status`` = kills + long (hung) stops; short stops cause
   none;
5. ``/status`` answered throughout (polled every 0.1 s; every failure is counted);
6. after shutdown no process of ours remains (supervisor, forkserver, workers, devnet: every
   pid seen, checked with psutil).

**Target mode**: against an already running supervisor found through its ``/status``: only
pids that ``/status`` lists as shard workers *and* that psutil shows to be descendants of the
supervisor pid from ``/status`` are killed; refuses without ``--yes``. Checks invariants 3-5.

Exit code: 0 when every invariant held, 1 when one was violated, 64 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from sorotask.exitcodes import ExitCode

WASTED_EFFECTS = ("noop_not_due", "resolver_skipped", "unauthorized", "failed")

#: devnet fault phases, cycled in this order (each for ``fault_s`` seconds)
FAULT_PHASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("latency_spike", {"latency_ms": 250, "jitter_ms": 200}),
    ("http_503", {"http_503_rate": 0.2}),
    ("dropped_connections", {"drop_rate": 0.1}),
    ("try_again_later", {"try_again_later_rate": 0.5, "methods": ["sendTransaction"]}),
    ("never_apply", {"never_apply_rate": 0.3, "methods": ["sendTransaction"]}),
)


@dataclass(slots=True)
class ChaosParams:
    """Everything a soak run is parametrised by (defaults: the issue's figures)."""

    duration: float = 60.0
    shards: int = 4
    tasks: int = 2000
    seed: int | None = None
    hot: int = 80
    hot_interval: int = 40
    cold_rate: float = 2.0
    channels: int = 3
    close_every: float = 0.5
    ledger_seconds: int = 5
    tx_timeout_s: int = 15
    kill_every: float = 3.0
    stop_every: float = 6.0
    short_stop_s: tuple[float, float] = (0.3, 1.0)
    heartbeat_timeout_s: float = 3.0
    kill_grace_s: float = 1.0
    fault_s: float = 2.5
    fault_gap_s: float = 3.5
    faults: bool = True
    warmup_s: float = 2.0
    quiet_s: float = 10.0
    late_ledgers: int = 3
    recover_timeout: float = 15.0
    workdir: str | None = None

    @property
    def poll_interval_s(self) -> float:
        return self.close_every / 2

    @property
    def long_stop_s(self) -> float:
        return self.heartbeat_timeout_s + 1.5

    @property
    def hold_ledgers(self) -> int:
        return math.ceil(self.tx_timeout_s / self.ledger_seconds) + 2


# ------------------------------------------------------------------------------ pure analysis


@dataclass(frozen=True, slots=True)
class TaskSeed:
    task_id: int
    shard: str
    interval: int
    last_run: int


@dataclass(frozen=True, slots=True)
class LedgerClock:
    """The devnet's ledger clock: ledger ``L`` closes at ``t0 + (L - seq0) * ledger_seconds``."""

    seq0: int
    t0: int
    ledger_seconds: int

    def first_ledger_at_or_after(self, ts: int) -> int:
        return self.seq0 + max(0, math.ceil((ts - self.t0) / self.ledger_seconds))

    def close_time(self, seq: int) -> int:
        return self.t0 + (seq - self.seq0) * self.ledger_seconds


@dataclass(frozen=True, slots=True)
class Cause:
    """A recorded disturbance: ledgers ``start..end``; ``shard`` None means every shard."""

    kind: str
    shard: str | None
    start: int
    end: int
    detail: str = ""


def analyze(
    *,
    seeds: list[TaskSeed],
    executions: list[dict[str, Any]],
    clock: LedgerClock,
    causes: list[Cause],
    end_ledger: int,
    late_ledgers: int = 3,
    hold_ledgers: int = 3,
) -> dict[str, Any]:
    """Check invariants 1 and 2 against the devnet's execution record (pure function)."""
    by_task: dict[int, list[dict[str, Any]]] = {}
    for e in executions:
        by_task.setdefault(int(e["task_id"]), []).append(e)
    wasted: dict[str, int] = {k: 0 for k in WASTED_EFFECTS}
    wasted_examples: list[dict[str, Any]] = []
    doubles: list[dict[str, Any]] = []
    clock_mismatch = 0
    delays: list[int] = []
    late: list[dict[str, Any]] = []
    executed = 0
    known = {s.task_id for s in seeds}
    foreign = sorted(t for t in by_task if t not in known)

    def judge(seed: TaskSeed, due_ledger: int, done_ledger: int, executed_at: int | None) -> None:
        delay = done_ledger - due_ledger
        if executed_at is not None:
            delays.append(delay)
        if delay <= late_ledgers:
            return
        hits = [
            c
            for c in causes
            if (c.shard is None or c.shard == seed.shard)
            and c.start <= done_ledger
            and due_ledger <= c.end + hold_ledgers
        ]
        excused_until = max((c.end + hold_ledgers for c in hits), default=None)
        if excused_until is None:
            verdict = "unexplained"
        elif done_ledger <= excused_until + late_ledgers:
            verdict = "attributed"
        else:
            verdict = "beyond accounted window"
        late.append(
            {
                "task_id": seed.task_id,
                "shard": seed.shard,
                "due_ledger": due_ledger,
                "executed_ledger": executed_at,
                "waited_ledgers": delay,
                "causes": sorted({f"{c.kind}({c.detail})" if c.detail else c.kind for c in hits}),
                "excused_until": excused_until,
                "verdict": verdict,
            }
        )

    for seed in seeds:
        due_ts = seed.last_run + seed.interval
        last_exec_ts: int | None = None
        for e in sorted(by_task.get(seed.task_id, []), key=lambda e: (e["ledger"], e["tx_hash"])):
            if clock.close_time(int(e["ledger"])) != int(e["timestamp"]):
                clock_mismatch += 1
            effect = e["effect"]
            if effect != "executed":
                wasted[effect] = wasted.get(effect, 0) + 1
                if len(wasted_examples) < 20:
                    wasted_examples.append(dict(e, shard=seed.shard))
                continue
            executed += 1
            ts = int(e["timestamp"])
            if last_exec_ts is not None and ts < last_exec_ts + seed.interval:
                doubles.append(dict(e, shard=seed.shard, previous_timestamp=last_exec_ts))
            judge(seed, clock.first_ledger_at_or_after(due_ts), int(e["ledger"]), int(e["ledger"]))
            last_exec_ts = ts
            due_ts = ts + seed.interval
        due_ledger = clock.first_ledger_at_or_after(due_ts)
        if due_ledger + late_ledgers < end_ledger:
            judge(seed, due_ledger, end_ledger, None)
    late.sort(key=lambda w: (w["due_ledger"], w["task_id"]))
    violations = [w for w in late if w["verdict"] != "attributed"]
    by_cause: dict[str, int] = {}
    for w in late:
        for c in w["causes"] or ["none"]:
            kind = c.split("(", 1)[0]
            by_cause[kind] = by_cause.get(kind, 0) + 1
    return {
        "executions": executed,
        "wasted": wasted,
        "wasted_total": sum(wasted.values()),
        "wasted_examples": wasted_examples,
        "executed_twice_in_one_window": doubles,
        "foreign_task_ids": foreign[:20],
        "clock_mismatches": clock_mismatch,
        "delay_ledgers": {
            "samples": len(delays),
            "max": max(delays) if delays else None,
            "mean": round(statistics.fmean(delays), 3) if delays else None,
            "histogram": {str(k): delays.count(k) for k in sorted(set(delays))},
        },
        "late_windows": late,
        "late_windows_by_cause": by_cause,
        "late_violations": violations,
    }


# ------------------------------------------------------------------------------ status watcher


def _status_doc(client: httpx.Client, url: str) -> dict[str, Any]:
    resp = client.get(url.rstrip("/") + "/status")
    resp.raise_for_status()
    doc = resp.json()
    if not isinstance(doc, dict) or not isinstance(doc.get("shards"), list):
        raise ValueError("not a /status document")
    return doc


class StatusWatcher:
    """Polls ``/status`` every ``every`` s in a thread; counts failures, keeps the last doc and
    every pid seen (shard workers and the supervisor's descendants)."""

    def __init__(self, url: str, every: float = 0.1, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.every = every
        self.client = httpx.Client(timeout=timeout)
        self.lock = threading.Lock()
        self.doc: dict[str, Any] | None = None
        self.doc_at = 0.0
        self.polls = 0
        self.failures = 0
        self.failure_examples: list[str] = []
        self.max_latency_s = 0.0
        self.seen: dict[int, float] = {}  # pid -> create_time
        self.supervisor_pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-status", daemon=True)
        self.on_doc: list[Any] = []

    def start(self) -> StatusWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()

    def poll_once(self) -> dict[str, Any] | None:
        t0 = time.monotonic()
        try:
            doc = _status_doc(self.client, self.url)
        except (httpx.HTTPError, ValueError) as exc:
            with self.lock:
                self.polls += 1
                self.failures += 1
                if len(self.failure_examples) < 10:
                    self.failure_examples.append(f"{type(exc).__name__}: {exc}")
            return None
        now = time.monotonic()
        with self.lock:
            self.polls += 1
            self.max_latency_s = max(self.max_latency_s, now - t0)
            self.doc, self.doc_at = doc, now
            self.supervisor_pid = doc.get("supervisor", {}).get("pid")
        self._remember_pids(doc)
        for fn in list(self.on_doc):
            fn(doc, now)
        return doc

    def _remember_pids(self, doc: dict[str, Any]) -> None:
        pids = [s.get("pid") for s in doc["shards"] if isinstance(s.get("pid"), int)]
        sup = doc.get("supervisor", {}).get("pid")
        procs: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            if isinstance(sup, int):
                root = psutil.Process(sup)
                procs = [root, *root.children(recursive=True)]
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        for p in procs:
            with contextlib.suppress(psutil.Error):
                self.seen.setdefault(p.pid, p.create_time())

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.0, self.every - (time.monotonic() - t0)))

    def latest(self) -> dict[str, Any] | None:
        with self.lock:
            return self.doc

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {
                "polls": self.polls,
                "failures": self.failures,
                "failure_examples": list(self.failure_examples),
                "max_latency_s": round(self.max_latency_s, 3),
            }


def _shards_by_name(doc: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (doc or {}).get("shards", [])}


def is_descendant(pid: int, ancestor: int) -> bool:
    """True when ``pid`` is a (grand)child of ``ancestor`` (psutil)."""
    if pid == ancestor:
        return False
    try:
        p = psutil.Process(pid)
        return any(a.pid == ancestor for a in p.parents())
    except psutil.Error:
        return False


def still_alive(seen: dict[int, float]) -> list[int]:
    """Pids from ``seen`` (pid -> create_time) that still run (same process, not a zombie)."""
    out = []
    for pid, created in seen.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


# ------------------------------------------------------------------------------ the chaos monkey


@dataclass(slots=True)
class Action:
    """One thing done to a worker, and how its shard came back."""

    kind: str  # kill | stop_short | stop_long
    shard: str
    pid: int
    at: float  # monotonic
    ledger: int | None = None
    restarts_before: int = 0
    held_s: float = 0.0
    recovered_at: float | None = None
    recovered_ledger: int | None = None
    new_pid: int | None = None
    supervisor_first_cycle_ms: float | None = None
    refused: str | None = None

    @property
    def recover_s(self) -> float | None:
        if self.recovered_at is None:
            return None
        return self.recovered_at - self.at

    def to_json(self, t_origin: float) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = round(self.at - t_origin, 3)
        d["recovered_at"] = (
            round(self.recovered_at - t_origin, 3) if self.recovered_at is not None else None
        )
        d["recover_s"] = round(self.recover_s, 3) if self.recover_s is not None else None
        return d


class Monkey:
    """Picks victims among the running shards of a supervisor and watches their recovery."""

    def __init__(
        self,
        watcher: StatusWatcher,
        rng: random.Random,
        *,
        ledger_now: Any = None,
        recover_timeout: float = 15.0,
    ) -> None:
        self.w = watcher
        self.rng = rng
        self.ledger_now = ledger_now or (lambda: None)
        self.recover_timeout = recover_timeout
        self.actions: list[Action] = []
        self.busy: dict[str, Action] = {}  # shard -> unrecovered action
        self.stopped: dict[str, tuple[Action, float]] = {}  # shard -> (action, SIGCONT at)
        self.lock = threading.Lock()
        watcher.on_doc.append(self._observe)

    def _observe(self, doc: dict[str, Any], now: float) -> None:
        shards = _shards_by_name(doc)
        with self.lock:
            for name, act in list(self.busy.items()):
                if name in self.stopped:
                    continue
                s = shards.get(name)
                if s is None:
                    continue
                cycle = s.get("last_cycle") or {}
                rep = s.get("replacement_ms") or {}
                if act.kind == "stop_short":
                    # recovered: the same pid running and a cycle finished after SIGCONT
                    if s.get("state") == "running" and s.get("pid") == act.pid:
                        age = cycle.get("age_s")
                        if age is not None and now - age >= act.at + act.held_s:
                            self._recovered(act, s, now)
                    continue
                if (
                    s.get("state") == "running"
                    and s.get("pid") not in (None, act.pid)
                    and rep.get("first_cycle_ms") is not None
                    and int(s.get("restarts", 0)) > act.restarts_before
                ):
                    act.supervisor_first_cycle_ms = rep.get("first_cycle_ms")
                    self._recovered(act, s, now)

    def _recovered(self, act: Action, s: dict[str, Any], now: float) -> None:
        act.recovered_at = now
        act.recovered_ledger = self.ledger_now()
        act.new_pid = s.get("pid")
        self.busy.pop(act.shard, None)

    def _candidates(self) -> list[dict[str, Any]]:
        doc = self.w.latest()
        with self.lock:
            return [
                s
                for s in (doc or {}).get("shards", [])
                if s.get("state") == "running"
                and isinstance(s.get("pid"), int)
                and s.get("last_cycle")
                and s["name"] not in self.busy
                and s["name"] not in self.stopped
            ]

    def _verify(self, pid: int) -> str | None:
        """Why ``pid`` must not be touched (None: it is one of our supervisor's workers)."""
        doc = self.w.poll_once()  # fresh: pids straight from /status
        if doc is None:
            return "/status did not answer"
        listed = {s.get("pid") for s in doc["shards"]}
        if pid not in listed:
            return f"pid {pid} is not listed by /status"
        sup = doc.get("supervisor", {}).get("pid")
        if not isinstance(sup, int):
            return "/status names no supervisor pid"
        if not is_descendant(pid, sup):
            return f"pid {pid} is not a descendant of the supervisor pid {sup}"
        return None

    def act(self, kind: str, hold_s: float = 0.0) -> Action | None:
        """Kill (``kill``) or SIGSTOP (``stop_short``/``stop_long``) one random running worker."""
        cands = self._candidates()
        if not cands:
            return None
        s = self.rng.choice(cands)
        pid = int(s["pid"])
        act = Action(
            kind=kind,
            shard=s["name"],
            pid=pid,
            at=time.monotonic(),
            restarts_before=int(s.get("restarts", 0)),
            held_s=hold_s,
        )
        why = self._verify(pid)
        if why is not None:
            act.refused = why
            self.actions.append(act)
            return act
        act.at = time.monotonic()
        act.ledger = self.ledger_now()
        with self.lock:
            self.actions.append(act)
            self.busy[act.shard] = act
            if kind == "kill":
                os.kill(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGSTOP)
                self.stopped[act.shard] = (act, act.at + hold_s)
        return act

    def tick(self) -> None:
        """SIGCONT stopped workers whose time is up; give up on very late recoveries."""
        now = time.monotonic()
        with self.lock:
            for name, (act, until) in list(self.stopped.items()):
                if now >= until:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(act.pid, signal.SIGCONT)
                    del self.stopped[name]
            for name, act in list(self.busy.items()):
                if now - act.at > self.recover_timeout + act.held_s:
                    del self.busy[name]  # reported as not recovered

    def release_all(self) -> None:
        with self.lock:
            for act, _ in self.stopped.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(act.pid, signal.SIGCONT)
            self.stopped.clear()

    def wait_recovered(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tick()
            with self.lock:
                if not self.busy and not self.stopped:
                    return
            time.sleep(0.05)

    def figures(self, final_doc: dict[str, Any] | None, t_origin: float) -> dict[str, Any]:
        done = [a for a in self.actions if a.refused is None]
        kills = [a for a in done if a.kind == "kill"]
        longs = [a for a in done if a.kind == "stop_long"]
        shorts = [a for a in done if a.kind == "stop_short"]
        restarting = kills + longs
        rec = [a.recover_s for a in restarting if a.recover_s is not None]
        sup_ms = [
            a.supervisor_first_cycle_ms for a in kills if a.supervisor_first_cycle_ms is not None
        ]
        final = _shards_by_name(final_doc)
        per_shard: dict[str, dict[str, Any]] = {}
        for name, s in final.items():
            expected = sum(1 for a in restarting if a.shard == name)
            per_shard[name] = {
                "kills": sum(1 for a in kills if a.shard == name),
                "hung_stops": sum(1 for a in longs if a.shard == name),
                "short_stops": sum(1 for a in shorts if a.shard == name),
                "expected_restarts": expected,
                "restarts": int(s.get("restarts", 0)),
                "state": s.get("state"),
            }
        return {
            "kills": len(kills),
            "stops": len(longs) + len(shorts),
            "hung_stops": len(longs),
            "short_stops": len(shorts),
            "refused": [a.to_json(t_origin) for a in self.actions if a.refused is not None],
            "restarts": sum(int(s.get("restarts", 0)) for s in final.values()),
            "expected_restarts": len(restarting),
            "not_recovered": [a.to_json(t_origin) for a in done if a.recovered_at is None],
            "recover_s": {
                "mean": round(statistics.fmean(rec), 3) if rec else None,
                "max": round(max(rec), 3) if rec else None,
                "kill_mean": _mean([a.recover_s for a in kills]),
                "hung_mean": _mean([a.recover_s for a in longs]),
            },
            "supervisor_first_cycle_ms": {
                "mean": round(statistics.fmean(sup_ms), 1) if sup_ms else None,
                "max": round(max(sup_ms), 1) if sup_ms else None,
            },
            "per_shard": per_shard,
            "actions": [a.to_json(t_origin) for a in self.actions],
        }


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.fmean(vals), 3) if vals else None


def recovery_violations(fig: dict[str, Any]) -> list[str]:
    """Invariants 3 and 4 from :meth:`Monkey.figures`."""
    out: list[str] = []
    for a in fig["not_recovered"]:
        out.append(f"shard {a['shard']} did not recover after {a['kind']} of pid {a['pid']}")
    for name, s in fig["per_shard"].items():
        if s["state"] != "running":
            out.append(f"shard {name} ends in state {s['state']}")
        if s["restarts"] != s["expected_restarts"]:
            out.append(
                f"shard {name}: {s['restarts']} restarts, expected {s['expected_restarts']} "
                f"({s['kills']} kills + {s['hung_stops']} hung stops)"
            )
    return out


# ------------------------------------------------------------------------------ the soak


def _owner(doc: dict[str, Any] | None, task_id: int) -> str:
    """The shard whose range (from ``/status``) holds ``task_id``."""
    for s in (doc or {}).get("shards", []):
        first, last = s["range"]
        if first <= task_id and (last is None or task_id <= last):
            return str(s["name"])
    return "?"


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


def plan_tasks(p: ChaosParams, now_ts: int, start_ledger_offset: int) -> list[dict[str, Any]]:
    """The seed calls (one per task, in id order 1..tasks): hot and cold tasks, staggered."""
    ls = p.ledger_seconds
    hot_every = max(1, p.tasks // max(1, p.hot)) if p.hot else 0
    hot_ids = {1 + k * hot_every for k in range(p.hot)} if p.hot else set()
    cold_n = p.tasks - len(hot_ids)
    cold_interval = max(1, math.ceil(cold_n / p.cold_rate)) if cold_n else 1
    start = now_ts + start_ledger_offset * ls
    # the stream's order is shuffled so that every shard gets its share of it all the time
    cold_ids = [t for t in range(1, p.tasks + 1) if t not in hot_ids]
    random.Random(p.seed).shuffle(cold_ids)
    cold_rank = {t: k for k, t in enumerate(cold_ids)}
    calls: list[dict[str, Any]] = []
    hot_k = 0
    for task_id in range(1, p.tasks + 1):
        if task_id in hot_ids:
            interval = p.hot_interval * ls
            due = start + (hot_k * p.hot_interval // max(1, p.hot)) * ls
            hot_k += 1
        else:
            interval = cold_interval * ls
            due = start + int(cold_rank[task_id] / p.cold_rate) * ls
        calls.append({"count": 1, "interval": interval, "last_run": due - interval})
    return calls


class _LedgerSampler:
    """The devnet's current ledger (``devnet_stats``, never faulted), sampled in a thread."""

    def __init__(self, rpc_url: str, every: float = 0.1) -> None:
        self.url = rpc_url
        self.every = every
        self.client = httpx.Client(timeout=10)
        self.value: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-ledger", daemon=True)

    def sample(self) -> int | None:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            r = self.client.post(
                self.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "devnet_stats", "params": {}},
            )
            self.value = int(r.json()["result"]["ledger"])
        return self.value

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def start(self) -> _LedgerSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()


def _seed_devnet(rpc_url: str, calls: list[dict[str, Any]]) -> None:
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(calls), 200):
            reqs = [
                {"jsonrpc": "2.0", "id": j, "method": "devnet_seedTasks", "params": params}
                for j, params in enumerate(calls[i : i + 200])
            ]
            resp = client.post(rpc_url, json=reqs)
            resp.raise_for_status()
            for item in resp.json():
                if "error" in item:
                    raise RuntimeError(f"devnet_seedTasks: {item['error']}")


def _config(p: ChaosParams, info: Any, work: Path, secrets_dir: Path) -> dict[str, Any]:
    split: dict[str, Any] = {
        "range": [1, p.tasks],
        "count": p.shards,
        "name_pattern": "shard-{index}",
        "secret_file_pattern": str(secrets_dir / "keeper-{index}.secret"),
    }
    if p.channels:
        split["channels"] = p.channels
        split["channel_secret_file_pattern"] = str(
            secrets_dir / "keeper-{index}-ch-{channel}.secret"
        )
    return {
        "network": {
            "rpc_url": info.rpc_url,
            "network_passphrase": info.network_passphrase,
            "contract_id": info.contract_id,
        },
        "worker": {
            "poll_interval_s": p.poll_interval_s,
            "max_concurrent_executions": max(1, p.channels),
            "max_concurrent_reads": 4,
            "rpc_timeout_s": 3,
            "tx_timeout_s": p.tx_timeout_s,
            "stop_grace_s": 3,
            "confirm_poll_s": 0.1,
        },
        "supervisor": {
            "status_address": "127.0.0.1:0",
            "log_dir": str(work / "logs"),
            "state_dir": str(work / "state"),
            "log_level": "INFO",
            "heartbeat_timeout_s": p.heartbeat_timeout_s,
            "kill_grace_s": p.kill_grace_s,
            "shutdown_grace_s": 10,
            "restart": {
                "max_restarts": 10_000,
                "window_s": 60,
                "backoff_base_s": 0.1,
                "backoff_max_s": 0.5,
                "jitter": 0.2,
                "stable_after_s": 2,
            },
        },
        "split": split,
    }


def _wait_status_url(proc: subprocess.Popen[bytes], out_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"supervisor exited with {proc.returncode}; see {out_path}")
        for line in out_path.read_text(errors="replace").splitlines():
            if line.startswith("sorotask: status at http"):
                return line.split(" at ", 1)[1].strip()
        time.sleep(0.05)
    raise RuntimeError(f"supervisor printed no status URL within {timeout}s; see {out_path}")


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"chaos: {msg}", file=sys.stderr, flush=True)


def run_soak(p: ChaosParams, *, quiet: bool = False) -> dict[str, Any]:
    """Run the self-contained soak and return the report (see the module docstring)."""
    import yaml
    from stellar_sdk import Keypair

    from devnet.process import DevnetProcess

    rng = random.Random(p.seed)
    own_tmp = p.workdir is None
    work = Path(p.workdir or tempfile.mkdtemp(prefix="sorotask-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    secrets_dir = Path(tempfile.mkdtemp(prefix="secrets-", dir=work))
    os.chmod(secrets_dir, 0o700)
    t_origin = time.monotonic()
    report: dict[str, Any] = {"mode": "soak", "params": _params_json(p), "workdir": str(work)}
    violations: list[str] = []
    seen: dict[int, float] = {}
    proc: subprocess.Popen[bytes] | None = None
    watcher: StatusWatcher | None = None
    sampler: _LedgerSampler | None = None
    monkey: Monkey | None = None
    causes: list[Cause] = []
    devnet = DevnetProcess(
        tasks=0,
        close_every=p.close_every,
        ledger_seconds=p.ledger_seconds,
        log_path=work / "devnet.log",
    )
    # a terminal's Ctrl-C must not reach the devnet before the supervisor has drained
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        devnet.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    try:
        seen[devnet.pid] = psutil.Process(devnet.pid).create_time()
        info = devnet.info
        latest = devnet.rpc("getLatestLedger")
        clock = LedgerClock(int(latest["sequence"]), int(latest["closeTime"]), p.ledger_seconds)
        startup_ledgers = math.ceil(6.0 / p.close_every)
        calls = plan_tasks(p, clock.t0, startup_ledgers)
        _seed_devnet(info.rpc_url, calls)
        keys = [Keypair.random() for _ in range(p.shards * (1 + p.channels))]
        devnet.rpc("devnet_fund", {"addresses": [k.public_key for k in keys]})
        for i in range(p.shards):
            _write_secret(secrets_dir / f"keeper-{i + 1}.secret", keys[i * (1 + p.channels)].secret)
            for c in range(p.channels):
                kp = keys[i * (1 + p.channels) + 1 + c]
                _write_secret(secrets_dir / f"keeper-{i + 1}-ch-{c + 1}.secret", kp.secret)
        del keys
        cfg_path = work / "chaos.yaml"
        cfg_path.write_text(yaml.safe_dump(_config(p, info, work, secrets_dir), sort_keys=False))
        out_path = work / "supervisor.out"
        summary_path = work / "summary.json"
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("SOROTASK_TEST_KEEPER", None)
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sorotask.cli",
                    "run",
                    "--config",
                    str(cfg_path),
                    "--summary-json",
                    str(summary_path),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=work,
            )
        seen[proc.pid] = psutil.Process(proc.pid).create_time()
        url = _wait_status_url(proc, out_path, 30)
        _say(quiet, f"devnet {info.rpc_url}, supervisor pid {proc.pid} at {url}, work {work}")
        sampler = _LedgerSampler(info.rpc_url).start()
        watcher = StatusWatcher(url).start()
        monkey = Monkey(
            watcher, rng, ledger_now=lambda: sampler.value, recover_timeout=p.recover_timeout
        )
        names = [f"shard-{i + 1}" for i in range(p.shards)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shards = _shards_by_name(watcher.latest())
            if len(shards) == p.shards and all(
                shards[n]["state"] == "running" and shards[n]["last_cycle"] for n in names
            ):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"supervisor exited with {proc.returncode}; see {out_path}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"shards not running within 30 s; see {work / 'logs'}")
        running_ledger = sampler.sample() or clock.seq0
        seeds = [
            TaskSeed(i + 1, _owner(watcher.latest(), i + 1), c["interval"], c["last_run"])
            for i, c in enumerate(calls)
        ]
        causes.append(Cause("startup", None, clock.seq0, running_ledger))
        t_run0 = time.monotonic()
        _say(quiet, f"all {p.shards} shards running at ledger {running_ledger}; chaos begins")
        chaos_end = t_run0 + max(0.0, p.duration - p.quiet_s)
        run_end = t_run0 + p.duration
        next_kill = t_run0 + p.warmup_s
        next_stop = t_run0 + p.warmup_s + p.stop_every / 2
        next_fault = t_run0 + p.warmup_s + 1.0
        fault_i = 0
        fault_on: tuple[str, int, float] | None = None  # (name, start ledger, off at)
        fault_log: list[dict[str, Any]] = []
        while True:
            now = time.monotonic()
            if now >= run_end:
                break
            if proc.poll() is not None:
                violations.append(f"supervisor exited early with code {proc.returncode}")
                break
            monkey.tick()
            if fault_on is not None and now >= fault_on[2]:
                devnet.set_faults()
                end_l = sampler.sample() or fault_on[1]
                causes.append(Cause("fault", None, fault_on[1], end_l, fault_on[0]))
                fault_log.append(
                    {"fault": fault_on[0], "start_ledger": fault_on[1], "end_ledger": end_l}
                )
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
            time.sleep(0.02)
        if fault_on is not None:
            devnet.set_faults()
            end_l = sampler.sample() or fault_on[1]
            causes.append(Cause("fault", None, fault_on[1], end_l, fault_on[0]))
            fault_log.append(
                {"fault": fault_on[0], "start_ledger": fault_on[1], "end_ledger": end_l}
            )
        monkey.release_all()
        monkey.wait_recovered(p.recover_timeout)
        for a in monkey.actions:
            if a.refused is None and a.ledger is not None:
                end = a.recovered_ledger if a.recovered_ledger is not None else None
                if end is None:
                    end = sampler.sample() or a.ledger
                causes.append(Cause(a.kind, a.shard, a.ledger, end, f"pid {a.pid}"))
        watcher.poll_once()
        final_doc = watcher.latest()
        end_ledger = sampler.sample() or clock.seq0
        watcher.stop()  # /status is judged until shutdown begins
        seen.update(watcher.seen)
        status_counts = watcher.counts()
        # graceful stop; everything the keepers sent reaches a final status
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            violations.append("supervisor did not exit within 40 s of SIGTERM")
            proc.kill()
            code = proc.wait(timeout=10)
        report["supervisor_exit_code"] = code
        if code != 0:
            violations.append(f"supervisor exit code {code} after SIGTERM")
        sampler.stop()
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
            causes=causes,
            end_ledger=end_ledger,
            late_ledgers=p.late_ledgers,
            hold_ledgers=p.hold_ledgers,
        )
        fig = monkey.figures(final_doc, t_origin)
        violations += recovery_violations(fig)
        if ana["wasted_total"]:
            violations.append(f"{ana['wasted_total']} wasted transactions: {ana['wasted']}")
        if ana["executed_twice_in_one_window"]:
            violations.append(
                f"{len(ana['executed_twice_in_one_window'])} tasks executed twice in one window"
            )
        if ana["foreign_task_ids"]:
            violations.append(f"executions of unknown task ids {ana['foreign_task_ids']}")
        if ana["clock_mismatches"]:
            violations.append(f"{ana['clock_mismatches']} executions off the ledger clock")
        for w in ana["late_violations"][:20]:
            violations.append(
                f"task {w['task_id']} ({w['shard']}) waited {w['waited_ledgers']} ledgers from "
                f"ledger {w['due_ledger']}: {w['verdict']}"
                + (f" (causes {', '.join(w['causes'])})" if w["causes"] else "")
            )
        if len(ana["late_violations"]) > 20:
            violations.append(f"... {len(ana['late_violations']) - 20} more late windows")
        if status_counts["failures"]:
            violations.append(f"/status failed {status_counts['failures']} times")
        if ana["executions"] == 0:
            violations.append("nothing was executed")
        summary: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads(summary_path.read_text())
        report.update(
            {
                "ledgers": {
                    "first": clock.seq0,
                    "shards_running": running_ledger,
                    "end": end_ledger,
                    "count": end_ledger - clock.seq0,
                },
                "chaos": fig,
                "faults": fault_log,
                "status": status_counts,
                "executions": ana["executions"],
                "wasted": ana["wasted_total"],
                "wasted_by_effect": ana["wasted"],
                "analysis": ana,
                "devnet": {
                    k: stats.get(k)
                    for k in ("tx_applied", "tx_failed", "tx_rejected", "tx_dropped", "fees_total")
                },
                "keeper_summary": {
                    k: summary.get(k) for k in ("executed", "failed", "restarts", "cycles")
                },
                "accounting": _accounting_text(p),
            }
        )
    except BaseException as exc:
        violations.append(f"chaos run aborted: {type(exc).__name__}: {exc}")
        if isinstance(exc, KeyboardInterrupt):
            raise
    finally:
        if monkey is not None:
            monkey.release_all()
        if watcher is not None:
            watcher._stop.set()
            seen.update(watcher.seen)
        if sampler is not None:
            sampler._stop.set()
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    seen.setdefault(child.pid, child.create_time())
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        devnet.stop()
        shutil.rmtree(secrets_dir, ignore_errors=True)
        # the orphan grace: workers of a dead supervisor go within seconds
        deadline = time.monotonic() + 10
        left = still_alive(seen)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = still_alive(seen)
        report["processes_seen"] = len(seen)
        report["processes_left"] = left
        if left:
            violations.append(f"processes of ours still running after shutdown: {left}")
        report["violations"] = violations
        report["ok"] = not violations
        report["wall_s"] = round(time.monotonic() - t_origin, 1)
        if own_tmp and not violations:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _params_json(p: ChaosParams) -> dict[str, Any]:
    d = asdict(p)
    d["poll_interval_s"] = p.poll_interval_s
    d["long_stop_s"] = p.long_stop_s
    d["hold_ledgers"] = p.hold_ledgers
    return d


def _accounting_text(p: ChaosParams) -> str:
    return (
        f"Ledgers close every {p.close_every:g} s and advance {p.ledger_seconds} s of ledger time; "
        f"keepers poll every {p.poll_interval_s:g} s (half a ledger), so a task due at ledger D "
        f"can be executed in ledger D+1. A due window longer than {p.late_ledgers} ledgers is "
        "late; it is attributed when it overlaps a recorded cause (a kill or stop of its own "
        "shard until that shard ran a cycle again, a devnet fault phase, start-up) and ends "
        f"within hold ({p.hold_ledgers} ledgers = ceil(tx_timeout_s {p.tx_timeout_s} / "
        f"{p.ledger_seconds}) + 2: a transaction in flight when the cause ended holds its task "
        f"until its time bound passes) + {p.late_ledgers} ledgers of the cause's end. Every "
        "other late window is a violation."
    )


# ------------------------------------------------------------------------------ target mode


def run_target(
    url: str,
    *,
    duration: float,
    kill_every: float,
    seed: int | None,
    recover_timeout: float = 15.0,
    quiet: bool = False,
) -> dict[str, Any]:
    """Kill workers of a running supervisor (found through ``url``/status); report recovery."""
    rng = random.Random(seed)
    t_origin = time.monotonic()
    violations: list[str] = []
    watcher = StatusWatcher(url)
    doc = watcher.poll_once()
    if doc is None:
        watcher.client.close()
        return {
            "mode": "target",
            "url": url,
            "ok": False,
            "violations": [f"no supervisor answering at {url}/status"],
        }
    start_doc = doc
    monkey = Monkey(watcher, rng, recover_timeout=recover_timeout)
    watcher.start()
    try:
        end = time.monotonic() + duration
        next_kill = time.monotonic() + min(1.0, kill_every)
        while time.monotonic() < end:
            monkey.tick()
            if time.monotonic() >= next_kill:
                act = monkey.act("kill")
                if act is not None and act.refused:
                    _say(quiet, f"refused to kill pid {act.pid}: {act.refused}")
                elif act is not None:
                    _say(quiet, f"killed {act.shard} pid {act.pid}")
                next_kill = time.monotonic() + kill_every * rng.uniform(0.7, 1.3)
            time.sleep(0.02)
        monkey.wait_recovered(recover_timeout)
        watcher.poll_once()
    finally:
        watcher.stop()
    final = watcher.latest()
    fig = monkey.figures(final, t_origin)
    # restarts relative to the start of this run (the supervisor may have restarted before)
    before = {s["name"]: int(s.get("restarts", 0)) for s in start_doc["shards"]}
    for name, s in fig["per_shard"].items():
        s["restarts"] -= before.get(name, 0)
    fig["restarts"] = sum(s["restarts"] for s in fig["per_shard"].values())
    violations += recovery_violations(fig)
    counts = watcher.counts()
    if counts["failures"]:
        violations.append(f"/status failed {counts['failures']} times")
    if fig["refused"]:
        violations.append(f"{len(fig['refused'])} kills refused (pid not one of our workers)")
    return {
        "mode": "target",
        "url": url,
        "supervisor_pid": start_doc.get("supervisor", {}).get("pid"),
        "chaos": fig,
        "status": counts,
        "violations": violations,
        "ok": not violations,
        "wall_s": round(time.monotonic() - t_origin, 1),
    }


# ------------------------------------------------------------------------------ report and CLI


def format_summary(r: dict[str, Any]) -> str:
    """The readable summary of a report."""
    c = r.get("chaos") or {}
    rec = c.get("recover_s") or {}
    lines = [f"sorotask chaos ({r.get('mode')}): {'OK' if r.get('ok') else 'INVARIANT VIOLATED'}"]
    if c:
        lines += [
            f"  kills              {c.get('kills')}",
            f"  stops              {c.get('stops')} ({c.get('hung_stops')} long enough to be "
            f"hung, {c.get('short_stops')} short)",
            f"  restarts           {c.get('restarts')} (expected {c.get('expected_restarts')})",
            f"  time to recover    mean {rec.get('mean')} s, max {rec.get('max')} s "
            f"(kill -> running with a cycle; supervisor-measured first cycle mean "
            f"{(c.get('supervisor_first_cycle_ms') or {}).get('mean')} ms)",
        ]
    st = r.get("status")
    if st:
        lines.append(
            f"  /status            {st['polls']} polls, {st['failures']} failures, max "
            f"{st['max_latency_s']} s"
        )
    if r.get("mode") == "soak" and "analysis" in r:
        a = r["analysis"]
        d = a["delay_ledgers"]
        lw = a["late_windows"]
        lines += [
            f"  ledgers            {r['ledgers']['count']} "
            f"(close every {r['params']['close_every']} s, poll every "
            f"{r['params']['poll_interval_s']} s)",
            f"  executions         {r['executions']}",
            f"  wasted txs         {r['wasted']} {r['wasted_by_effect']}",
            f"  executed twice     {len(a['executed_twice_in_one_window'])}",
            f"  due->executed      max {d['max']} ledgers, mean {d['mean']} "
            f"(histogram {d['histogram']})",
            f"  late windows       {len(lw)} (> {r['params']['late_ledgers']} ledgers): by cause "
            f"{a['late_windows_by_cause']}; violations {len(a['late_violations'])}",
            f"  fault phases       {', '.join(f['fault'] for f in r.get('faults', []))}",
        ]
        for w in lw[:10]:
            lines.append(
                f"    task {w['task_id']} {w['shard']} due {w['due_ledger']} executed "
                f"{w['executed_ledger']} ({w['waited_ledgers']} ledgers): {w['verdict']} "
                f"{', '.join(w['causes'])}"
            )
        if len(lw) > 10:
            lines.append(f"    ... {len(lw) - 10} more in the JSON report")
        lines.append(
            f"  processes left     {len(r.get('processes_left', []))} of "
            f"{r.get('processes_seen')} seen"
        )
        lines.append("  accounting: " + r.get("accounting", ""))
    for v in r.get("violations", []):
        lines.append(f"  VIOLATION: {v}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def main(argv: list[str]) -> int:
    """``sorotask chaos [...]`` (see the module docstring)."""
    d = ChaosParams()
    ap = _Parser(
        prog="sorotask chaos",
        description="Kill workers, stop them and break the RPC; check from the devnet's own "
        "record that nothing was lost or executed twice. Without --target: a self-contained "
        "soak (devnet + supervisor). With --target URL --yes: kill workers of a running "
        "supervisor and report how it recovered.",
    )
    ap.add_argument("--duration", type=float, default=None, help="seconds (default 60; 20 target)")
    ap.add_argument("--report", help="write the JSON report here (summary on stdout)")
    ap.add_argument("--shards", type=int, default=d.shards)
    ap.add_argument("--tasks", type=int, default=d.tasks)
    ap.add_argument("--seed", type=int, default=None, help="random seed (reproducible choices)")
    ap.add_argument("--hot", type=int, default=d.hot, help="tasks recurring every --hot-interval")
    ap.add_argument("--hot-interval", type=int, default=d.hot_interval, help="ledgers")
    ap.add_argument("--cold-rate", type=float, default=d.cold_rate, help="cold tasks due/ledger")
    ap.add_argument("--channels", type=int, default=d.channels, help="channel accounts/shard")
    ap.add_argument("--close-every", type=float, default=d.close_every)
    ap.add_argument("--kill-every", type=float, default=None)
    ap.add_argument("--stop-every", type=float, default=d.stop_every)
    ap.add_argument("--no-faults", action="store_true", help="no devnet fault phases")
    ap.add_argument("--quiet-s", type=float, default=d.quiet_s, help="calm end of the run")
    ap.add_argument("--workdir", help="keep config, logs, state here (default: a temp dir)")
    ap.add_argument("--target", help="status URL of a running supervisor")
    ap.add_argument("--yes", action="store_true", help="really kill workers of --target")
    ap.add_argument("--json", action="store_true", help="print the JSON report, not a summary")
    a = ap.parse_args(argv)
    if a.duration is not None and a.duration <= 0:
        ap.error("--duration must be > 0")
    if a.target:
        if not a.yes:
            print(
                f"sorotask chaos: --target {a.target} would SIGKILL that supervisor's workers; "
                "add --yes to do it",
                file=sys.stderr,
            )
            return ExitCode.USAGE
        report = run_target(
            a.target,
            duration=a.duration or 20.0,
            kill_every=a.kill_every or 3.0,
            seed=a.seed,
        )
    else:
        if a.shards < 1 or a.tasks < a.shards or a.close_every <= 0:
            ap.error("need --shards >= 1, --tasks >= --shards and --close-every > 0")
        p = ChaosParams(
            duration=a.duration or d.duration,
            shards=a.shards,
            tasks=a.tasks,
            seed=a.seed,
            hot=min(a.hot, a.tasks),
            hot_interval=a.hot_interval,
            cold_rate=a.cold_rate,
            channels=a.channels,
            close_every=a.close_every,
            kill_every=d.kill_every if a.kill_every is None else a.kill_every,
            stop_every=a.stop_every,
            faults=not a.no_faults,
            quiet_s=a.quiet_s,
            workdir=a.workdir,
        )
        report = run_soak(p)
    text = json.dumps(report, indent=2, default=str)
    if a.report:
        Path(a.report).write_text(text + "\n")
    print(text if a.json else format_summary(report))
    return ExitCode.OK if report.get("ok") else ExitCode.CRASH
