"""The shard table of ``sorotask status`` and ``sorotask ctl status``, from a /status document."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    "shard",
    "state",
    "pid",
    "range",
    "restarts",
    "cycles",
    "checked",
    "due_now",
    "overdue_ledgers",
    "executed",
    "failed",
    "rss",
    "cpu%",
    "hb_age",
    "keeper",
)


def _fmt_bytes(n: Any) -> str:
    return "-" if n is None else f"{n / 1048576:.1f}M"


def _counts(t: dict[str, Any]) -> list[str]:
    keys = ("cycles", "checked", "due_now", "oldest_overdue_ledgers", "executed", "failed")
    return [str(t.get(k, "-")) for k in keys]


def _row(s: dict[str, Any]) -> list[str]:
    last = "open" if s["range"][1] is None else s["range"][1]
    return [
        s["name"],
        s["state"],
        str(s["pid"] or "-"),
        f"{s['range'][0]}..{last}",
        str(s["restarts"]),
        *_counts(s["totals"]),
        _fmt_bytes(s["rss_bytes"]),
        "-" if s["cpu_percent"] is None else f"{s['cpu_percent']:.0f}",
        "-" if s["heartbeat_age_s"] is None else f"{s['heartbeat_age_s']:.1f}s",
        s["keeper"] or "-",
    ]


def status_table(doc: dict[str, Any], where: str) -> str:
    """The table (a header line, one line per shard, a TOTAL line, then any failures)."""
    rows = [_row(s) for s in doc["shards"]]
    t = doc["totals"]
    rows.append(["TOTAL", "", "", "", str(t["restarts"]), *_counts(t), "", "", "", ""])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    sup = doc["supervisor"]
    lines = [
        f"supervisor pid {sup['pid']} at {where}, up {sup['uptime_s']:.0f}s"
        + ("  (stopping)" if sup["stopping"] else "")
    ]
    for r in [list(COLUMNS), *rows]:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    for s in doc["shards"]:
        if s.get("failed_reason"):
            again = (
                f" (started again {n}x after the cooldown)" if (n := s["failed_retries"]) else ""
            )
            lines.append(f"shard {s['name']} FAILED{again}: {s['failed_reason']}")
    return "\n".join(lines)
