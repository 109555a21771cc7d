"""Command-line overrides of ``sorotask run``: ``--status-address`` and ``--host-index``
(which a SIGHUP reload must keep)."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from supervisor.arbiter import keeper_entries_from_env
from tests.support.supervisor import FAKE, Supervisor, base_config, keypairs, wait_for, write_yaml

pytestmark = pytest.mark.timeout(90)

KEYS = keypairs(2)
ENV = {f"KO_{i}": kp.secret for i, kp in enumerate(KEYS)} | {"SOROTASK_TEST_KEEPER": FAKE}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, **sup: object) -> Path:
    doc = base_config(log_dir=str(tmp_path / "logs"), **sup)
    doc["shards"] = [
        {"name": f"h{i}", "range": [1 + 100 * i, 100 * (i + 1)], "secret_env": f"KO_{i}"}
        for i in range(2)
    ]
    return write_yaml(tmp_path / "c.yaml", doc)


class TestStatusAddressOverride:
    def test_serves_status_on_the_address_given_on_the_command_line(self, tmp_path: Path) -> None:
        port = _free_port()
        sv = Supervisor(
            _config(tmp_path), ENV, extra_args=["--status-address", f"127.0.0.1:{port}"]
        )
        try:
            assert sv.wait_url() == f"http://127.0.0.1:{port}"
            assert {s["name"] for s in sv.status()["shards"]} == {"h0", "h1"}
        finally:
            sv.kill_tree()

    @pytest.mark.parametrize("bad", ["9100", "host:", "127.0.0.1:99999"])
    def test_rejects_an_address_without_host_and_port(self, tmp_path: Path, bad: str) -> None:
        sv = Supervisor(_config(tmp_path), ENV, extra_args=["--status-address", bad])
        try:
            assert sv.wait(30) == 64
            assert "--status-address must be HOST:PORT" in sv.stderr()
        finally:
            sv.kill_tree()


class TestHostIndexOverride:
    def test_runs_only_its_slice_and_keeps_it_across_a_reload(self, tmp_path: Path) -> None:
        cfg = _config(tmp_path, host_count=2, host_index=0)
        sv = Supervisor(cfg, ENV, extra_args=["--host-index", "1"])
        log = tmp_path / "logs" / "supervisor.log"
        try:
            sv.wait_url()
            sv.wait_running(["h1"])
            assert [s["name"] for s in sv.status()["shards"]] == ["h1"]
            sv.signal(signal.SIGHUP)
            wait_for(lambda: "reload:" in log.read_text(), 15, what="reload logged")
            assert "reload: 0 changed, 0 added, 0 removed, 1 unchanged" in log.read_text()
            assert [s["name"] for s in sv.status()["shards"]] == ["h1"]
        finally:
            sv.kill_tree()


class TestTestHookIsConfined:
    def test_parses_stand_ins_per_shard_and_for_all(self) -> None:
        got = keeper_entries_from_env(f"{FAKE}; h1=tests.support.stand_ins:crash_keeper")
        assert got == {"*": FAKE, "h1": "tests.support.stand_ins:crash_keeper"}

    @pytest.mark.parametrize(
        "value", ["os:system", "h0=builtins:exec", "tests.support.stand_ins", "x=:fake_keeper"]
    )
    def test_refuses_anything_outside_the_stand_in_module(self, value: str) -> None:
        with pytest.raises(ValueError, match=r"may name only tests\.support\.stand_ins"):
            keeper_entries_from_env(value)

    def test_supervisor_refuses_to_start_with_a_foreign_entry(self, tmp_path: Path) -> None:
        sv = Supervisor(_config(tmp_path), {**ENV, "SOROTASK_TEST_KEEPER": "os:system"})
        try:
            assert sv.wait(30) == 78
            assert "may name only tests.support.stand_ins" in sv.stderr()
            assert not sv.descendants()
        finally:
            sv.kill_tree()

    def test_active_hook_is_announced_loudly(self, tmp_path: Path) -> None:
        sv = Supervisor(_config(tmp_path), ENV, extra_args=["--duration", "1"])
        try:
            assert sv.wait(30) == 0
            assert "TEST HOOK ACTIVE" in sv.stderr()
        finally:
            sv.kill_tree()
