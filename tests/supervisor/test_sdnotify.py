"""sd_notify: a real ``sorotask run`` talks to a fake NOTIFY_SOCKET (a unix datagram socket this
test binds, as systemd does): READY=1 once its shards run, WATCHDOG=1 from its main loop at half
WATCHDOG_USEC, no ping while the loop is stalled (SIGSTOP), STOPPING=1 on SIGTERM."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from stellar_sdk import Keypair

from supervisor.sdnotify import SdNotify, socket_address, status_line, watchdog_interval

ROOT = Path(__file__).resolve().parents[2]
FAKE = "tests.support.stand_ins:fake_keeper"
NO_HELLO = "tests.support.stand_ins:fake_keeper_no_hello"


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: every datagram with its arrival time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(socket_address(address))
        self.got: list[tuple[float, str]] = []

    def receive(self, timeout: float) -> tuple[float, str] | None:
        """The next datagram within ``timeout`` seconds, or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        item = (time.monotonic(), data.decode())
        self.got.append(item)
        return item

    def message(self, timeout: float) -> str | None:
        item = self.receive(timeout)
        return None if item is None else item[1]

    def wait_for(self, prefix: str, timeout: float) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            item = self.receive(left)
            if item is not None and item[1].startswith(prefix):
                return item
        raise AssertionError(f"no {prefix!r} within {timeout}s; got {self.got!r}")

    def drain(self) -> None:
        while self.receive(0.001) is not None:
            pass

    def pings(self) -> list[float]:
        return [t for t, m in self.got if m.split("\n")[0] == "WATCHDOG=1"]

    def close(self) -> None:
        self.sock.close()


def _abstract_name() -> str:
    return f"@sorotask-test-{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def _supervisor(
    tmp_path: Path, notify_socket: str, watchdog_usec: int, keeper: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    cfg = {
        "network": {
            "rpc_url": "http://127.0.0.1:1",
            "network_passphrase": "Standalone Network ; February 2017",
            "contract_id": "CAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSC4",
        },
        "worker": {"poll_interval_s": 0.5},
        "supervisor": {
            "status_address": "127.0.0.1:0",
            "log_dir": str(tmp_path / "logs"),
            "state_dir": str(tmp_path / "state"),
            "shutdown_grace_s": 5,
            "heartbeat_timeout_s": 30,  # a SIGSTOPped supervisor must not find its workers hung
        },
        "shards": [
            {"name": "a", "range": [1, 100], "secret_env": "SDN_KEY_A"},
            {"name": "b", "range": [101, 200], "secret_env": "SDN_KEY_B"},
        ],
    }
    config = tmp_path / "sorotask.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "supervisor.out"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SDN_KEY_A": Keypair.random().secret,
        "SDN_KEY_B": Keypair.random().secret,
        "SOROTASK_TEST_KEEPER": keeper,
        "NOTIFY_SOCKET": notify_socket,
        "WATCHDOG_USEC": str(watchdog_usec),
    }
    argv = [sys.executable, "-m", "sorotask.cli", "run", "--config", str(config)]
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [*argv, "--duration", "120"],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        )
    try:
        yield proc, out
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _status(out: Path) -> dict[str, Any]:
    m = re.search(r"^sorotask: status at (http://\S+)$", out.read_text(), re.M)
    assert m, out.read_text()[-2000:]
    with urllib.request.urlopen(m.group(1) + "/status", timeout=5) as r:
        return json.loads(r.read())


def _wait_stopped(pid: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} not stopped after {timeout}s")


@pytest.mark.slow
class TestARealSupervisor:
    def test_ready_watchdog_pings_a_stall_and_stopping(self, tmp_path: Path) -> None:
        interval = 1.0  # WATCHDOG_USEC = 2 s
        fake = FakeSystemd(_abstract_name())
        try:
            with _supervisor(tmp_path, fake.address, 2_000_000, FAKE) as (proc, out):
                t_ready, ready = fake.wait_for("READY=1", 30)
                assert ready == "READY=1\nSTATUS=2/2 shards running"
                doc = _status(out)
                assert {s["name"]: s["state"] for s in doc["shards"]} == {
                    "a": "running",
                    "b": "running",
                }
                # the workers did not inherit the notification socket
                for s in doc["shards"]:
                    environ = psutil.Process(s["pid"]).environ()
                    assert "NOTIFY_SOCKET" not in environ and "WATCHDOG_USEC" not in environ

                # pings at half WATCHDOG_USEC, never a gap systemd would punish
                t_end = time.monotonic() + 4.5
                while time.monotonic() < t_end:
                    fake.receive(t_end - time.monotonic())
                pings = [t for t in fake.pings() if t > t_ready]
                assert len(pings) >= 3, fake.got
                gaps = [b - a for a, b in itertools.pairwise(pings)]
                assert all(0.5 * interval < g < 2 * interval for g in gaps), gaps

                # a stalled main loop sends nothing
                proc.send_signal(signal.SIGSTOP)
                _wait_stopped(proc.pid)
                fake.drain()  # anything sent before the stop took effect
                last_before = fake.pings()[-1]
                t_stop = time.monotonic()
                stall = 3 * interval
                while (left := t_stop + stall - time.monotonic()) > 0:
                    item = fake.receive(left)
                    assert item is None, f"{item!r} from a stopped supervisor"
                proc.send_signal(signal.SIGCONT)
                t_after, _ = fake.wait_for("WATCHDOG=1", 5 * interval)
                assert t_after - last_before >= stall
                # and pinging resumes at the usual pace
                t_next, _ = fake.wait_for("WATCHDOG=1", 5 * interval)
                assert t_next - t_after < 2 * interval

                proc.send_signal(signal.SIGTERM)
                _, stopping = fake.wait_for("STOPPING=1", 10)
                assert stopping.startswith("STOPPING=1")
                assert proc.wait(timeout=30) == 0
            assert [m for _, m in fake.got].count("READY=1\nSTATUS=2/2 shards running") == 1
        finally:
            fake.close()

    def test_no_ready_while_a_shard_is_still_starting(self, tmp_path: Path) -> None:
        """Shard b's worker heartbeats but never says hello: the supervisor pings the watchdog
        (it is alive) but never tells systemd it is ready."""
        fake = FakeSystemd(_abstract_name())
        try:
            with _supervisor(tmp_path, fake.address, 1_000_000, f"{FAKE};b={NO_HELLO}") as (
                proc,
                out,
            ):
                fake.wait_for("WATCHDOG=1", 30)
                t_end = time.monotonic() + 3
                while time.monotonic() < t_end:
                    fake.receive(t_end - time.monotonic())
                states = {s["name"]: s["state"] for s in _status(out)["shards"]}
                assert states == {"a": "running", "b": "starting"}
                assert len(fake.pings()) >= 3
                assert not any(m.startswith("READY=1") for _, m in fake.got), fake.got
                assert proc.poll() is None
        finally:
            fake.close()


class TestSdNotify:
    def test_without_notify_socket_everything_is_a_no_op(self) -> None:
        env: dict[str, str] = {"WATCHDOG_USEC": "2000000"}
        sd = SdNotify.from_environ(env)
        assert not sd.enabled and sd.interval is None and sd.next_ping_at == float("inf")
        assert sd.send("READY=1") is False
        sd.loop(False, lambda: ["running"])
        sd.loop(True, lambda: ["running"])
        assert env == {}

    def test_filesystem_socket_gets_ready_then_stopping_and_env_is_unset(self) -> None:
        with tempfile.TemporaryDirectory(prefix="sdn") as d:
            path = str(Path(d) / "notify")  # short: sun_path holds 108 bytes
            fake = FakeSystemd(path)
            try:
                env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "0", "OTHER": "x"}
                sd = SdNotify.from_environ(env)
                assert env == {"OTHER": "x"}
                assert sd.enabled and sd.interval is None
                sd.loop(False, lambda: ["running", "starting"])
                assert fake.message(0.2) is None  # still starting: not ready
                sd.loop(False, lambda: ["running", "failed", "backoff"])
                ready = fake.message(1)
                assert ready == "READY=1\nSTATUS=1/3 shards running, 1 backoff, 1 failed"
                sd.loop(False, lambda: ["running"])
                assert fake.message(0.2) is None  # READY once, no watchdog asked for
                sd.loop(True, lambda: ["running"])
                assert fake.message(1) == "STOPPING=1\nSTATUS=stopping"
                sd.loop(True, lambda: ["stopped"])
                assert fake.message(0.2) is None  # STOPPING once
            finally:
                fake.close()

    def test_pings_only_when_due_with_the_status_when_it_changed(self) -> None:
        fake = FakeSystemd(_abstract_name())
        try:
            sd = SdNotify(fake.address, 0.2)
            sd.loop(False, lambda: ["running"])
            assert fake.message(0.05) == "READY=1\nSTATUS=1/1 shards running"
            sd.loop(False, lambda: ["running"])
            assert fake.message(0.05) is None  # not due yet
            time.sleep(max(0.0, sd.next_ping_at - time.monotonic()))
            sd.loop(False, lambda: ["running"])
            assert fake.message(0.5) == "WATCHDOG=1"  # status unchanged
            time.sleep(max(0.0, sd.next_ping_at - time.monotonic()))
            sd.loop(False, lambda: ["failed"])
            assert fake.message(0.5) == "WATCHDOG=1\nSTATUS=0/1 shards running, 1 failed"
            assert sd.next_ping_at - time.monotonic() == pytest.approx(0.2, abs=0.1)
        finally:
            fake.close()

    def test_an_absent_socket_is_logged_not_raised(self) -> None:
        sd = SdNotify("@sorotask-nobody-listens-" + secrets.token_hex(4), 0.01)
        assert sd.send("WATCHDOG=1") is False
        sd.loop(False, lambda: ["running"])  # no exception

    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            ({"WATCHDOG_USEC": "30000000"}, 15.0),
            ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "OWN"}, 15.0),
            ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
            ({"WATCHDOG_USEC": "0"}, None),
            ({"WATCHDOG_USEC": "soon"}, None),
            ({}, None),
        ],
    )
    def test_watchdog_interval_is_half_of_watchdog_usec_for_this_pid(
        self, env: dict[str, str], expected: float | None
    ) -> None:
        env = {k: str(os.getpid()) if v == "OWN" else v for k, v in env.items()}
        assert watchdog_interval(env, os.getpid()) == expected

    def test_abstract_names_and_status_lines(self) -> None:
        assert socket_address("@sd/x") == b"\0sd/x"
        assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
        assert status_line([]) == "0/0 shards running"
        assert status_line(["running", "running"]) == "2/2 shards running"
