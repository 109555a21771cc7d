"""``sorotask run`` without a config: a demo on an embedded local devnet.

Starts the devnet with demo tasks, makes one keypair (plus channel keypairs) per shard, funds
them through the devnet, writes the secrets to 0600 files in a private temporary directory
(never argv, never logs), writes a shard config next to them and runs the supervisor on it.

It lives at the top (it needs the devnet and the supervisor); ``supervisor.cli.run_main``
parses the command line and calls :func:`run_demo` when no ``--config`` is given.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any

from sorotask.toolkit import (
    network_section,
    provision_split_secrets,
    secret_files,
    temporary_secrets,
    write_yaml,
)
from sorotask_core.exitcodes import ExitCode

DEMO_STATUS_PORT = 9100
#: extra source accounts per shard: more transactions a ledger
DEMO_CHANNELS = 2


def run_main(argv: list[str]) -> int:
    """``sorotask run``: the supervisor's command line, with this demo when there is no config."""
    from supervisor.cli import run_main as supervisor_run_main

    return supervisor_run_main(argv, demo=run_demo)


def _free_status_address() -> str:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", DEMO_STATUS_PORT))
            return f"127.0.0.1:{DEMO_STATUS_PORT}"
        except OSError:
            return "127.0.0.1:0"


def _shard_rows(
    first: int, last: int, shards: int, secrets_dir: Path, keepers: list[str]
) -> list[dict[str, Any]]:
    """Tasks ``first..last`` in ``shards`` contiguous ranges, the last one open."""
    rows = []
    size = max(1, (last - first + 1) // shards)
    for i in range(shards):
        lo = first + i * size
        hi = None if i == shards - 1 else lo + size - 1
        keeper, channels = secret_files(secrets_dir, i + 1, DEMO_CHANNELS)
        rows.append(
            {
                "name": f"demo-{i + 1}",
                "range": [lo, hi],
                "secret_file": str(keeper),
                "channels": [{"secret_file": str(c)} for c in channels],
            }
        )
        print(
            f"sorotask: shard demo-{i + 1}: tasks {lo}..{hi or 'open'}, keeper "
            f"{keepers[i]} (funded by the devnet friendbot)",
            flush=True,
        )
    return rows


def _banner(tasks: int, shards: int) -> None:
    print("=" * 78)
    print("sorotask: DEMO MODE (no --config given).")
    print(f"  Starting an embedded LOCAL devnet with {tasks} demo tasks and {shards} keeper")
    print("  shards. This is a simulated Soroban network on this machine, not testnet or")
    print("  mainnet. Run 'sorotask run --config FILE' for a real network")
    print("  (see deploy/examples/).")
    print("=" * 78, flush=True)


def run_demo(
    *,
    duration: float | None,
    summary_json: str | None,
    shards: int = 3,
    tasks: int = 300,
    status_address: str | None = None,
) -> int:
    """Run the demo; returns the supervisor's exit code."""
    from devnet.process import DevnetProcess
    from supervisor.config import ConfigError, load_config
    from supervisor.runner import run_plan

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(0)  # unwinds the with-blocks: the devnet is stopped, files removed

    signal.signal(signal.SIGTERM, _terminate)  # until the supervisor installs its own
    shards = max(1, min(shards, 8))
    log_dir = Path.cwd() / "logs"
    with temporary_secrets(prefix="sorotask-demo-") as workdir:
        _banner(tasks, shards)
        # A terminal's Ctrl-C reaches the whole process group. The devnet must outlive the
        # workers' drain, so it runs in its own session; it is stopped with SIGTERM once the
        # supervisor is done (and stops by itself if this process dies).
        devnet = DevnetProcess(tasks=0, close_every=1.0, new_session=True)
        devnet.start()
        try:
            info = devnet.info
            # every task due at once, then every 60 ledgers: the shards drain the backlog
            # (3 source accounts each), then keep up with ~1.7 due tasks a ledger per shard
            seeded = devnet.rpc("devnet_seedTasks", {"count": tasks, "interval": 300})
            first, last = int(seeded["first_id"]), int(seeded["last_id"])
            print(f"sorotask: devnet at {info.rpc_url}, tasks {first}..{last}", flush=True)
            keepers = provision_split_secrets(devnet, workdir, shards, DEMO_CHANNELS)
            config = {
                "network": network_section(info),
                "worker": {
                    "poll_interval_s": 1,
                    "max_concurrent_executions": DEMO_CHANNELS + 1,  # keeper + channels
                    "stop_grace_s": 5,
                },
                "supervisor": {
                    "status_address": status_address or _free_status_address(),
                    "log_dir": str(log_dir),
                    "state_dir": str(workdir / "state"),
                    "shutdown_grace_s": 10,
                    "heartbeat_timeout_s": 10,
                    "progress_every_s": 5,
                },
                "shards": _shard_rows(first, last, shards, workdir, keepers),
            }
            config_path = write_yaml(workdir / "demo.yaml", config)
            try:
                plan = load_config(config_path)
            except ConfigError as exc:  # would be a bug in this module
                print(f"sorotask: demo config invalid:\n{exc}")
                return ExitCode.CRASH
            if duration is None:
                print(
                    "sorotask: press Ctrl-C to stop (gracefully; twice to stop at once)", flush=True
                )
            return run_plan(
                plan, config_path=str(config_path), duration=duration, summary_json=summary_json
            )
        finally:
            devnet.stop()
