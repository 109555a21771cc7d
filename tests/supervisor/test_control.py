"""``sorotask ctl`` through the real control socket of a real ``sorotask run`` (stand-in keepers
via ``SOROTASK_TEST_KEEPER``): status, stop/start/restart one shard, reload, unknown shards, and
the socket's defences: mode 0600 from the start, another uid refused (by the file's mode and by
``SO_PEERCRED``), a socket file that is not 0600 or not ours refused by the client, one
supervisor per state_dir."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor import control
from supervisor.control import ControlError, parse_request
from tests.support.supervisor import (
    FAKE,
    ROOT,
    Supervisor,
    alive,
    base_config,
    keypairs,
    wait_for,
    write_yaml,
)

pytestmark = pytest.mark.timeout(120)

KEYS = keypairs(3)
ENV = {f"KC_{i}": kp.secret for i, kp in enumerate(KEYS)}
NAMES = ["s0", "s1", "s2"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


def config(tmp_path: Path, state_dir: Path | None = None, **sup: Any) -> Path:
    doc = base_config(**sup)
    if state_dir is not None:
        doc["supervisor"]["state_dir"] = str(state_dir)
    doc["shards"] = [
        {"name": n, "range": [1 + 1000 * i, 1000 * (i + 1)], "secret_env": f"KC_{i}"}
        for i, n in enumerate(NAMES)
    ]
    return write_yaml(tmp_path / "sorotask.yaml", doc)


def start(cfg: Path, keeper: str = FAKE) -> Supervisor:
    sv = Supervisor(cfg, {**ENV, "SOROTASK_TEST_KEEPER": keeper})
    sv.wait_url()
    return sv


def ctl(cfg: Path, *args: str, where: str = "--config") -> subprocess.CompletedProcess[str]:
    """``sorotask ctl --config CFG ARGS`` (``where="--state-dir"``: CFG is the state dir)."""
    return subprocess.run(
        [sys.executable, "-m", "sorotask.cli", "ctl", where, str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def pids(sv: Supervisor) -> dict[str, int | None]:
    return {s["name"]: s["pid"] for s in sv.status()["shards"]}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Supervisor, Path]]:
    cfg = config(tmp_path)
    sv = start(cfg)
    try:
        sv.wait_running(NAMES)
        yield sv, cfg
    finally:
        sv.kill_tree()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A state directory another user can traverse (pytest's own tmp dirs are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="sorotask-ctl-"))
    try:
        root.chmod(0o711)
        (root / "state").mkdir(mode=0o711)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def as_nobody(fn: Callable[[], Any], timeout: float = 20) -> dict[str, Any]:
    """Run ``fn`` in a forked child switched to uid/gid ``nobody``: ``{"result": ...}`` or
    ``{"error": "Type: message"}``."""
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
            os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
            try:
                out: dict[str, Any] = {"result": fn(), "uid": os.getuid()}
            except Exception as exc:
                out = {"error": f"{type(exc).__name__}: {exc}", "uid": os.getuid()}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    deadline = time.monotonic() + timeout
    with os.fdopen(r, "rb") as f:
        os.set_blocking(f.fileno(), False)
        while time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                chunk = f.read()
                if chunk == b"":
                    break
                data += chunk or b""
            time.sleep(0.02)
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert result["uid"] == nobody.pw_uid
    return result


def raw_request(path: Path, command: str, shard: str | None = None) -> Any:
    """Connect and ask without the client's file checks (as a hostile program would)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        req = {"v": 1, "command": command} | ({"shard": shard} if shard else {})
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


# ---------------------------------------------------------------------------- commands


class TestCommands:
    def test_status_prints_the_table_or_the_status_document(
        self, running: tuple[Supervisor, Path]
    ) -> None:
        sv, cfg = running
        res = ctl(cfg, "status")
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[1].split()[:3] == ["shard", "state", "pid"]
        assert all(any(ln.startswith(f"{n} ") and " running " in ln for ln in lines) for n in NAMES)
        res = ctl(cfg, "status", "--json")
        doc = json.loads(res.stdout)
        assert doc["ok"] is True
        assert [s["name"] for s in doc["status"]["shards"]] == NAMES
        assert doc["status"]["supervisor"]["pid"] == sv.proc.pid

    def test_stop_keeps_the_shard_stopped_until_start(
        self, running: tuple[Supervisor, Path]
    ) -> None:
        sv, cfg = running
        before = pids(sv)
        res = ctl(cfg, "stop", "s1")
        assert res.returncode == 0 and "stopping shard s1" in res.stdout, res.stderr
        s1 = wait_for(lambda: (s := sv.shard("s1"))["state"] == "stopped" and s, 15)
        assert s1["pid"] is None and s1["last_exit_code"] == 0  # drained, not killed
        assert alive([before["s1"]]) == []
        time.sleep(1.5)  # neither the restart policy nor a reload starts it again
        sv.signal(signal.SIGHUP)
        log = sv.cwd / "logs" / "supervisor.log"
        wait_for(lambda: "reload: " in log.read_text(), 15, what="reload logged")
        assert sv.shard("s1")["state"] == "stopped"
        assert ctl(cfg, "stop", "s1").stdout.strip() == "shard s1 is already stopped"
        code, health = sv.get("/health")
        assert code == 503 and "shard s1 is stopped" in health["reasons"]
        after = pids(sv)
        assert (after["s0"], after["s2"]) == (before["s0"], before["s2"])
        res = ctl(cfg, "start", "s1")
        assert res.returncode == 0 and res.stdout.startswith("shard s1 started: worker pid")
        doc = sv.wait_running(NAMES)
        new = {s["name"]: s for s in doc["shards"]}["s1"]
        assert new["pid"] not in (None, before["s1"]) and new["restarts"] == 0
        assert "shard s1: stop requested by sorotask ctl" in log.read_text()

    def test_restart_drains_the_worker_and_starts_a_new_one(
        self, running: tuple[Supervisor, Path]
    ) -> None:
        sv, cfg = running
        before = pids(sv)
        res = ctl(cfg, "restart", "s0")
        assert res.returncode == 0 and "restarting shard s0" in res.stdout, res.stderr
        wait_for(lambda: sv.shard("s0")["pid"] not in (None, before["s0"]), 15, what="new s0")
        doc = sv.wait_running(NAMES)
        s0 = {s["name"]: s for s in doc["shards"]}["s0"]
        assert s0["last_exit_code"] == 0  # the old worker stopped on request, in time
        assert s0["restarts"] == 0  # an operator's restart is not a crash
        assert alive([before["s0"]]) == []
        assert pids(sv)["s2"] == before["s2"]

    def test_an_unknown_shard_is_a_clear_error(self, running: tuple[Supervisor, Path]) -> None:
        sv, cfg = running
        for command in ("stop", "start", "restart"):
            res = ctl(cfg, command, "nope")
            assert res.returncode == 1
            assert "unknown shard 'nope'; shards on this host: s0, s1, s2" in res.stderr
        res = ctl(cfg, "stop")
        assert res.returncode == 64 and "stop needs a shard name" in res.stderr
        assert [s["state"] for s in sv.status()["shards"]] == ["running"] * 3

    def test_reload_applies_the_file_or_reports_why_not(
        self, running: tuple[Supervisor, Path]
    ) -> None:
        sv, cfg = running
        before = pids(sv)
        doc = base_config()
        doc["shards"] = [
            {"name": n, "range": [1 + 1000 * i, 1000 * (i + 1)], "secret_env": f"KC_{i}"}
            for i, n in enumerate(NAMES)
        ]
        doc["shards"][2]["worker"] = {"poll_interval_s": 0.7}
        write_yaml(cfg, doc)
        res = ctl(cfg, "reload")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == (f"reloaded {cfg}: 1 changed, 0 added, 0 removed, 2 unchanged")
        wait_for(lambda: sv.shard("s2")["pid"] not in (None, before["s2"]), 15, what="new s2")
        assert pids(sv)["s0"] == before["s0"]
        good = cfg.read_text()
        cfg.write_text(good.replace("poll_interval_s: 0.7", "poll_interval_s: -1"))
        # --state-dir: the broken file cannot tell the client where the socket is
        res = ctl(sv.cwd / "state", "reload", where="--state-dir")
        assert res.returncode == 1
        assert "reload refused: config invalid, keeping the running one" in res.stderr
        assert "poll_interval_s: must be > 0" in res.stderr
        assert sv.proc.poll() is None


# ---------------------------------------------------------------------------- the socket


class TestSocket:
    def test_is_0600_owned_by_us_while_running_and_removed_at_exit(
        self, running: tuple[Supervisor, Path]
    ) -> None:
        sv, _cfg = running
        path = sv.cwd / "state" / "control.sock"
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.geteuid()
        runtime = json.loads((sv.cwd / "logs" / "supervisor.json").read_text())
        assert runtime["control_socket"] == str(path)
        sv.signal(signal.SIGTERM)
        assert sv.wait(30) == 0
        assert not path.exists()

    @needs_root
    def test_another_user_cannot_use_it(self, tmp_path: Path, open_dir: Path) -> None:
        sv = start(config(tmp_path, state_dir=open_dir / "state"))
        path = open_dir / "state" / "control.sock"
        try:
            sv.wait_running(NAMES)
            out = as_nobody(lambda: control.call(path, "stop", "s1"))
            assert out["error"].startswith("ControlError: ")
            assert f"belongs to uid {os.geteuid()}, not to this user" in out["error"]
            out = as_nobody(lambda: raw_request(path, "stop", "s1"))  # the mode keeps it out
            assert out["error"].startswith("PermissionError")
            assert sv.shard("s1")["state"] == "running"
        finally:
            sv.kill_tree()

    @needs_root
    def test_a_peer_of_another_uid_is_refused_even_if_the_file_is_opened_up(
        self, tmp_path: Path, open_dir: Path
    ) -> None:
        sv = start(config(tmp_path, state_dir=open_dir / "state"))
        path = open_dir / "state" / "control.sock"
        try:
            sv.wait_running(NAMES)
            path.chmod(0o666)  # someone loosened it: SO_PEERCRED still refuses other uids
            nobody = pwd.getpwnam("nobody").pw_uid
            for command, shard in (("stop", "s1"), ("status", None), ("reload", None)):
                out = as_nobody(lambda c=command, s=shard: raw_request(path, c, s))
                assert out["result"] == {
                    "ok": False,
                    "error": f"refused: uid {nobody} may not control this supervisor "
                    f"(uid {os.geteuid()} only)",
                }
            assert sv.shard("s1")["state"] == "running"
            log = (sv.cwd / "logs" / "supervisor.log").read_text()
            assert f"control: refused a connection from uid {nobody}" in log
            assert raw_request(path, "status")["ok"] is True  # our own uid still may
        finally:
            sv.kill_tree()

    def test_the_client_refuses_a_socket_file_not_0600_or_not_ours(
        self, running: tuple[Supervisor, Path]
    ) -> None:
        sv, cfg = running
        path = sv.cwd / "state" / "control.sock"
        path.chmod(0o644)
        res = ctl(cfg, "stop", "s1")
        assert res.returncode == 1
        assert "has mode 0644, not 0600: refusing to use it" in res.stderr
        path.chmod(0o600)
        nobody = pwd.getpwnam("nobody").pw_uid
        if os.geteuid() == 0:
            os.chown(path, nobody, -1)
            res = ctl(cfg, "stop", "s1")
            assert res.returncode == 1
            assert f"belongs to uid {nobody}, not to this user" in res.stderr
            os.chown(path, 0, -1)
        assert sv.shard("s1")["state"] == "running"
        assert ctl(cfg, "status").returncode == 0

    def test_one_supervisor_per_state_dir_and_stale_sockets_replaced(self, tmp_path: Path) -> None:
        cfg = config(tmp_path)
        state = tmp_path / "state"
        state.mkdir()
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(state / "control.sock"))  # left by a supervisor that was SIGKILLed
        stale.close()
        sv = start(cfg)
        try:
            sv.wait_running(NAMES)
            assert ctl(cfg, "status").returncode == 0
            other = tmp_path / "second"
            other.mkdir()
            second = Supervisor(cfg, {**ENV, "SOROTASK_TEST_KEEPER": FAKE}, cwd=other)
            try:
                assert second.wait(30) == 1
                assert "another supervisor is listening on" in second.stderr()
                assert "may not share a state_dir" in second.stderr()
            finally:
                second.kill_tree()
            assert ctl(cfg, "status").returncode == 0  # the first one's socket is untouched
        finally:
            sv.kill_tree()

    def test_a_file_that_is_not_a_socket_is_not_replaced(self, tmp_path: Path) -> None:
        cfg = config(tmp_path)
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "control.sock").write_text("not a socket")
        sv = Supervisor(cfg, {**ENV, "SOROTASK_TEST_KEEPER": FAKE})
        try:
            assert sv.wait(30) == 1
            assert "control.sock exists and is not a socket: not replacing it" in sv.stderr()
            assert (tmp_path / "state" / "control.sock").read_text() == "not a socket"
        finally:
            sv.kill_tree()

    def test_no_socket_no_supervisor(self, tmp_path: Path) -> None:
        res = ctl(config(tmp_path), "status")
        assert res.returncode == 1
        assert "no control socket at" in res.stderr and "is the supervisor running" in res.stderr


# ---------------------------------------------------------------------------- the protocol


class TestRequests:
    @pytest.mark.parametrize(
        ("line", "want"),
        [
            (b'{"v":1,"command":"status"}', ("status", None)),
            (b'{"v":1,"command":"stop","shard":"s1"}', ("stop", "s1")),
            (b'{"v":1,"command":"reload"}', ("reload", None)),
        ],
    )
    def test_valid(self, line: bytes, want: tuple[str, str | None]) -> None:
        assert parse_request(line) == want

    @pytest.mark.parametrize(
        ("line", "why"),
        [
            (b"stop s1", "not JSON"),
            (b"[1]", "not a JSON object"),
            (b'{"command":"status"}', "unsupported protocol version None"),
            (b'{"v":1,"command":"kill"}', "unknown command 'kill'"),
            (b'{"v":1,"command":"stop"}', "stop needs a shard name"),
            (b'{"v":1,"command":"stop","shard":""}', "stop needs a shard name"),
            (b'{"v":1,"command":"status","shard":"s1"}', "status takes no shard"),
            (b'{"v":1,"command":"status","exec":"x"}', "unknown request fields ['exec']"),
        ],
    )
    def test_invalid(self, line: bytes, why: str) -> None:
        with pytest.raises(ValueError, match=why.replace("[", r"\[").replace("]", r"\]")):
            parse_request(line)

    def test_a_path_too_long_for_a_unix_socket_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(ControlError, match="longer than 107 bytes"):
            control.bind_socket(tmp_path / ("x" * 120) / "control.sock")
