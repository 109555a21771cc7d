"""``sorotask run | check-config | status | logs``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sorotask_core.exitcodes import ExitCode
from supervisor.table import status_table

DEFAULT_STATUS_URL = "http://127.0.0.1:9100"
STATUS_URL_ENV = "SOROTASK_STATUS_URL"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors exit 64, not argparse's 2
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def _print_problems(exc: Any) -> None:
    print(f"sorotask: invalid configuration ({len(exc.problems)} problems):", file=sys.stderr)
    for p in exc.problems:
        print(f"  {p}", file=sys.stderr)


# ---------------------------------------------------------------------------------- run


def run_main(argv: list[str], demo: Callable[..., int] | None = None) -> int:
    """``sorotask run [--config FILE] [--duration S] [--summary-json PATH]``.

    Without ``--config`` it calls ``demo`` (``sorotask.demo.run_demo``, passed in from the top
    layer: the demo needs the devnet, which the supervisor never imports)."""
    ap = _Parser(
        prog="sorotask run",
        description="Run the sharded keeper supervisor. Without --config: a demo on an "
        "embedded local devnet.",
    )
    ap.add_argument("--config", "-c", help="YAML shard config (see deploy/examples)")
    ap.add_argument("--duration", type=float, help="stop gracefully after this many seconds")
    ap.add_argument("--summary-json", help="write the final summary as JSON to this path")
    ap.add_argument("--host-index", type=int, help="override supervisor.host_index")
    ap.add_argument(
        "--status-address",
        metavar="HOST:PORT",
        help="override supervisor.status_address (e.g. 0.0.0.0:9100 in a container)",
    )
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="read, classify and simulate, never sign or send; list what would be executed "
        "and at what fee (a shard may give public_key instead of a secret)",
    )
    ap.add_argument("--demo-shards", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--demo-tasks", type=int, default=300, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        ap.error("--duration must be > 0")
    if args.status_address is not None:
        host, _, port = args.status_address.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            ap.error(f"--status-address must be HOST:PORT, got {args.status_address!r}")
    if args.dry_run and args.config is None:
        ap.error("--dry-run needs --config")
    if args.config is None:
        if demo is None:
            ap.error("--config is required")
        return demo(
            duration=args.duration,
            summary_json=args.summary_json,
            shards=args.demo_shards,
            tasks=args.demo_tasks,
            status_address=args.status_address,
        )
    from supervisor.config import ConfigError, load_config

    try:
        plan = load_config(args.config, host_index=args.host_index, dry_run=args.dry_run)
    except ConfigError as exc:
        _print_problems(exc)
        return ExitCode.CONFIG
    if args.status_address is not None:
        from dataclasses import replace

        plan = replace(plan, settings=replace(plan.settings, status_address=args.status_address))
    from supervisor.runner import run_plan

    return run_plan(
        plan,
        config_path=args.config,
        duration=args.duration,
        summary_json=args.summary_json,
        host_index=args.host_index,
    )


# ---------------------------------------------------------------------------------- check-config


def check_config_main(argv: list[str]) -> int:
    """``sorotask check-config FILE [--host-index N] [--json]``."""
    ap = _Parser(prog="sorotask check-config", description="Validate a config; print the plan.")
    ap.add_argument("file")
    ap.add_argument("--host-index", type=int, help="check as this host (default from config)")
    ap.add_argument("--json", action="store_true", help="print the plan as JSON")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="check as `sorotask run --dry-run` loads it (a public_key is enough)",
    )
    ap.add_argument(
        "--skip-secrets",
        action="store_true",
        help="check structure only: do not read secrets (e.g. in CI without the keys)",
    )
    args = ap.parse_args(argv)
    from supervisor.config import ConfigError, load_config

    try:
        plan = load_config(
            args.file,
            host_index=args.host_index,
            check_secrets=not args.skip_secrets,
            dry_run=args.dry_run,
        )
    except ConfigError as exc:
        _print_problems(exc)
        return ExitCode.CONFIG
    st = plan.settings
    rows = []
    for s in plan.shards:
        sp = s.spec
        rows.append(
            {
                "name": s.name,
                "range": [sp.range_first, sp.range_last],
                "host": s.host,
                "keeper": s.keeper_public_key,
                "channels": list(s.channel_public_keys),
                "secret": sp.secret.describe() if sp.secret else "none (public_key: dry run)",
                "poll_interval_s": sp.poll_interval_s,
                "read_mode": sp.read_mode,
                "max_concurrent_reads": sp.max_concurrent_reads,
                "max_concurrent_executions": sp.max_concurrent_executions,
            }
        )
    if args.json:
        print(
            json.dumps(
                {"file": plan.file, "shards": rows, "warnings": [str(w) for w in plan.warnings]},
                indent=2,
            )
        )
    else:
        spec0 = plan.shards[0].spec if plan.shards else None
        print(f"config {plan.file}: OK, {len(plan.shards)} shards")
        if spec0:
            print(f"  network  {spec0.rpc_url}  ({spec0.network_passphrase})")
            print(f"  contract {spec0.contract_id}")
        print(f"  status   {st.status_address or '(disabled)'}   logs {st.log_dir}")
        if st.host_count > 1:
            print(f"  host     {st.host_index} of {st.host_count} (runs shards marked *)")
        for r, s in zip(rows, plan.shards, strict=True):
            last = "open" if r["range"][1] is None else r["range"][1]
            rng = f"{r['range'][0]}..{last}"
            mark = "*" if st.host_count > 1 and s.host == st.host_index else " "
            keeper = r["keeper"] or "(secret not read)"
            print(
                f" {mark}{r['name']:<16} {rng:<16} host {r['host']}  "
                f"keeper {keeper}  ({r['secret']})"
            )
            for ch in r["channels"]:
                print(f"   {'':<16} channel {ch}")
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return ExitCode.OK


# ---------------------------------------------------------------------------------- status


def _status_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    if os.environ.get(STATUS_URL_ENV):
        return os.environ[STATUS_URL_ENV].rstrip("/")
    log_dir = args.log_dir
    if args.config:
        from supervisor.config import ConfigError, load_config

        try:
            plan = load_config(args.config, check_secrets=False)
            log_dir = plan.settings.log_dir
            if plan.settings.status_address and not plan.settings.status_address.endswith(":0"):
                return f"http://{plan.settings.status_address}"
        except ConfigError:
            pass
    runtime = Path(log_dir or "./logs") / "supervisor.json"
    try:
        url = json.loads(runtime.read_text()).get("status_url")
        if url:
            return str(url)
    except (OSError, ValueError):
        pass
    return DEFAULT_STATUS_URL


def _fetch_status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/status", timeout=5) as resp:  # noqa: S310
        doc = json.loads(resp.read())
    if not isinstance(doc, dict):
        raise ValueError("not a /status document")
    return doc


def status_main(argv: list[str]) -> int:
    """``sorotask status [--url URL] [--config FILE] [--log-dir DIR] [--json] [--watch]``."""
    ap = _Parser(prog="sorotask status", description="Show the shards of a running supervisor.")
    ap.add_argument("--url", help=f"status URL (default ${STATUS_URL_ENV} or {DEFAULT_STATUS_URL})")
    ap.add_argument("--config", help="find the status address in this config")
    ap.add_argument("--log-dir", help="find the running supervisor through DIR/supervisor.json")
    ap.add_argument("--json", action="store_true", help="print the raw /status JSON")
    ap.add_argument("--watch", "-w", action="store_true", help="redraw every --interval seconds")
    ap.add_argument("--interval", type=float, default=2.0, help="--watch period (default 2 s)")
    ap.add_argument("--count", type=int, help="--watch: stop after this many redraws")
    args = ap.parse_args(argv)
    if args.interval <= 0:
        ap.error("--interval must be > 0")
    if args.count is not None and args.count < 1:
        ap.error("--count must be >= 1")
    url = _status_url(args)
    if not args.watch:
        try:
            doc = _fetch_status(url)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(f"sorotask status: no supervisor answering at {url}: {exc}", file=sys.stderr)
            return ExitCode.CRASH
        print(json.dumps(doc, indent=2) if args.json else status_table(doc, url))
        return ExitCode.OK
    return _watch(url, args.interval, args.count, args.json)


def _watch(url: str, interval: float, count: int | None, as_json: bool) -> int:
    """Redraw the table (the screen is cleared first on a terminal) until Ctrl-C or ``count``."""
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    n = 0
    try:
        while count is None or n < count:
            if n:
                time.sleep(interval)
            n += 1
            stamp = time.strftime("%H:%M:%S")
            try:
                doc = _fetch_status(url)
                text = json.dumps(doc, indent=2) if as_json else status_table(doc, url)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                text = f"no supervisor answering at {url}: {exc}"
            print(f"{clear}{stamp}  every {interval:g}s (Ctrl-C stops)\n{text}", flush=True)
    except KeyboardInterrupt:
        pass
    return ExitCode.OK


# ---------------------------------------------------------------------------------- logs


def logs_main(argv: list[str]) -> int:
    """``sorotask logs SHARD [-f] [-n LINES] [--log-dir DIR | --config FILE] [--raw]``."""
    ap = _Parser(prog="sorotask logs", description="Tail one shard's log (or 'supervisor').")
    ap.add_argument("shard", help="shard name, or 'supervisor'")
    ap.add_argument("-f", "--follow", action="store_true", help="follow, across rotation")
    ap.add_argument("-n", "--lines", type=int, default=20, help="lines to show (default 20)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--log-dir", help="log directory (default ./logs)")
    g.add_argument("--config", help="take the log directory from this config")
    ap.add_argument("--raw", action="store_true", help="print JSON log lines as they are")
    args = ap.parse_args(argv)
    from supervisor.logtail import tail

    log_dir = Path(args.log_dir or "./logs")
    if args.config:
        from supervisor.config import ConfigError, load_config

        try:
            log_dir = Path(load_config(args.config, check_secrets=False).settings.log_dir)
        except ConfigError as exc:
            _print_problems(exc)
            return ExitCode.CONFIG
    path = log_dir / f"{args.shard}.log"
    if not path.exists() and not args.follow:
        names = sorted(p.stem for p in log_dir.glob("*.log")) if log_dir.is_dir() else []
        print(
            f"sorotask logs: no log {path}" + (f"; logs here: {', '.join(names)}" if names else ""),
            file=sys.stderr,
        )
        return ExitCode.CRASH
    return tail(path, args.lines, args.follow, args.raw)
