"""``sorotask chaos``: the command line of the soak and of target mode (see
:mod:`sorotask.chaos`). Exit code: 0 when every invariant held, 1 when one was violated, 64
for usage errors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sorotask.chaos.endpoints import endpoint_params, run_endpoint_faults
from sorotask.chaos.hostile import run_hostile
from sorotask.chaos.params import ChaosParams, hostile_params
from sorotask.chaos.report import format_summary
from sorotask.chaos.soak import run_soak
from sorotask.chaos.target import run_target
from sorotask_core.exitcodes import ExitCode


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
    ap.add_argument(
        "--hostile",
        action="store_true",
        help="a busy public RPC for --duration s (30%% HTTP 503, 10%% dropped connections, "
        "30%% TRY_AGAIN_LATER, 10%% -32603, latency 100 +- 300 ms) on 4 shards x 5 source "
        "accounts and 120 tasks due every 12 ledgers, kills only with --kill-every; reports "
        "lateness percentiles (ledgers) against p99 <= 5, max <= 10",
    )
    ap.add_argument(
        "--endpoint-faults",
        action="store_true",
        help="several RPC endpoints (4 devnet replicas as network.rpc_urls) with --hostile's "
        "workload: for --duration s one lags 5 ledgers, one answers half its requests 429 "
        "with Retry-After, one goes down a third of the way in; lateness against p99 <= 2, "
        "max <= 2 ledgers",
    )
    ap.add_argument("--report", help="write the JSON report here (summary on stdout)")
    ap.add_argument("--shards", type=int, default=None)
    ap.add_argument("--tasks", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None, help="random seed (reproducible choices)")
    ap.add_argument("--hot", type=int, default=None, help="tasks recurring every --hot-interval")
    ap.add_argument("--hot-interval", type=int, default=None, help="ledgers")
    ap.add_argument("--cold-rate", type=float, default=d.cold_rate, help="cold tasks due/ledger")
    ap.add_argument("--channels", type=int, default=None, help="channel accounts/shard")
    ap.add_argument("--close-every", type=float, default=d.close_every)
    ap.add_argument("--kill-every", type=float, default=None)
    ap.add_argument("--stop-every", type=float, default=None)
    ap.add_argument("--no-faults", action="store_true", help="no devnet fault phases")
    ap.add_argument("--quiet-s", type=float, default=None, help="calm end of the run")
    ap.add_argument("--workdir", help="keep config, logs, state here (default: a temp dir)")
    ap.add_argument("--target", help="status URL of a running supervisor")
    ap.add_argument("--yes", action="store_true", help="really kill workers of --target")
    ap.add_argument("--json", action="store_true", help="print the JSON report, not a summary")
    a = ap.parse_args(argv)
    if a.duration is not None and a.duration <= 0:
        ap.error("--duration must be > 0")
    if a.target and (a.hostile or a.endpoint_faults):
        ap.error("--hostile and --endpoint-faults run their own soak; not with --target")
    if a.hostile and a.endpoint_faults:
        ap.error("give --hostile or --endpoint-faults, not both")
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
        given = {
            "duration": a.duration,
            "shards": a.shards,
            "tasks": a.tasks,
            "seed": a.seed,
            "hot": a.hot,
            "hot_interval": a.hot_interval,
            "cold_rate": a.cold_rate,
            "channels": a.channels,
            "close_every": a.close_every,
            "kill_every": a.kill_every,
            "stop_every": a.stop_every,
            "quiet_s": a.quiet_s,
            "workdir": a.workdir,
        }
        if a.endpoint_faults:
            p = endpoint_params(**given)
        elif a.hostile:
            p = hostile_params(**given)
        else:
            p = ChaosParams(**{k: v for k, v in given.items() if v is not None})
            p.faults = not a.no_faults
        p.hot = min(p.hot, p.tasks)
        if p.shards < 1 or p.tasks < p.shards or p.close_every <= 0:
            ap.error("need --shards >= 1, --tasks >= --shards and --close-every > 0")
        if a.endpoint_faults:
            report = run_endpoint_faults(p)
        else:
            report = run_hostile(p) if a.hostile else run_soak(p)
    text = json.dumps(report, indent=2, default=str)
    if a.report:
        Path(a.report).write_text(text + "\n")
    print(text if a.json else format_summary(report))
    return ExitCode.OK if report.get("ok") else ExitCode.CRASH
