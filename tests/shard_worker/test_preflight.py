"""Start-up checks against the devnet: a ``tx_timeout_s`` too short for the network's ledger
time is refused with the reason (exit 78, no restart), measured from ``getHealth``."""

from __future__ import annotations

import asyncio
import time

import pytest

from devnet.process import DevnetProcess
from shard_worker.errors import FatalConfigError
from shard_worker.keeper import run_keeper
from shard_worker.preflight import check_tx_timeout
from shard_worker.spec import SecretRef, WorkerSpec
from shard_worker.txbounds import ledger_time_from_health
from sorotask_core.exitcodes import ExitCode
from tests.support.devnet import DevnetOptions
from tests.support.keeper import Keys, RecordingReporter, make_spec


def wait_for_ledgers(dn: DevnetProcess, n: int, limit_s: float = 10.0) -> None:
    """Until the devnet has closed ``n`` ledgers past its first (bounded)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        health = dn.rpc("getHealth")
        if int(health["latestLedger"]) - int(health["oldestLedger"]) >= n:
            return
        time.sleep(0.1)
    raise AssertionError("the devnet closed no ledgers")


def start(dn: DevnetProcess, keys: Keys, tx_timeout_s: int) -> tuple[RecordingReporter, int]:
    _kp, ref = keys.new()
    spec = make_spec(dn, ref, tx_timeout_s=tx_timeout_s)
    rep = RecordingReporter()

    async def go() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(run_keeper(spec, rep, stop))
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:  # accepted: it runs; stop it
            stop.set()
        return await asyncio.wait_for(task, 15)

    return rep, asyncio.run(go())


class TestTxTimeout:
    def test_the_ledger_time_is_measured_from_get_health(self, devnet: DevnetProcess) -> None:
        wait_for_ledgers(devnet, 2)
        assert ledger_time_from_health(devnet.rpc("getHealth")) == 5.0
        assert ledger_time_from_health({"oldestLedger": 5, "latestLedger": 5}) is None
        assert ledger_time_from_health("healthy") is None

    def test_too_short_for_five_second_ledgers_is_refused_at_start(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        wait_for_ledgers(devnet, 2)
        rep, code = start(devnet, keys, tx_timeout_s=10)
        assert code == ExitCode.CONFIG
        [(fatal_code, message)] = rep.fatals
        assert fatal_code == ExitCode.CONFIG
        assert "tx_timeout_s must be at least 15 s" in message and "txTOO_LATE" in message
        assert "every 5 s" in message

    def test_enough_for_five_second_ledgers_starts(self, devnet: DevnetProcess, keys: Keys) -> None:
        wait_for_ledgers(devnet, 2)
        rep, code = start(devnet, keys, tx_timeout_s=15)
        assert code == ExitCode.OK and rep.fatals == []

    def test_slower_ledgers_need_a_longer_time_bound(self, keys: Keys) -> None:
        # 10 s ledgers: 20 s passes the config check (made for 5 s ledgers) but not core's
        # check on this network
        with DevnetOptions(extra_args=("--ledger-seconds", "10")).start() as dn:
            wait_for_ledgers(dn, 2)
            keys.dn = dn
            rep, code = start(dn, keys, tx_timeout_s=20)
        assert code == ExitCode.CONFIG
        assert "at least 25 s" in rep.fatals[0][1] and "every 10 s" in rep.fatals[0][1]

    def test_the_refusal_shows_the_rpc_without_its_key(self) -> None:
        spec = WorkerSpec(
            name="t",
            rpc_url="https://rpc.example/v2/9f3c0e5a41b2d7e8aa01?apikey=qk-31337-zz",
            network_passphrase="p",
            contract_id="C",
            secret=SecretRef(env="UNUSED"),
            tx_timeout_s=20,
        )
        health = {
            "oldestLedger": 1,
            "latestLedger": 11,
            "oldestLedgerCloseTime": 1000,
            "latestLedgerCloseTime": 1100,
        }
        with pytest.raises(FatalConfigError) as err:
            check_tx_timeout(health, spec)
        assert "https://rpc.example/v2/*** closes a ledger every 10 s" in str(err.value)
        assert "9f3c0e5a41b2d7e8aa01" not in str(err.value) and "qk-31337" not in str(err.value)
