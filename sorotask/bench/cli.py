"""``sorotask bench``: the command line (see :mod:`sorotask.bench`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import sorotask.bench
from sorotask.bench.figures import format_report
from sorotask.bench.run import BenchParams, run_bench
from sorotask_core.exitcodes import ExitCode


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="sorotask bench", description=(sorotask.bench.__doc__ or "").split("\n")[0]
    )
    d = BenchParams()
    ap.add_argument("--tasks", type=int, default=d.tasks)
    ap.add_argument("--shards", type=int, default=d.shards)
    ap.add_argument("--latency-ms", type=float, default=d.latency_ms)
    ap.add_argument("--due-fraction", type=float, default=d.due_fraction)
    ap.add_argument("--cycles", type=int, default=d.cycles)
    ap.add_argument("--source-accounts", type=int, default=d.source_accounts)
    ap.add_argument("--due-interval-ledgers", type=int, default=d.due_interval_ledgers)
    ap.add_argument(
        "--seed-sample",
        type=int,
        default=d.seed_sample,
        help="tasks the seed design reads (its cycle is scaled linearly to --tasks)",
    )
    ap.add_argument("--close-every", type=float, default=d.close_every)
    ap.add_argument("--poll-interval", type=float, default=d.poll_interval_s)
    ap.add_argument("--timeout", type=float, default=d.timeout_s)
    ap.add_argument(
        "--read-mode",
        default=",".join(d.read_modes),
        help="the keeper's read mode(s), comma-separated, each run in turn on one devnet "
        "(events, ledger_entries, simulate)",
    )
    ap.add_argument(
        "--change-fraction",
        type=float,
        default=d.change_fraction,
        help="fraction of tasks others change each ledger with real contract calls",
    )
    ap.add_argument("--ledger-seconds", type=int, default=d.ledger_seconds)
    ap.add_argument("--skip-seed", action="store_true", help="do not measure the seed design")
    ap.add_argument(
        "--fee-strategy",
        choices=("stats", "fixed", "both"),
        default=d.fee_strategy,
        help="the keepers' fee_strategy (fixed: base_fee 100; both: odd shards stats, even "
        "shards fixed, side by side)",
    )
    ap.add_argument(
        "--competing-fee",
        type=int,
        default=None,
        metavar="F",
        help="surge: competing load bidding F stroops a transaction, demand above capacity",
    )
    ap.add_argument(
        "--warmup-ledgers",
        type=int,
        default=d.warmup_ledgers,
        help="ledgers between the first full read and the measured window",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    problems = [
        f"--{n.replace('_', '-')} must be >= 1"
        for n in (
            "tasks",
            "shards",
            "cycles",
            "source_accounts",
            "seed_sample",
            "due_interval_ledgers",
            "warmup_ledgers",
        )
        if getattr(a, n) < 1
    ]
    if not 0.0 <= a.due_fraction <= 1.0:
        problems.append("--due-fraction must be within 0..1")
    if a.fee_strategy == "both" and a.shards < 2:
        problems.append("--fee-strategy both needs --shards >= 2")
    if a.competing_fee is not None and a.competing_fee < 100:
        problems.append("--competing-fee must be >= 100")
    if not 0.0 <= a.change_fraction <= 0.1:
        problems.append("--change-fraction must be within 0..0.1")
    modes = tuple(m.strip() for m in a.read_mode.split(",") if m.strip())
    if not modes or any(m not in ("events", "ledger_entries", "simulate") for m in modes):
        problems.append("--read-mode: events, ledger_entries or simulate (comma-separated)")
    if problems:
        print("sorotask bench: " + "; ".join(problems), file=sys.stderr)
        return ExitCode.USAGE
    params = BenchParams(
        tasks=a.tasks,
        shards=a.shards,
        latency_ms=a.latency_ms,
        due_fraction=a.due_fraction,
        cycles=a.cycles,
        source_accounts=a.source_accounts,
        due_interval_ledgers=a.due_interval_ledgers,
        seed_sample=a.seed_sample,
        close_every=a.close_every,
        poll_interval_s=a.poll_interval,
        timeout_s=a.timeout,
        read_modes=modes,
        change_fraction=a.change_fraction,
        ledger_seconds=a.ledger_seconds,
        skip_seed=a.skip_seed,
        fee_strategy=a.fee_strategy,
        competing_fee=a.competing_fee,
        warmup_ledgers=a.warmup_ledgers,
    )
    with contextlib.suppress(KeyboardInterrupt):
        result = run_bench(params)
        if a.json:
            print(json.dumps(result))
        else:
            print(format_report(result))
        return ExitCode.OK
    return ExitCode.CRASH
