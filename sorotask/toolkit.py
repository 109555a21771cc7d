"""What the tools (``sorotask chaos``, ``sorotask bench``, the demo) share: temporary secrets,
the YAML config, devnet seeding, funding and its ledger, a supervisor subprocess, its ``/status``.

Secrets are written to 0600 files in a private 0700 directory that is removed afterwards; they
never appear in argv, logs or reports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

#: the directory holding the ``sorotask`` package (put on a supervisor's PYTHONPATH)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
TEST_KEEPER_ENV = "SOROTASK_TEST_KEEPER"

# ------------------------------------------------------------------------------ secrets


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to a new 0600 file (refuses to overwrite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


@contextlib.contextmanager
def temporary_secrets(parent: Path | None = None, prefix: str = "secrets-") -> Iterator[Path]:
    """A private (0700) directory for secret files, removed with everything in it at exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        os.chmod(path, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------ the devnet


def devnet_batch(rpc_url: str, method: str, calls: list[dict[str, Any]], per_request: int) -> None:
    """Send ``method`` once per params dict, ``per_request`` calls per JSON-RPC batch (the
    devnet's injected latency is paid once per batch); raises on the first error."""
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(calls), per_request):
            reqs = [
                {"jsonrpc": "2.0", "id": j, "method": method, "params": params}
                for j, params in enumerate(calls[i : i + per_request])
            ]
            resp = client.post(rpc_url, json=reqs)
            resp.raise_for_status()
            for item in resp.json():
                if "error" in item:
                    raise RuntimeError(f"{method}: {item['error']}")


def seed_tasks(rpc_url: str, calls: list[dict[str, Any]], per_request: int = 200) -> None:
    """``devnet_seedTasks`` once per entry of ``calls`` (``count``, ``interval``, ``last_run``)."""
    devnet_batch(rpc_url, "devnet_seedTasks", calls, per_request)


def provision_split_secrets(dn: Any, secrets_dir: Path, shards: int, channels: int) -> list[str]:
    """Make, fund (one ``devnet_fund`` call) and write a keeper key per shard and ``channels``
    channel keys per shard, named as :func:`split_section` (and :func:`secret_files`) expect.
    Returns the keepers' public keys (G...), shard by shard."""
    from stellar_sdk import Keypair

    per_shard = 1 + channels
    keys = [Keypair.random() for _ in range(shards * per_shard)]
    dn.rpc("devnet_fund", {"addresses": [k.public_key for k in keys]})
    for i in range(shards):
        write_secret(secrets_dir / f"keeper-{i + 1}.secret", keys[i * per_shard].secret)
        for c in range(channels):
            kp = keys[i * per_shard + 1 + c]
            write_secret(secrets_dir / f"keeper-{i + 1}-ch-{c + 1}.secret", kp.secret)
    public = [keys[i * per_shard].public_key for i in range(shards)]
    del keys
    return public


def secret_files(secrets_dir: Path, index: int, channels: int) -> tuple[Path, list[Path]]:
    """Shard ``index``'s (1-based) keeper and channel secret files, as
    :func:`provision_split_secrets` writes them."""
    keeper = secrets_dir / f"keeper-{index}.secret"
    return keeper, [secrets_dir / f"keeper-{index}-ch-{c + 1}.secret" for c in range(channels)]


class LedgerSampler:
    """The devnet's current ledger (``devnet_stats``, never faulted), sampled in a thread."""

    def __init__(self, rpc_url: str, every: float = 0.1) -> None:
        self.url = rpc_url
        self.every = every
        self.client = httpx.Client(timeout=10)
        self.value: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-ledger", daemon=True)

    def sample(self) -> int | None:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            r = self.client.post(
                self.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "devnet_stats", "params": {}},
            )
            self.value = int(r.json()["result"]["ledger"])
        return self.value

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def start(self) -> LedgerSampler:
        self.sample()
        self._thread.start()
        return self

    def halt(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()


# ------------------------------------------------------------------------------ YAML config


def network_section(info: Any) -> dict[str, Any]:
    """The ``network:`` block for a devnet (``DevnetProcess.info``)."""
    return {
        "rpc_url": info.rpc_url,
        "network_passphrase": info.network_passphrase,
        "contract_id": info.contract_id,
    }


def split_section(tasks: int, shards: int, secrets_dir: Path, channels: int) -> dict[str, Any]:
    """The ``split:`` block: tasks 1..``tasks`` over ``shards`` shards named ``shard-N``, with
    the secret files of :func:`provision_split_secrets`."""
    split: dict[str, Any] = {
        "range": [1, tasks],
        "count": shards,
        "name_pattern": "shard-{index}",
        "secret_file_pattern": str(secrets_dir / "keeper-{index}.secret"),
    }
    if channels:
        split["channels"] = channels
        split["channel_secret_file_pattern"] = str(
            secrets_dir / "keeper-{index}-ch-{channel}.secret"
        )
    return split


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ------------------------------------------------------------------------------ the supervisor


def start_supervisor(
    config: Path, out_path: Path, *, cwd: Path | None = None, extra_args: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """``python -m sorotask.cli run --config FILE`` of this tree, stdout and stderr to
    ``out_path``. The real keeper always: the test hook is removed from its environment."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PACKAGE_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop(TEST_KEEPER_ENV, None)
    with open(out_path, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sorotask.cli", "run", "--config", str(config), *extra_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )


def wait_status_url(proc: subprocess.Popen[bytes], out_path: Path, timeout: float) -> str:
    """The status URL the supervisor prints at start (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"supervisor exited with {proc.returncode}; see {out_path}")
        for line in out_path.read_text(errors="replace").splitlines():
            if line.startswith("sorotask: status at http"):
                return line.split(" at ", 1)[1].strip()
        time.sleep(0.05)
    raise RuntimeError(f"supervisor printed no status URL within {timeout}s; see {out_path}")


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM, wait ``timeout`` s, then SIGKILL. None when it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


# ------------------------------------------------------------------------------ /status


def fetch_status(client: httpx.Client, url: str) -> dict[str, Any]:
    """GET ``url``/status; raises ``httpx.HTTPError`` or ``ValueError`` for anything but a
    /status document."""
    resp = client.get(url.rstrip("/") + "/status")
    resp.raise_for_status()
    doc = resp.json()
    if not isinstance(doc, dict) or not isinstance(doc.get("shards"), list):
        raise ValueError("not a /status document")
    return doc


def shards_by_name(doc: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (doc or {}).get("shards", [])}


def shard_of(doc: dict[str, Any] | None, task_id: int) -> str:
    """The shard whose range (from ``/status``) holds ``task_id``."""
    for s in (doc or {}).get("shards", []):
        first, last = s["range"]
        if first <= task_id and (last is None or task_id <= last):
            return str(s["name"])
    return "?"


def wait_shards_running(
    watcher: StatusWatcher,
    names: list[str],
    proc: subprocess.Popen[bytes],
    out_path: Path,
    timeout: float,
) -> bool:
    """Until exactly the shards ``names`` run and each finished a cycle (``/status`` through a
    started ``watcher``); False after ``timeout`` s. Raises RuntimeError if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shards = shards_by_name(watcher.latest())
        if len(shards) == len(names) and all(
            n in shards and shards[n]["state"] == "running" and shards[n]["last_cycle"]
            for n in names
        ):
            return True
        if proc.poll() is not None:
            raise RuntimeError(f"supervisor exited with {proc.returncode}; see {out_path}")
        time.sleep(0.05)
    return False


StatusCallback = Callable[[dict[str, Any], float], None]


class StatusWatcher:
    """Polls ``/status`` (every ``every`` s in a thread after :meth:`start`, or by hand with
    :meth:`poll_once`); keeps the last document, counts failures and calls ``on_doc``
    callbacks ``(doc, monotonic time)`` with every document."""

    def __init__(self, url: str, every: float = 0.1, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.every = every
        self.client = httpx.Client(timeout=timeout)
        self.lock = threading.Lock()
        self.doc: dict[str, Any] | None = None
        self.doc_at = 0.0
        self.polls = 0
        self.failures = 0
        self.failure_examples: list[str] = []
        self.max_latency_s = 0.0
        self.on_doc: list[StatusCallback] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-watcher", daemon=True)

    def start(self) -> StatusWatcher:
        self._thread.start()
        return self

    def halt(self) -> None:
        """Stop polling (the thread ends after its current poll); keeps the client open."""
        self._stop.set()

    def stop(self) -> None:
        """Stop polling, wait for the thread, close the client."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.client.close()

    def poll_once(self) -> dict[str, Any] | None:
        t0 = time.monotonic()
        try:
            doc = fetch_status(self.client, self.url)
        except (httpx.HTTPError, ValueError) as exc:
            with self.lock:
                self.polls += 1
                self.failures += 1
                if len(self.failure_examples) < 10:
                    self.failure_examples.append(f"{type(exc).__name__}: {exc}")
            return None
        now = time.monotonic()
        with self.lock:
            self.polls += 1
            self.max_latency_s = max(self.max_latency_s, now - t0)
            self.doc, self.doc_at = doc, now
        for fn in list(self.on_doc):
            fn(doc, now)
        return doc

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.0, self.every - (time.monotonic() - t0)))

    def latest(self) -> dict[str, Any] | None:
        with self.lock:
            return self.doc

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {
                "polls": self.polls,
                "failures": self.failures,
                "failure_examples": list(self.failure_examples),
                "max_latency_s": round(self.max_latency_s, 3),
            }


# ------------------------------------------------------------------------------ processes


class ProcessRecord:
    """Every process of ours seen (pid -> create time), to check none is left at the end."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.lock = threading.Lock()

    def add(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            created = psutil.Process(pid).create_time()
            with self.lock:
                self.seen.setdefault(pid, created)

    def add_tree(self, pid: int) -> None:
        """``pid`` and all its descendants."""
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                self.add(p.pid)

    def from_status(self, doc: dict[str, Any], _now: float = 0.0) -> None:
        """A :class:`StatusWatcher` callback: the supervisor's tree and the listed workers."""
        sup = doc.get("supervisor", {}).get("pid")
        if isinstance(sup, int):
            self.add_tree(sup)
        for s in doc["shards"]:
            if isinstance(s.get("pid"), int):
                self.add(s["pid"])

    def still_alive(self) -> list[int]:
        with self.lock:
            return still_alive(dict(self.seen))


def still_alive(seen: dict[int, float]) -> list[int]:
    """Pids from ``seen`` (pid -> create_time) that still run (same process, not a zombie)."""
    out = []
    for pid, created in seen.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out
