"""The chaos monkey: SIGKILLs or SIGSTOPs a random running worker of a supervisor (only a pid
that ``/status`` lists *and* that descends from the supervisor pid ``/status`` names), watches
its shard come back, and turns what it did into figures and invariants 3 and 4."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from sorotask.toolkit import StatusWatcher, shards_by_name


def is_descendant(pid: int, ancestor: int) -> bool:
    """True when ``pid`` is a (grand)child of ``ancestor`` (psutil)."""
    if pid == ancestor:
        return False
    try:
        p = psutil.Process(pid)
        return any(a.pid == ancestor for a in p.parents())
    except psutil.Error:
        return False


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
        ledger_now: Callable[[], int | None] | None = None,
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
        shards = shards_by_name(doc)
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
        final = shards_by_name(final_doc)
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
