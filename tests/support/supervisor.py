"""Helpers for the supervisor tests: keypairs, configs, a supervisor subprocess, bounded waits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import yaml
from stellar_sdk import Keypair

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "Standalone Network ; February 2017"
CONTRACT = "CA3D5KRYM6CB7OWQ6TWYRR3Z4T7GNZLKERYNZGGA5SOAOPIFY6YQGAXE"
FAKE = "tests.support.stand_ins:fake_keeper"


def wait_for(
    pred: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``pred`` until truthy (bounded in time); returns its value or fails."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}; last={last!r}")


def keypairs(n: int) -> list[Keypair]:
    return [Keypair.random() for _ in range(n)]


def base_config(
    *,
    rpc_url: str = "http://127.0.0.1:1",
    passphrase: str = PASSPHRASE,
    contract: str = CONTRACT,
    log_dir: str = "logs",
    **supervisor: Any,
) -> dict[str, Any]:
    sup = {
        "status_address": "127.0.0.1:0",
        "log_dir": log_dir,
        "state_dir": "state",
        "heartbeat_timeout_s": 3,
        "kill_grace_s": 1,
        "shutdown_grace_s": 10,
        "log_level": "DEBUG",
        "restart": {
            "max_restarts": 3,
            "window_s": 30,
            "backoff_base_s": 0.2,
            "backoff_max_s": 1,
            "stable_after_s": 30,
        },
    }
    sup.update(supervisor)
    return {
        "network": {"rpc_url": rpc_url, "network_passphrase": passphrase, "contract_id": contract},
        "worker": {"poll_interval_s": 0.5, "stop_grace_s": 5},
        "supervisor": sup,
    }


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Supervisor:
    """``python -m sorotask.cli run --config FILE`` as a real subprocess."""

    def __init__(
        self,
        config: Path,
        env: dict[str, str],
        *,
        extra_args: list[str] | None = None,
        cwd: Path | None = None,
        new_session: bool = False,
    ) -> None:
        self.config = config
        self.cwd = cwd or config.parent
        self.out_path = self.cwd / "supervisor.stdout"
        self.err_path = self.cwd / "supervisor.stderr"
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PYTHONPATH"] = str(ROOT)
        self.argv = [
            sys.executable,
            "-m",
            "sorotask.cli",
            "run",
            "--config",
            str(config),
            *(extra_args or []),
        ]
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=full_env,
            stdout=open(self.out_path, "wb"),  # noqa: SIM115
            stderr=open(self.err_path, "wb"),  # noqa: SIM115
            stdin=subprocess.DEVNULL,
            # its own process group, as in a terminal (``signal_group``)
            start_new_session=new_session,
        )
        self.new_session = new_session
        self.ps = psutil.Process(self.proc.pid)
        self.url: str | None = None

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_url(self, timeout: float = 20) -> str:
        def find() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"supervisor exited {self.proc.returncode}: {self.stderr()}")
            for line in self.stdout().splitlines():
                if line.startswith("sorotask: status at http"):
                    return line.split(" at ", 1)[1].strip()
            return None

        self.url = wait_for(find, timeout, what="status URL")
        return self.url

    def get(self, path: str) -> tuple[int, Any]:
        assert self.url
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                body = r.read()
                code = r.status
        except urllib.error.HTTPError as e:
            body = e.read()
            code = e.code
        try:
            return code, json.loads(body)
        except ValueError:
            return code, body.decode()

    def status(self) -> dict[str, Any]:
        code, doc = self.get("/status")
        assert code == 200
        return doc

    def shard(self, name: str) -> dict[str, Any]:
        return next(s for s in self.status()["shards"] if s["name"] == name)

    def wait_running(self, names: list[str], timeout: float = 30) -> dict[str, Any]:
        def ok() -> dict[str, Any] | None:
            doc = self.status()
            by = {s["name"]: s for s in doc["shards"]}
            if all(by[n]["state"] == "running" and by[n]["last_cycle"] for n in names):
                return doc
            return None

        return wait_for(ok, timeout, interval=0.1, what=f"shards {names} running")

    def descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return self.ps.children(recursive=True)
        return []

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        """``sig`` to the supervisor's whole process group, as a terminal's Ctrl-C does (only
        for one started with ``new_session``)."""
        assert self.new_session, "the group would include the test runner"
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def kill_tree(self) -> None:
        procs = self.descendants()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        psutil.wait_procs(procs, timeout=5)


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out
