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
        "paused" if s.get("paused") and s["state"] == "running" else s["state"],
        str(s["pid"] or "-"),
        f"{s['range'][0]}..{last}",
        str(s["restarts"]),
        *_counts(s["totals"]),
        _fmt_bytes(s["rss_bytes"]),
        "-" if s["cpu_percent"] is None else f"{s['cpu_percent']:.0f}",
        "-" if s["heartbeat_age_s"] is None else f"{s['heartbeat_age_s']:.1f}s",
        s["keeper"] or "-",
    ]


ENDPOINT_COLUMNS = ("shard", "endpoint", "state", "why", "requests", "errors", "lag", "ledger")


def _endpoint_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in doc["shards"]:
        for e in (s.get("endpoints") or {}).get("endpoints") or []:
            errors = e.get("errors") or {}
            rows.append(
                [
                    s["name"],
                    str(e["endpoint"]),
                    str(e.get("state", "-")),
                    ",".join(e.get("reasons") or []) or "-",
                    str(e.get("requests", 0)),
                    " ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "0",
                    str(e.get("lag_ledgers", 0)),
                    str(e.get("latest_ledger") or "-"),
                ]
            )
    return rows


def endpoint_table(doc: dict[str, Any]) -> list[str]:
    """One line per shard and RPC endpoint (shards with ``network.rpc_urls``), or nothing."""
    rows = _endpoint_rows(doc)
    if not rows:
        return []
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(ENDPOINT_COLUMNS)]
    return ["", "RPC endpoints"] + [
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        for r in [list(ENDPOINT_COLUMNS), *rows]
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
        if s.get("paused"):
            lines.append(f"shard {s['name']} {s['paused']}: fund its source accounts")
        if s.get("failed_reason"):
            again = (
                f" (started again {n}x after the cooldown)" if (n := s["failed_retries"]) else ""
            )
            lines.append(f"shard {s['name']} FAILED{again}: {s['failed_reason']}")
    lines += endpoint_table(doc)
    return "\n".join(lines)
