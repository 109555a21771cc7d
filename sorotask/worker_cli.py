"""``sorotask worker``: run one shard's keeper in the foreground.

Two ways to say what the shard is:

* ``--config FILE --shard NAME``: shard ``NAME`` of a supervisor YAML config (the same file
  ``sorotask run --config`` takes; ``--shard`` may be left out when the file has one shard).
  An invalid config prints every problem and exits 78;
* flags: ``--rpc-url``, ``--network-passphrase``, ``--contract-id``, a secret location and
  the worker settings' flags (``shard_worker/cli.py``, built from the declarations).

The config form lives here, at the top, because it needs the supervisor's config loader and
``shard_worker`` never imports the supervisor. The file is validated in a short-lived child
process, so the loader (PyYAML, pydantic) never loads into the process that runs the keeper.
The exit code is the keeper's (0 stopped cleanly, 78 configuration error: do not restart).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import orjson

from shard_worker.cli import add_arguments, missing_flags, run, spec_from_args
from shard_worker.spec import WorkerSpec
from sorotask_core.exitcodes import ExitCode

__all__ = ["build_parser", "main", "spec_from_config"]

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
    "public_key",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sorotask worker",
        description="Run one keeper shard in the foreground (secrets from env vars or files).",
    )
    p.add_argument("--config", metavar="FILE", help="supervisor YAML config holding the shard")
    p.add_argument("--shard", metavar="NAME", help="with --config: the shard to run")
    add_arguments(p)
    return p


def _resolve(path: str, shard: str | None, dry_run: bool = False) -> WorkerSpec | list[str]:
    from supervisor.config import ConfigError, load_config

    try:
        plan = load_config(path, dry_run=dry_run)
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


def _resolve_to_bytes(path: str, shard: str | None, dry_run: bool = False) -> bytes:
    try:
        found = _resolve(path, shard, dry_run)
    except Exception as exc:  # a bug, not a config problem: say so without a traceback
        found = [f"{path}: cannot load the config: {type(exc).__name__}: {exc}"]
    if isinstance(found, WorkerSpec):
        return orjson.dumps({"spec": found.to_dict()})
    return orjson.dumps({"problems": found})


def spec_from_config(
    path: str, shard: str | None, *, dry_run: bool = False
) -> WorkerSpec | list[str]:
    """Shard ``shard`` of the supervisor config at ``path``: its spec, or every problem
    (as printable lines) when the file is invalid or has no such shard.

    The file is loaded and validated in a forked child that sends back the spec (which names
    where the secrets are, never their values) and exits: the worker process keeps only what
    the keeper needs.
    """
    if not hasattr(os, "fork"):  # pragma: no cover - Linux and macOS have fork
        payload = _resolve_to_bytes(path, shard, dry_run)
    else:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns, never runs the parent's exit handlers
            try:
                os.close(r)
                with os.fdopen(w, "wb") as out:
                    out.write(_resolve_to_bytes(path, shard, dry_run))
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as inp:
            payload = inp.read()
        _, status = os.waitpid(pid, 0)
        if not payload:
            return [f"{path}: cannot load the config (the loader exited with status {status})"]
    data = orjson.loads(payload)
    if "spec" in data:
        return WorkerSpec.from_dict(data["spec"])
    return [str(p) for p in data["problems"]]


def _usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return ExitCode.USAGE


def _print_problems(problems: Sequence[object]) -> None:
    print(f"sorotask: invalid configuration ({len(problems)} problems):", file=sys.stderr)
    for p in problems:
        print(f"  {p}", file=sys.stderr)


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
        found = spec_from_config(args.config, args.shard, dry_run=args.dry_run)
        if isinstance(found, list):
            _print_problems(found)
            return ExitCode.CONFIG
        spec = found
    else:
        if args.shard is not None:
            return _usage_error(parser, "--shard needs --config")
        missing = missing_flags(args)
        if missing:
            return _usage_error(parser, f"required without --config: {', '.join(missing)}")
        spec = spec_from_args(args)
    return run(spec, args.log_level)
