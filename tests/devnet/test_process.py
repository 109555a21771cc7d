"""The devnet process: ready line, flags, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import psutil
from stellar_sdk import StrKey

from devnet.process import DevnetProcess
from devnet.sorotask_contract import SOROTASK_ID
from tests.support.devnet import wait_ledgers


class TestDevnetProcess:
    def test_ready_line_describes_the_network(self) -> None:
        with DevnetProcess(close_every=0.2, ledger_seconds=3) as dn:
            info = dn.info
            assert info.rpc_url.startswith("http://127.0.0.1:")
            assert info.friendbot_url == info.rpc_url + "/friendbot"
            assert info.contract_id == SOROTASK_ID and StrKey.is_valid_contract(SOROTASK_ID)
            assert dn.rpc("getNetwork")["passphrase"] == info.network_passphrase
            before = dn.rpc("getLatestLedger")
            after_seq = wait_ledgers(dn, 2)
            after = dn.rpc("getLatestLedger")
            assert after["sequence"] == after_seq
            elapsed = int(after["closeTime"]) - int(before["closeTime"])
            assert elapsed == 3 * (after_seq - before["sequence"])
            pid = dn.pid
        assert dn.proc is not None and dn.proc.returncode == 0
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive

    def test_tasks_flag_seeds_due_tasks(self) -> None:
        with DevnetProcess(tasks=25, close_every=1) as dn:
            assert dn.seed_tasks(count=1) == (26, 26)

    def test_cli_prints_exactly_one_json_line_and_stops_on_sigint(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sorotask.cli", "devnet", "--port", "0", "--close-every", "0.5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            info = orjson.loads(line)
            assert set(info) == {
                "rpc_url",
                "rpc_urls",
                "network_passphrase",
                "contract_id",
                "friendbot_url",
            }
            assert info["rpc_urls"] == [info["rpc_url"]]  # one replica unless --replicas
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            rest, _ = proc.communicate(timeout=10)
            assert rest == b""
            assert proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)

    def test_bad_flags_exit_with_usage(self) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "devnet", "--close-every", "0"],
            capture_output=True,
            timeout=30,
        )
        assert out.returncode == 64 and out.stdout == b""


OWNER = """
import sys, time
from devnet.process import DevnetProcess
dn = DevnetProcess(close_every=1.0, new_session=True)
dn.start()
print(dn.pid, flush=True)
time.sleep(60)
"""


class TestNoOrphanedDevnet:
    def test_devnet_exits_when_its_owner_is_killed(self) -> None:
        owner = subprocess.Popen(
            [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        try:
            assert owner.stdout is not None
            line = owner.stdout.readline()
            devnet_pid = int(line)
            devnet = psutil.Process(devnet_pid)
            assert devnet.is_running()
            assert os.getsid(devnet_pid) != os.getsid(owner.pid)  # its own session
            owner.kill()
            owner.wait(timeout=10)
            gone, alive = psutil.wait_procs([devnet], timeout=10)
            assert gone and not alive, "devnet outlived its owner"
        finally:
            if owner.poll() is None:
                owner.kill()
                owner.wait()
