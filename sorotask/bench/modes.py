"""The three read modes side by side against the number of tasks: a table and a plot.

``python -m sorotask.bench.modes RUN.json ... --png docs/benchmarks_modes.png`` reads the JSON
of ``sorotask bench --json`` runs (one per task count, each over one or more ``--read-mode``),
prints a Markdown table (reads and bytes per ledger in steady state: getEvents and
getLedgerEntries, and in ``simulate`` mode its simulations; every request, initial sync, CPU,
RSS) and draws requests and bytes per ledger against N, one line per mode,
on log-log axes. A mode that could not be measured at some N is given as a note file
``{"tasks": N, "read_mode": M, "not_measured": "why"}`` and shows in the table with its reason.

The plot needs matplotlib (``pip install -e '.[plot]'``); the table does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorotask.bench.steady import READ_METHODS, SIMULATE_READ_METHODS

__all__ = ["ModeRow", "draw", "main", "rows_of", "table"]

MODES = ("events", "ledger_entries", "simulate")
MIB = 2**20


@dataclass(frozen=True, slots=True)
class ModeRow:
    """One read mode at one task count (``note`` set when it was not measured)."""

    tasks: int
    shards: int
    mode: str
    read_requests: float | None = None
    read_bytes: float | None = None
    requests: float | None = None
    bytes: float | None = None
    initial_sync_s: float | None = None
    cpu_ms_per_1k: float | None = None
    rss_mib: float | None = None
    ledgers: int | None = None
    note: str = ""


def rows_of(doc: dict[str, Any]) -> list[ModeRow]:
    """The rows of one bench JSON (or of one note)."""
    if "not_measured" in doc:
        return [
            ModeRow(
                int(doc["tasks"]),
                int(doc.get("shards", 0)),
                doc["read_mode"],
                note=doc["not_measured"],
            )
        ]
    p = doc["params"]
    out = []
    for mode, o in doc.get("modes", {}).items():
        s = o["steady_state"]
        by = s.get("by_method_per_ledger") or {}
        reads = SIMULATE_READ_METHODS if mode == "simulate" else READ_METHODS
        if by:  # from the methods (a run before simulate's reads counted its simulations)
            read_requests = round(sum(by[m]["requests"] for m in reads if m in by), 2)
            read_bytes = float(sum(by[m]["bytes"] for m in reads if m in by))
        else:
            read_requests, read_bytes = s["read_requests_per_ledger"], s["read_bytes_per_ledger"]
        out.append(
            ModeRow(
                tasks=int(p["tasks"]),
                shards=int(p["shards"]),
                mode=mode,
                read_requests=read_requests,
                read_bytes=read_bytes,
                requests=s["requests_per_ledger"],
                bytes=s["bytes_per_ledger"],
                initial_sync_s=o.get("initial_sync_s"),
                cpu_ms_per_1k=s.get("cpu_ms_per_1k_tasks_per_ledger"),
                rss_mib=(o["rss_bytes_max"] / MIB) if o.get("rss_bytes_max") else None,
                ledgers=s.get("ledgers"),
                note=o.get("note", ""),
            )
        )
    return out


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def table(rows: list[ModeRow]) -> str:
    """A Markdown table, by task count then mode."""
    order = {m: i for i, m in enumerate(MODES)}
    head = (
        "| tasks (shards) | read mode | reads a ledger | read MiB a ledger | every request a "
        "ledger | every MiB a ledger | initial sync s | CPU ms per 1k tasks a ledger | RSS MiB "
        "| ledgers measured |\n|" + "---|" * 10
    )
    lines = [head]
    for r in sorted(rows, key=lambda r: (r.tasks, order.get(r.mode, 9))):
        if r.note:
            lines.append(
                f"| {r.tasks:,} ({r.shards}) | {r.mode} | not measured: {r.note} |" + " |" * 8
            )
            continue
        lines.append(
            f"| {r.tasks:,} ({r.shards}) | {r.mode} | {_num(r.read_requests, '.1f')} | "
            f"{_num(None if r.read_bytes is None else r.read_bytes / MIB, '.3f')} | "
            f"{_num(r.requests, '.1f')} | "
            f"{_num(None if r.bytes is None else r.bytes / MIB, '.3f')} | "
            f"{_num(r.initial_sync_s, '.1f')} | {_num(r.cpu_ms_per_1k, '.3f')} | "
            f"{_num(r.rss_mib, '.1f')} | {r.ledgers or '-'} |"
        )
    return "\n".join(lines)


def draw(rows: list[ModeRow], png: Path) -> None:
    """Reads and read bytes per ledger against N, a line per mode (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_b) = plt.subplots(1, 2, figsize=(10, 4.2))
    for mode in MODES:
        pts = sorted((r.tasks, r) for r in rows if r.mode == mode and not r.note)
        if not pts:
            continue
        xs = [n for n, _ in pts]
        ax_r.plot(xs, [r.read_requests for _, r in pts], marker="o", label=mode)
        ax_b.plot(xs, [(r.read_bytes or 0) / MIB for _, r in pts], marker="o", label=mode)
    for ax, title in ((ax_r, "read requests a ledger"), (ax_b, "read MiB a ledger")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tasks")
        ax.set_title(title + " (all shards, steady state)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    shards = sorted({(r.tasks, r.shards) for r in rows if not r.note})
    fig.text(
        0.5,
        0.01,
        "shards: " + ", ".join(f"{n:,} tasks: {k}" for n, k in shards),
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sorotask.bench.modes", description=__doc__.split("\n")[0]
    )
    ap.add_argument("runs", nargs="+", type=Path, help="sorotask bench --json outputs, or notes")
    ap.add_argument("--png", type=Path, default=None, help="draw the plot here")
    a = ap.parse_args(argv)
    rows = [row for path in a.runs for row in rows_of(json.loads(path.read_text()))]
    print(table(rows))
    if a.png is not None:
        draw(rows, a.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
