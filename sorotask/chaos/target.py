"""Target mode: kill workers of an already running supervisor found through its ``/status``
and report how it recovered (invariants 3-5). Only pids that ``/status`` lists as shard
workers *and* that descend from the supervisor pid it names are touched."""

from __future__ import annotations

import random
import time
from typing import Any

from sorotask.chaos.monkey import Monkey, recovery_violations
from sorotask.chaos.report import say
from sorotask.toolkit import StatusWatcher


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
        watcher.stop()
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
                    say(quiet, f"refused to kill pid {act.pid}: {act.refused}")
                elif act is not None:
                    say(quiet, f"killed {act.shard} pid {act.pid}")
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
