"""Memory and CPU of the event-driven sync's per-task structures (issue 12, item 8).

    .venv/bin/python scripts/sync_footprint.py [N ...]      # default: 125000 250000 1000000

For each N: bytes a task (tracemalloc) of TaskState and DueIndex filled with realistic due
times (intervals from a minute to a month), the time to fill them, one ledger's pop_due, and
the process RSS (psutil) of a worker-like process (the shard_worker modules a worker imports)
holding one shard of N tasks. Each N runs in a fresh interpreter so RSS figures do not mix.
"""

from __future__ import annotations

import json
import subprocess
import sys

_ONE = r"""
import json, random, sys, time, tracemalloc
import psutil
import shard_worker.rpc, shard_worker.chain, shard_worker.journal, sorotask_core.contract  # worker
from shard_worker.taskstate import TaskState
from shard_worker.dueindex import DueIndex

n = int(sys.argv[1])
rss0 = psutil.Process().memory_info().rss
T0 = 1_700_000_000
rng = random.Random(7)
intervals = [rng.randrange(60, 30 * 86_400) for _ in range(n)]
last_runs = [T0 - rng.randrange(0, iv) for iv in intervals]


def build():
    t = time.perf_counter()
    state = TaskState(1, n)
    for i in range(n):
        state.record(i + 1, interval=intervals[i], last_run=last_runs[i], gas_positive=True,
                     allowed=True, has_resolver=False, live_until=10**6, entry_hash=i)
    t1 = time.perf_counter()
    index = DueIndex(1, n)
    for task_id in range(1, n + 1):
        index.set(task_id, state.due(task_id))
    return state, index, t1 - t, time.perf_counter() - t1


tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
state = TaskState(1, n)
for i in range(n):
    state.record(i + 1, interval=intervals[i], last_run=last_runs[i], gas_positive=True,
                 allowed=True, has_resolver=False, live_until=10**6, entry_hash=i)
mid = tracemalloc.get_traced_memory()[0]
index = DueIndex(1, n)
for task_id in range(1, n + 1):
    index.set(task_id, state.due(task_id))
end = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
del state, index
state, index, state_s, index_s = build()  # timed without tracemalloc
pops = []
for k in range(1, 21):
    t = time.perf_counter()
    due = index.pop_due(T0 + 5 * k)
    for task_id in due:  # re-read as executed this ledger: due again one interval later
        index.set(task_id, state.executed(task_id, T0 + 5 * k))
    pops.append((time.perf_counter() - t, len(due)))
del intervals, last_runs
rss = psutil.Process().memory_info().rss
print(json.dumps({
    "n": n,
    "state_bytes_per_task": round((mid - base) / n, 1),
    "index_bytes_per_task": round((end - mid) / n, 1),
    "state_fill_s": round(state_s, 3),
    "index_fill_s": round(index_s, 3),
    "ledger_pop_ms_max": round(max(p for p, _ in pops) * 1e3, 3),
    "ledger_due_mean": round(sum(d for _, d in pops) / len(pops), 1),
    "rss_mib_imports": round(rss0 / 2**20, 1),
    "rss_mib": round(rss / 2**20, 1),
}))
"""


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [125_000, 250_000, 1_000_000]
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", _ONE, str(n)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        print(json.dumps(json.loads(out.stdout)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
