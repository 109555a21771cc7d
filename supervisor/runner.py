"""Run the supervisor for a validated plan and print its summary (``sorotask run``, the demo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loguru import logger

from sorotask_core.exitcodes import ExitCode
from supervisor.arbiter import Arbiter
from supervisor.config import Plan
from supervisor.logsetup import LogSettings, configure
from supervisor.stats import summary_table


def run_plan(
    plan: Plan,
    *,
    config_path: str | None,
    duration: float | None,
    summary_json: str | None,
    host_index: int | None = None,
) -> int:
    """Run the supervisor for ``plan``; print (and maybe write) the summary."""
    st = plan.settings
    configure(
        LogSettings(st.log_dir, st.log_level, st.json_logs, st.log_rotation_mb, st.log_retention),
        "supervisor",
        stderr=True,
    )
    for w in plan.warnings:
        logger.warning("config: {}", w)
    try:
        arbiter = Arbiter(
            plan,
            config_path=str(Path(config_path).resolve()) if config_path else None,
            host_index=host_index,
        )
    except ValueError as exc:  # the test hook names something it may not
        logger.error("{}", exc)
        return ExitCode.CONFIG
    if arbiter.keeper_entries:
        logger.warning(
            "TEST HOOK ACTIVE: workers run stand-in keepers {} (unset SOROTASK_TEST_KEEPER)",
            arbiter.keeper_entries,
        )
    if plan.dry_run:
        logger.warning(
            "DRY RUN: tasks are read, classified and simulated; nothing is signed or sent"
        )
    arbiter.install_signal_handlers()
    code = arbiter.run(duration=duration)
    doc = arbiter.view.summary()
    states = {n: s["state"] for n, s in doc["shards"].items()}
    print("\nsorotask: summary")
    print(summary_table(doc, states))
    for name, row in doc["shards"].items():
        if row.get("failed_reason"):
            print(f"  shard {name} FAILED: {row['failed_reason']}")
    if plan.dry_run:
        doc["dry_run"] = True
        print(dry_run_summary(doc))
    if summary_json:
        Path(summary_json).write_text(json.dumps(doc, indent=2) + "\n")
    return code


def dry_run_summary(doc: dict[str, Any], ids_shown: int = 20) -> str:
    """What a dry run would have executed, per shard, from the workers' goodbyes."""
    lines = ["", "sorotask: dry run: nothing was signed or sent"]
    total_n = total_fee = 0
    for name, row in doc["shards"].items():
        final = row.get("final") or {}
        n = int(final.get("would_execute_count", 0))
        fee = int(final.get("would_execute_fees", 0))
        total_n += n
        total_fee += fee
        listed = final.get("would_execute") or []
        ids = ", ".join(f"{t} ({f})" for t, f in listed[:ids_shown])
        more = f", ... {n - ids_shown} more" if n > ids_shown else ""
        what = f": task (fee) {ids}{more}" if n else ""
        lines.append(
            f"  shard {name}: would execute {n} task(s) for {fee} stroops "
            f"({fee / 1e7:.7f} XLM){what}"
        )
    lines.append(
        f"  total: would execute {total_n} task(s) for {total_fee} stroops "
        f"({total_fee / 1e7:.7f} XLM)"
    )
    return "\n".join(lines)
