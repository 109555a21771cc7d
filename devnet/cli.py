"""``sorotask devnet`` / ``python -m devnet``: run the local Soroban RPC devnet.

When it is listening it prints exactly one JSON line on stdout::

    {"rpc_url": ..., "network_passphrase": ..., "contract_id": ..., "friendbot_url": ...}

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
    from devnet.server import RpcServer

    node = Devnet(ledger_seconds=args.ledger_seconds)
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
    server = RpcServer(node, close_every=args.close_every, base_latency_ms=args.latency_ms)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1] if sockets else args.port
    base = f"http://{args.host}:{port}"
    server.friendbot_url = f"{base}/friendbot"
    info = {
        "rpc_url": base,
        "network_passphrase": node.passphrase,
        "contract_id": node.contract_id,
        "friendbot_url": server.friendbot_url,
    }
    sys.stdout.write(orjson.dumps(info).decode() + "\n")
    sys.stdout.flush()
    logger.info("devnet listening on {} (contract {})", base, node.contract_id)

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
    await runner.cleanup()
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.parent_pid = os.getppid()
    if args.close_every <= 0 or args.ledger_seconds <= 0 or args.tasks < 0:
        print("sorotask devnet: --close-every and --ledger-seconds must be > 0", file=sys.stderr)
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
