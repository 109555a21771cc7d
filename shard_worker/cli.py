"""``sorotask worker`` flags: one shard's keeper in the foreground, described on the command line.

The flags of the worker settings (``--poll-interval``, ``--read-mode``, ...) are built from their
declarations in :mod:`sorotask_core.settings` (type, default, choices, bounds, help). The
command itself, with its ``--config FILE --shard NAME`` form that reads a supervisor YAML file,
is ``sorotask/worker_cli.py``: this package never imports the supervisor.

Secrets are never accepted on the command line: ``--secret-env NAME`` or ``--secret-file PATH``
say where the keeper's ``S...`` seed is (likewise ``--channel-secret-env`` /
``--channel-secret-file`` for extra source accounts, repeatable). SIGINT / SIGTERM ask the
keeper to stop: in-flight transactions get ``--stop-grace`` seconds to reach a final status.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Any

from loguru import logger

from shard_worker.keeper import run_keeper
from shard_worker.reporting import LoggingReporter
from shard_worker.spec import SecretRef, WorkerSpec
from sorotask_core.settings import SUPERVISOR, WORKER, Setting
from sorotask_core.xdr import U64_MASK

__all__ = ["add_arguments", "missing_flags", "parse_range", "run", "spec_from_args"]

#: the flags that name the network, the contract and the keeper's secret
REQUIRED_FLAGS = ("rpc_url", "network_passphrase", "contract_id")


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
    if max(first, last or 0) > U64_MASK:
        raise argparse.ArgumentTypeError(
            f"range {text!r}: beyond u64 ({U64_MASK}): task ids are the contract's u64"
        )
    return first, last


def _task_ids(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(p) for p in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError("--task-ids takes comma-separated integers") from None
    if not ids or min(ids) < 1:
        raise argparse.ArgumentTypeError("--task-ids needs positive task ids")
    return ids


def _value_of(setting: Setting) -> Callable[[str], Any]:
    """argparse ``type=`` for a declared setting: converts, then checks bounds and choices."""

    def parse(text: str) -> Any:
        try:
            value = setting.type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {setting.expected}, got {text!r}") from None
        problem = setting.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value.upper() if setting.upper else value

    parse.__name__ = setting.type.__name__
    return parse


def _add_setting(p: argparse.ArgumentParser, setting: Setting, flag: str) -> None:
    help_ = setting.doc.replace("%", "%%")
    if setting.default is not None:
        help_ += " (default: %(default)s)"
    kw: dict[str, Any] = {"dest": setting.name, "default": setting.default, "help": help_}
    if setting.choices and not setting.upper:
        kw["choices"] = setting.choices
    else:
        kw["type"] = _value_of(setting)
        kw["metavar"] = setting.metavar or setting.name.upper()
    p.add_argument(flag, **kw)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that describe a shard and its worker settings."""
    p.add_argument("--name", default="worker", help="shard name (logs, journal file)")
    p.add_argument(
        "--rpc-url",
        action="append",
        help="Soroban JSON-RPC URL (required without --config); repeat it for several "
        "endpoints with failover (network.rpc_urls)",
    )
    p.add_argument("--network-passphrase", help="(required without --config)")
    p.add_argument("--contract-id", help="SoroTask contract address C... (without --config)")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--secret-env", metavar="NAME", help="env var holding the keeper's seed")
    secret.add_argument("--secret-file", metavar="PATH", help="file holding the keeper's seed")
    secret.add_argument(
        "--public-key", metavar="G...", help="the keeper's public key: enough for --dry-run"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read, classify and simulate; never sign or send (logs what it would execute)",
    )
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
    for setting in WORKER:
        if setting.flag is not None:
            _add_setting(p, setting, setting.flag)
    _add_setting(p, SUPERVISOR["log_level"], "--log-level")


def missing_flags(args: argparse.Namespace) -> list[str]:
    """The flags a shard described by flags lacks (network, contract, keeper secret)."""
    missing = [f"--{f.replace('_', '-')}" for f in REQUIRED_FLAGS if not getattr(args, f)]
    if not (args.secret_env or args.secret_file or (args.dry_run and args.public_key)):
        missing.append(
            "--secret-env or --secret-file"
            + (" (--public-key alone is for --dry-run)" if args.public_key else "")
        )
    return missing


def spec_from_args(args: argparse.Namespace) -> WorkerSpec:
    first, last = args.range
    channels = tuple(SecretRef(env=n) for n in args.channel_secret_env) + tuple(
        SecretRef(file=f) for f in args.channel_secret_file
    )
    urls = list(args.rpc_url or [""])
    return WorkerSpec(
        name=args.name,
        rpc_url=urls[0],
        rpc_endpoints=tuple({"url": u} for u in urls) if len(urls) > 1 else (),
        network_passphrase=args.network_passphrase,
        contract_id=args.contract_id,
        secret=(
            SecretRef(env=args.secret_env, file=args.secret_file)
            if args.secret_env or args.secret_file
            else None
        ),
        public_key=args.public_key,
        dry_run=args.dry_run,
        range_first=first,
        range_last=last,
        task_ids=args.task_ids,
        channel_secrets=channels,
        **{s.name: getattr(args, s.name) for s in WORKER if s.flag is not None},
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


def run(spec: WorkerSpec, log_level: str) -> int:
    """Run the keeper until SIGINT / SIGTERM, logging to stderr; its exit code."""
    logger.remove()
    logger.add(
        sys.stderr,
        level=log_level.upper(),
        format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} [{extra[shard]}] {message}",
        # a stack trace without variable values (they may hold an RPC URL's key or a header),
        # as the supervisor's log files have them
        backtrace=False,
        diagnose=False,
    )
    logger.configure(extra={"shard": spec.name})
    return int(asyncio.run(_run(spec)))
