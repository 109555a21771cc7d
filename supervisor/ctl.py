"""``sorotask ctl status | restart SHARD | stop SHARD | start SHARD | reload``.

Talks to a running supervisor through its control socket, ``<state_dir>/control.sock``
(:mod:`supervisor.control`); only the supervisor's own user may, and only through a socket file
of mode 0600 that this user owns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sorotask_core.exitcodes import ExitCode
from supervisor.control import COMMANDS, ControlError, call, socket_path
from supervisor.table import status_table

DEFAULT_STATE_DIR = "./state"


def _socket(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    if args.state_dir:
        return socket_path(args.state_dir)
    if args.config:
        from supervisor.config import load_config

        return socket_path(load_config(args.config, check_secrets=False).settings.state_dir)
    return socket_path(DEFAULT_STATE_DIR)


def ctl_main(argv: list[str]) -> int:
    from supervisor.cli import _Parser, _print_problems

    ap = _Parser(
        prog="sorotask ctl",
        description="Control a running supervisor: status, restart/stop/start one shard, "
        "reload the config. A stopped shard stays stopped until started.",
    )
    ap.add_argument("command", choices=list(COMMANDS))
    ap.add_argument("shard", nargs="?", help="shard name (restart, stop, start)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--config", "-c", help="the supervisor's config (gives its state_dir)")
    where.add_argument("--state-dir", help=f"its state_dir (default {DEFAULT_STATE_DIR})")
    where.add_argument("--socket", help="the control socket itself")
    ap.add_argument("--json", action="store_true", help="print the reply as JSON")
    args = ap.parse_args(argv)
    if COMMANDS[args.command] and not args.shard:
        ap.error(f"{args.command} needs a shard name")
    if not COMMANDS[args.command] and args.shard:
        ap.error(f"{args.command} takes no shard name")
    from supervisor.config import ConfigError

    try:
        path = _socket(args)
        reply = call(path, args.command, args.shard)
    except ConfigError as exc:
        _print_problems(exc)
        return ExitCode.CONFIG
    except ControlError as exc:
        print(f"sorotask ctl: {exc}", file=sys.stderr)
        return ExitCode.CRASH
    if args.json:
        print(json.dumps(reply, indent=2))
    elif not reply.get("ok"):
        print(f"sorotask ctl {args.command}: {reply.get('error')}", file=sys.stderr)
    elif args.command == "status":
        print(status_table(reply["status"], str(path)))
    else:
        print(reply.get("message", "ok"))
    return ExitCode.OK if reply.get("ok") else ExitCode.CRASH
