"""``sorotask devnet`` / ``python -m devnet``: run the local Soroban RPC devnet.

When it is listening it prints exactly one JSON line on stdout::

    {"rpc_url": ..., "rpc_urls": [...], "network_passphrase": ..., "contract_id": ...,
     "friendbot_url": ...}

(``rpc_urls``: one per replica, ``rpc_url`` is the first.)

Logs go to stderr. SIGINT / SIGTERM stop it cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time

import orjson
from aiohttp import web
from loguru import logger

from devnet.ledger import RETENTION_LEDGERS
from devnet.replica import DEFAULT_MAX_LAG, MAX_REPLICAS
from sorotask_core.exitcodes import ExitCode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sorotask devnet",
        description="Local Soroban RPC devnet with the SoroTask contract (see devnet/README.md).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (0 picks a free one; default 0)")
    p.add_argument("--tasks", type=int, default=0, help="seed N due tasks at start")
    p.add_argument(
        "--close-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="real seconds between ledger closes (fractions allowed; default 5)",
    )
    p.add_argument(
        "--ledger-seconds",
        type=int,
        default=5,
        metavar="S",
        help="how far the ledger close time advances per ledger (default 5)",
    )
    p.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="added to every RPC answer (simulates a remote RPC; not cleared by setFaults)",
    )
    p.add_argument(
        "--retention-ledgers",
        type=int,
        default=RETENTION_LEDGERS,
        metavar="N",
        help=f"ledgers of history kept: transactions, events (default {RETENTION_LEDGERS})",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help=f"serve the chain on N ports, each with its own faults and lag (1..{MAX_REPLICAS})",
    )
    p.add_argument(
        "--max-lag",
        type=int,
        default=None,
        metavar="LEDGERS",
        help="how far back devnet_setLag can make a replica answer "
        f"(default {DEFAULT_MAX_LAG} with --replicas > 1, else 0)",
    )
    p.add_argument(
        "--ledger-capacity",
        type=int,
        default=None,
        metavar="N",
        help="Soroban transactions a ledger may include (surge pricing beyond; default unlimited)",
    )
    p.add_argument("--log-level", default="INFO", help="stderr log level (default INFO)")
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started it dies (no orphaned devnet)",
    )
    return p


async def _watch_parent(stop: asyncio.Event, parent: int) -> None:
    """Set ``stop`` once we are re-parented: the process that started us is gone."""
    while not stop.is_set():
        if os.getppid() != parent:
            logger.warning("parent process {} is gone: stopping", parent)
            stop.set()
            return
        await asyncio.sleep(0.5)


async def _serve(args: argparse.Namespace) -> int:
    from devnet.node import Devnet
    from devnet.replica import Replica
    from devnet.server import RpcServer

    node = Devnet(
        ledger_seconds=args.ledger_seconds,
        retention=args.retention_ledgers,
        max_lag=args.max_lag,
        ledger_capacity=args.ledger_capacity,
    )
    if args.tasks > 0:
        from devnet.control import seed_tasks

        started = time.perf_counter()
        out = seed_tasks(node, {"count": args.tasks})
        logger.info(
            "seeded tasks {}..{} in {:.2f} s",
            out["first_id"],
            out["last_id"],
            time.perf_counter() - started,
        )
    runners: list[web.AppRunner] = []
    urls: list[str] = []
    for index in range(args.replicas):  # one process, one event loop, a socket per replica
        server = RpcServer(
            Replica(node, index),
            close_every=args.close_every,
            base_latency_ms=args.latency_ms,
            closes_ledgers=index == 0,
        )
        runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, args.host, args.port if index == 0 else 0)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        port = sockets[0].getsockname()[1] if sockets else args.port
        urls.append(f"http://{args.host}:{port}")
        server.friendbot_url = f"{urls[-1]}/friendbot"
    base = urls[0]
    info = {
        "rpc_url": base,
        "rpc_urls": urls,
        "network_passphrase": node.passphrase,
        "contract_id": node.contract_id,
        "friendbot_url": f"{base}/friendbot",
    }
    sys.stdout.write(orjson.dumps(info).decode() + "\n")
    sys.stdout.flush()
    logger.info("devnet listening on {} (contract {})", " ".join(urls), node.contract_id)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    watcher = (
        asyncio.create_task(_watch_parent(stop, args.parent_pid)) if args.exit_with_parent else None
    )
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    logger.info("devnet stopping")
    for runner in reversed(runners):
        await runner.cleanup()
    return ExitCode.OK


def _history_problem(args: argparse.Namespace) -> str | None:
    if not 1 <= args.replicas <= MAX_REPLICAS:
        return f"--replicas must be in [1, {MAX_REPLICAS}]"
    if args.retention_ledgers < 2:
        return "--retention-ledgers must be at least 2"
    if not 0 <= args.max_lag < args.retention_ledgers:
        return "--max-lag must be at least 0 and below --retention-ledgers"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.parent_pid = os.getppid()
    if args.close_every <= 0 or args.ledger_seconds <= 0 or args.tasks < 0:
        print("sorotask devnet: --close-every and --ledger-seconds must be > 0", file=sys.stderr)
        return ExitCode.USAGE
    if args.ledger_capacity is not None and args.ledger_capacity < 1:
        print("sorotask devnet: --ledger-capacity must be >= 1", file=sys.stderr)
        return ExitCode.USAGE
    if args.max_lag is None:
        args.max_lag = min(DEFAULT_MAX_LAG, args.retention_ledgers - 1) if args.replicas > 1 else 0
    problem = _history_problem(args)
    if problem:
        print(f"sorotask devnet: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper())
    try:
        return asyncio.run(_serve(args))
    except OSError as exc:
        logger.error("cannot start the devnet: {}", exc)
        return ExitCode.CONFIG
    except KeyboardInterrupt:
        return ExitCode.OK
