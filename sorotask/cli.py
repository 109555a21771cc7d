"""``sorotask`` command line: a thin dispatcher; each package owns its subcommands.

Subcommand modules are imported lazily so that ``sorotask status`` does not pay for
stellar-sdk's import time.
"""

from __future__ import annotations

import importlib
import sys

from sorotask_core.exitcodes import ExitCode

#: subcommand -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": (
        "sorotask.demo",
        "run_main",
        "run the sharded keeper supervisor (default: demo on an embedded devnet)",
    ),
    "check-config": (
        "supervisor.cli",
        "check_config_main",
        "validate a shard config and print the plan",
    ),
    "status": ("supervisor.cli", "status_main", "show the shards of a running supervisor"),
    "logs": ("supervisor.cli", "logs_main", "tail one shard's log"),
    "ctl": (
        "supervisor.ctl",
        "ctl_main",
        "control a running supervisor: status, restart/stop/start SHARD, reload",
    ),
    "worker": ("sorotask.worker_cli", "main", "run one shard's keeper in the foreground"),
    "devnet": ("devnet.cli", "main", "run a local Soroban RPC devnet with the SoroTask contract"),
    "chaos": (
        "sorotask.chaos.cli",
        "main",
        "kill workers and break the RPC; report how it recovered",
    ),
    "bench": ("sorotask.bench.cli", "main", "benchmark the keeper against the seed design"),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: sorotask COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run 'sorotask COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return ExitCode.OK if args else ExitCode.USAGE
    if args[0] in ("-V", "--version"):
        from sorotask import __version__

        print(__version__)
        return ExitCode.OK
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"sorotask: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return ExitCode.USAGE
    module_name, func_name, _ = COMMANDS[name]
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
