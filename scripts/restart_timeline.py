"""A chaos run's restart timeline (issue 16): for each SIGKILL of a worker, the seconds from the
supervisor noticing the death (its log line) to each step in the replacement's shard log.

    .venv/bin/sorotask chaos --hostile --duration 60 --seed 16 --kill-every 5 --workdir DIR
    .venv/bin/python scripts/restart_timeline.py DIR

One line per kill, then the medians. Steps: the worker process starting, the keeper started,
the start-up checks done, the journal resolved (its first source), the events position
resumed, the first cycle done, the first cycle that found tasks due, the first execution
started, the first "executed" line (often a journaled transaction confirmed).
"""

from __future__ import annotations

import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \| \w+\s*\| (\S+) \| (.*)$")
_DUE = re.compile(r"cycle \d+ .* due (\d+),")
#: (step, text of its log line); "due" is the first cycle line with due > 0
STEPS: list[tuple[str, str | None]] = [
    ("start", "worker process"),
    ("keeper", "keeper started"),
    ("checks", "start-up checks done"),
    ("journal", "journal resolved"),
    ("resume", "resuming events"),
    ("cycle1", "cycle 1 "),
    ("due", None),
    ("exec", "first execution"),
    ("executed", "executed task_id"),
]


def _t(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def _lines(path: Path) -> list[tuple[float, str]]:
    out = []
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            out.append((_t(m[1]), m[3]))
    return out


def timeline(workdir: Path) -> list[tuple[str, dict[str, float]]]:
    """Per kill: the shard and the seconds from the death notice to each step seen."""
    logs = workdir / "logs"
    kills = [
        (ts, msg.split()[1].rstrip(":"))
        for ts, msg in _lines(logs / "supervisor.log")
        if "killed by SIGKILL" in msg
    ]
    rows = []
    for at, shard in kills:
        got: dict[str, float] = {}
        for ts, msg in _lines(logs / f"{shard}.log"):
            if ts < at:
                continue
            if "worker process" in msg and "starting" in msg and "start" in got:
                break  # the next replacement
            for name, text in STEPS:
                if name in got:
                    continue
                if text is None:
                    m = _DUE.search(msg)
                    if m and int(m[1]) > 0:
                        got[name] = ts - at
                elif text in msg:
                    got[name] = ts - at
        rows.append((shard, got))
    return rows


def main(argv: list[str]) -> int:
    rows = timeline(Path(argv[0]))
    for shard, got in rows:
        print(shard, " ".join(f"{n}={got[n]:.2f}" if n in got else f"{n}=-" for n, _ in STEPS))
    medians = [
        f"{n}={statistics.median(g[n] for _, g in rows if n in g):.2f}"
        for n, _ in STEPS
        if any(n in g for _, g in rows)
    ]
    print("median:", " ".join(medians))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
