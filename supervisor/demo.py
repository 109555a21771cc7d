"""``sorotask run`` without a config: a demo on an embedded local devnet.

Starts the devnet with demo tasks, makes one keypair per shard, funds them through the devnet's
friendbot, writes the secrets to 0600 files in a private temporary directory (never argv, never
logs), writes a shard config next to them and runs the supervisor on it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from sorotask_core.exitcodes import ExitCode

DEMO_STATUS_PORT = 9100
DEMO_CHANNELS = 2


def _free_status_address() -> str:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", DEMO_STATUS_PORT))
            return f"127.0.0.1:{DEMO_STATUS_PORT}"
        except OSError:
            return "127.0.0.1:0"


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


def _fund(friendbot_url: str, address: str) -> None:
    url = f"{friendbot_url}?{urllib.parse.urlencode({'addr': address})}"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - local devnet
        resp.read()


def run_demo(
    *,
    duration: float | None,
    summary_json: str | None,
    shards: int = 3,
    tasks: int = 300,
    status_address: str | None = None,
) -> int:
    """Run the demo; returns the supervisor's exit code."""
    from stellar_sdk import Keypair

    from devnet.process import DevnetProcess
    from supervisor.config import ConfigError, load_config
    from supervisor.runner import run_plan

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(0)  # unwinds the with-block: the devnet is stopped, files removed

    signal.signal(signal.SIGTERM, _terminate)  # until the supervisor installs its own
    shards = max(1, min(shards, 8))
    workdir = Path(tempfile.mkdtemp(prefix="sorotask-demo-"))
    os.chmod(workdir, 0o700)
    log_dir = Path.cwd() / "logs"
    try:
        print("=" * 78)
        print("sorotask: DEMO MODE (no --config given).")
        print(f"  Starting an embedded LOCAL devnet with {tasks} demo tasks and {shards} keeper")
        print("  shards. This is a simulated Soroban network on this machine, not testnet or")
        print("  mainnet. Run 'sorotask run --config FILE' for a real network")
        print("  (see deploy/examples/).")
        print("=" * 78, flush=True)
        # A terminal's Ctrl-C reaches the whole process group. The devnet must outlive the
        # workers' drain, so it runs in its own session; it is stopped with SIGTERM once the
        # supervisor is done (and stops by itself if this process dies).
        devnet = DevnetProcess(tasks=0, close_every=1.0, new_session=True)
        devnet.start()
        try:
            dn = devnet
            info = dn.info
            # every task due at once, then every 60 ledgers: the shards drain the backlog
            # (3 source accounts each), then keep up with ~1.7 due tasks a ledger per shard
            seeded = dn.rpc("devnet_seedTasks", {"count": tasks, "interval": 300})
            first, last = int(seeded["first_id"]), int(seeded["last_id"])
            print(f"sorotask: devnet at {info.rpc_url}, tasks {first}..{last}", flush=True)
            shard_rows = []
            size = max(1, (last - first + 1) // shards)
            for i in range(shards):
                kp = Keypair.random()
                _fund(info.friendbot_url, kp.public_key)
                secret_path = workdir / f"keeper-{i + 1}.secret"
                _write_secret(secret_path, kp.secret)
                channels = []
                for c in range(DEMO_CHANNELS):  # extra source accounts: more txs per ledger
                    ch = Keypair.random()
                    _fund(info.friendbot_url, ch.public_key)
                    ch_path = workdir / f"keeper-{i + 1}-channel-{c + 1}.secret"
                    _write_secret(ch_path, ch.secret)
                    channels.append({"secret_file": str(ch_path)})
                    del ch
                lo = first + i * size
                hi = None if i == shards - 1 else lo + size - 1
                shard_rows.append(
                    {
                        "name": f"demo-{i + 1}",
                        "range": [lo, hi],
                        "secret_file": str(secret_path),
                        "channels": channels,
                    }
                )
                print(
                    f"sorotask: shard demo-{i + 1}: tasks {lo}..{hi or 'open'}, keeper "
                    f"{kp.public_key} (funded by the devnet friendbot)",
                    flush=True,
                )
                del kp
            config = {
                "network": {
                    "rpc_url": info.rpc_url,
                    "network_passphrase": info.network_passphrase,
                    "contract_id": info.contract_id,
                },
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
                "shards": shard_rows,
            }
            config_path = workdir / "demo.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
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
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
