"""Run the devnet as a real subprocess (for tests, demos and benchmarks).

with DevnetProcess(tasks=10, close_every=0.5) as dn:
    dn.info.rpc_url, dn.info.network_passphrase, dn.info.contract_id
    dn.rpc("getLatestLedger")
    dn.seed_tasks(count=5, interval=60)
    dn.friendbot(keypair.public_key)

with DevnetProcess(replicas=3) as dn:  # one chain, three ports
    dn.info.rpc_urls  # one URL per replica; dn.info.rpc_url is the first
    dn.set_lag(4, replica=2)  # replica 2 answers as of 4 ledgers ago
    dn.set_faults(error_rate=1.0, replica=1)  # only replica 1 fails
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson


class DevnetError(RuntimeError):
    pass


class DevnetRpcError(DevnetError):
    """The devnet answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class DevnetInfo:
    rpc_url: str
    network_passphrase: str
    contract_id: str
    friendbot_url: str
    #: one URL per replica (``--replicas``); the first is ``rpc_url``
    rpc_urls: tuple[str, ...] = ()


class DevnetProcess:
    """Context manager around ``python -m devnet`` on 127.0.0.1 (port chosen by the OS)."""

    def __init__(
        self,
        *,
        tasks: int = 0,
        close_every: float = 5.0,
        ledger_seconds: int = 5,
        extra_args: tuple[str, ...] | list[str] = (),
        ready_timeout: float = 20.0,
        log_level: str = "INFO",
        log_path: str | os.PathLike[str] | None = None,
        new_session: bool = False,
        replicas: int = 1,
    ) -> None:
        """``new_session``: run the devnet in its own session, so a Ctrl-C in the terminal
        reaches only its owner, which stops it when it is done (the supervisor's demo drains
        its workers first). The devnet always exits when its owner dies. ``replicas``: serve
        the chain on that many ports (``info.rpc_urls``)."""
        self.args = [
            sys.executable,
            "-m",
            "devnet",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--tasks",
            str(tasks),
            "--close-every",
            str(close_every),
            "--ledger-seconds",
            str(ledger_seconds),
            "--log-level",
            log_level,
            "--exit-with-parent",
            *(("--replicas", str(replicas)) if replicas != 1 else ()),
            *extra_args,
        ]
        self.new_session = new_session
        self.ready_timeout = ready_timeout
        self._log_path = Path(log_path) if log_path else None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._info: DevnetInfo | None = None
        self._client: httpx.Client | None = None
        self._next_id = 0

    # lifecycle ---------------------------------------------------------------------------
    @property
    def info(self) -> DevnetInfo:
        if self._info is None:
            raise DevnetError("devnet is not running")
        return self._info

    @property
    def log_path(self) -> Path:
        assert self._log_path is not None
        return self._log_path

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> DevnetInfo:
        if self._log_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="devnet-")
            self._log_path = Path(self._tmpdir.name) / "devnet.log"
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=self.new_session,
            )
        finally:
            log.close()
        try:
            line = self._read_ready_line()
            data = orjson.loads(line)
            self._info = DevnetInfo(
                rpc_url=data["rpc_url"],
                network_passphrase=data["network_passphrase"],
                contract_id=data["contract_id"],
                friendbot_url=data["friendbot_url"],
                rpc_urls=tuple(data.get("rpc_urls") or (data["rpc_url"],)),
            )
        except BaseException:
            self.stop()
            raise
        self._client = httpx.Client(timeout=30.0)
        return self._info

    def _read_ready_line(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DevnetError(
                        f"devnet not ready after {self.ready_timeout} s; log: {self._log_path}"
                    )
                if not sel.select(timeout=min(remaining, 0.5)):
                    if self.proc.poll() is not None:
                        raise DevnetError(self._died_message())
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise DevnetError(self._died_message())
                buf += chunk
        return buf.split(b"\n", 1)[0]

    def _died_message(self) -> str:
        assert self.proc is not None
        tail = ""
        with contextlib.suppress(OSError):
            tail = self.log_path.read_text(errors="replace")[-2000:]
        return f"devnet exited with status {self.proc.returncode} before it was ready:\n{tail}"

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self._client is not None:
            self._client.close()
            self._client = None
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        return proc.returncode

    def __enter__(self) -> DevnetProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # JSON-RPC ----------------------------------------------------------------------------
    def rpc(self, method: str, params: dict[str, Any] | None = None, *, replica: int = 0) -> Any:
        """Call one method (on replica ``replica``); returns ``result`` or raises
        :class:`DevnetRpcError`."""
        if self._client is None:
            raise DevnetError("devnet is not running")
        self._next_id += 1
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            body["params"] = params
        resp = self._client.post(
            self.info.rpc_urls[replica],
            content=orjson.dumps(body),
            headers={"content-type": "application/json"},
        )
        resp.raise_for_status()
        data = orjson.loads(resp.content)
        if data.get("error"):
            err = data["error"]
            raise DevnetRpcError(err.get("code", 0), err.get("message", ""))
        return data["result"]

    # conveniences for the devnet_* control methods ---------------------------------------
    def friendbot(self, address: str) -> None:
        assert self._client is not None
        resp = self._client.get(self.info.friendbot_url, params={"addr": address})
        if resp.status_code != 200:
            raise DevnetError(f"friendbot: {resp.status_code} {resp.text}")

    def seed_tasks(self, **params: Any) -> tuple[int, int]:
        out = self.rpc("devnet_seedTasks", params)
        return out["first_id"], out["last_id"]

    def executions(self, task_ids: list[int] | None = None) -> list[dict[str, Any]]:
        params = {} if task_ids is None else {"task_ids": task_ids}
        return self.rpc("devnet_executions", params)["executions"]

    def close_ledger(self, count: int = 1) -> dict[str, Any]:
        return self.rpc("devnet_closeLedger", {"count": count})

    def set_faults(self, *, replica: int = 0, **faults: Any) -> dict[str, Any]:
        return self.rpc("devnet_setFaults", faults, replica=replica)

    def set_lag(self, ledgers: int, *, replica: int = 0) -> dict[str, Any]:
        """devnet_setLag: replica ``replica`` answers as of ``ledgers`` ledgers ago."""
        return self.rpc("devnet_setLag", {"ledgers": ledgers}, replica=replica)

    def expire_entries(self, **params: Any) -> dict[str, Any]:
        """devnet_expireEntries: task_ids / first_id..last_id / keys."""
        return self.rpc("devnet_expireEntries", params)

    def stats(self) -> dict[str, Any]:
        return self.rpc("devnet_stats", {})
