"""``sorotask worker``: run one shard's keeper in the foreground.

Two ways to say what the shard is:

* ``--config FILE --shard NAME``: shard ``NAME`` of a supervisor YAML config (the same file
  ``sorotask run --config`` takes; ``--shard`` may be left out when the file has one shard).
  An invalid config prints every problem and exits 78;
* flags: ``--rpc-url``, ``--network-passphrase``, ``--contract-id``, a secret location and
  the worker options below.

Secrets are never accepted on the command line: ``--secret-env NAME`` or ``--secret-file PATH``
say where the keeper's ``S...`` seed is (likewise ``--channel-secret-env`` /
``--channel-secret-file`` for extra source accounts, repeatable). SIGINT / SIGTERM ask the
keeper to stop: in-flight transactions get ``--stop-grace`` seconds to reach a final status.
The exit code is the keeper's (0 stopped cleanly, 78 configuration error: do not restart).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from loguru import logger

from shard_worker.keeper import run_keeper
from shard_worker.reporting import LoggingReporter
from shard_worker.spec import SecretRef, WorkerSpec
from sorotask_core.exitcodes import ExitCode

__all__ = ["build_parser", "main", "parse_range", "spec_from_args", "spec_from_config"]


def parse_range(text: str) -> tuple[int, int | None]:
    """``FIRST:LAST`` or ``FIRST:`` / ``FIRST`` (open-ended) -> (first, last or None)."""
    first_s, _, last_s = text.partition(":")
    try:
        first = int(first_s)
        last = int(last_s) if last_s.strip() else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"range {text!r} is not FIRST:LAST") from None
    if first < 1 or (last is not None and last < first):
        raise argparse.ArgumentTypeError(f"range {text!r}: need 1 <= FIRST <= LAST")
    return first, last


def _task_ids(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(p) for p in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError("--task-ids takes comma-separated integers") from None
    if not ids or min(ids) < 1:
        raise argparse.ArgumentTypeError("--task-ids needs positive task ids")
    return ids


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sorotask worker",
        description="Run one keeper shard in the foreground (secrets from env vars or files).",
    )
    p.add_argument("--config", metavar="FILE", help="supervisor YAML config holding the shard")
    p.add_argument("--shard", metavar="NAME", help="with --config: the shard to run")
    p.add_argument("--name", default="worker", help="shard name (logs, journal file)")
    p.add_argument("--rpc-url", help="Soroban JSON-RPC URL (required without --config)")
    p.add_argument("--network-passphrase", help="(required without --config)")
    p.add_argument("--contract-id", help="SoroTask contract address C... (without --config)")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--secret-env", metavar="NAME", help="env var holding the keeper's seed")
    secret.add_argument("--secret-file", metavar="PATH", help="file holding the keeper's seed")
    p.add_argument(
        "--channel-secret-env",
        metavar="NAME",
        action="append",
        default=[],
        help="env var holding a channel account's seed (repeatable)",
    )
    p.add_argument(
        "--channel-secret-file",
        metavar="PATH",
        action="append",
        default=[],
        help="file holding a channel account's seed (repeatable)",
    )
    p.add_argument(
        "--range", type=parse_range, default=(1, None), metavar="FIRST:LAST", help="task ids"
    )
    p.add_argument("--task-ids", type=_task_ids, default=None, help="explicit ids: 1,5,9")
    p.add_argument("--poll-interval", type=float, default=5.0, metavar="SECONDS")
    p.add_argument("--read-mode", choices=("ledger_entries", "simulate"), default="ledger_entries")
    p.add_argument("--max-concurrent-reads", type=int, default=10)
    p.add_argument("--max-concurrent-executions", type=int, default=3)
    p.add_argument("--state-dir", default=None, help="directory for the in-flight journal")
    p.add_argument("--tx-timeout", type=int, default=30, metavar="SECONDS")
    p.add_argument("--stop-grace", type=float, default=20.0, metavar="SECONDS")
    p.add_argument("--rpc-timeout", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--base-fee", type=int, default=100, metavar="STROOPS")
    p.add_argument("--http-client", choices=("aiohttp", "httpx"), default="aiohttp")
    p.add_argument("--log-level", default="INFO")
    return p


def spec_from_args(args: argparse.Namespace) -> WorkerSpec:
    first, last = args.range
    channels = tuple(SecretRef(env=n) for n in args.channel_secret_env) + tuple(
        SecretRef(file=f) for f in args.channel_secret_file
    )
    return WorkerSpec(
        name=args.name,
        rpc_url=args.rpc_url,
        network_passphrase=args.network_passphrase,
        contract_id=args.contract_id,
        secret=SecretRef(env=args.secret_env, file=args.secret_file),
        range_first=first,
        range_last=last,
        task_ids=args.task_ids,
        channel_secrets=channels,
        poll_interval_s=args.poll_interval,
        read_mode=args.read_mode,
        max_concurrent_reads=max(1, args.max_concurrent_reads),
        max_concurrent_executions=max(1, args.max_concurrent_executions),
        rpc_timeout_s=args.rpc_timeout,
        tx_timeout_s=args.tx_timeout,
        stop_grace_s=args.stop_grace,
        state_dir=args.state_dir,
        base_fee=args.base_fee,
        http_client=args.http_client,
    )


async def _run(spec: WorkerSpec) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await run_keeper(spec, LoggingReporter(spec.name), stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


#: flags that describe the shard, so they cannot be combined with --config
_SHARD_FLAGS = (
    "rpc_url",
    "network_passphrase",
    "contract_id",
    "secret_env",
    "secret_file",
    "channel_secret_env",
    "channel_secret_file",
    "task_ids",
)


def _usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return ExitCode.USAGE


def _print_problems(problems: Sequence[object]) -> None:
    print(f"sorotask: invalid configuration ({len(problems)} problems):", file=sys.stderr)
    for p in problems:
        print(f"  {p}", file=sys.stderr)


def spec_from_config(path: str, shard: str | None) -> WorkerSpec | list[str]:
    """Shard ``shard`` of the supervisor config at ``path``: its spec, or every problem
    (as printable lines) when the file is invalid or has no such shard."""
    from supervisor.config import ConfigError, load_config

    try:
        plan = load_config(path)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    names = [s.spec.name for s in plan.shards]
    if shard is None:
        if len(plan.shards) == 1:
            return plan.shards[0].spec
        return [
            f"{path}: shard: the file has {len(names)} shards; choose one with --shard "
            f"({', '.join(names)})"
        ]
    found = next((s for s in plan.shards if s.spec.name == shard), None)
    if found is None:
        return [f"{path}: shard: no shard named {shard!r} (shards: {', '.join(names) or 'none'})"]
    return found.spec


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse exits on --help and usage errors
        return ExitCode.OK if exc.code == 0 else ExitCode.USAGE
    if args.config is not None:
        given = [f"--{f.replace('_', '-')}" for f in _SHARD_FLAGS if getattr(args, f)]
        if given:
            return _usage_error(parser, f"--config cannot be combined with {', '.join(given)}")
        found = spec_from_config(args.config, args.shard)
        if isinstance(found, list):
            _print_problems(found)
            return ExitCode.CONFIG
        spec = found
    else:
        if args.shard is not None:
            return _usage_error(parser, "--shard needs --config")
        missing = [
            f"--{f.replace('_', '-')}"
            for f in ("rpc_url", "network_passphrase", "contract_id")
            if not getattr(args, f)
        ]
        if not (args.secret_env or args.secret_file):
            missing.append("--secret-env or --secret-file")
        if missing:
            return _usage_error(parser, f"required without --config: {', '.join(missing)}")
        spec = spec_from_args(args)
    logger.remove()
    logger.add(
        sys.stderr,
        level=args.log_level.upper(),
        format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} [{extra[shard]}] {message}",
    )
    logger.configure(extra={"shard": spec.name})
    return int(asyncio.run(_run(spec)))
