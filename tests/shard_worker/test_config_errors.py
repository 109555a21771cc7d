"""Level-4 configuration errors end the keeper with ExitCode.CONFIG and a clear message."""

from __future__ import annotations

import asyncio
import os

import pytest
from stellar_sdk import Keypair, StrKey

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from shard_worker.spec import SecretRef, WorkerSpec
from sorotask_core.exitcodes import ExitCode
from tests.support.keeper import Keys, RecordingReporter, make_spec


def run_fatal(spec: WorkerSpec) -> tuple[int, RecordingReporter]:
    rep = RecordingReporter()

    async def go() -> int:
        return await asyncio.wait_for(run_keeper(spec, rep, asyncio.Event()), 15)

    return asyncio.run(go()), rep


def assert_config_error(code: int, rep: RecordingReporter, *needles: str) -> str:
    assert code == ExitCode.CONFIG
    assert len(rep.fatals) == 1 and rep.fatals[0][0] == ExitCode.CONFIG
    message = rep.fatals[0][1]
    for needle in needles:
        assert needle in message, message
    secrets = [v for k, v in os.environ.items() if k.startswith("SW_TEST_SECRET_")]
    assert not any(s in message for s in secrets)
    assert not rep.goodbyes and not rep.cycles
    return message


class TestFatalConfig:
    def test_missing_secret_env(
        self, devnet: DevnetProcess, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("SW_ABSENT_SECRET", raising=False)
        code, rep = run_fatal(make_spec(devnet, SecretRef(env="SW_ABSENT_SECRET")))
        assert_config_error(code, rep, "SW_ABSENT_SECRET")

    def test_malformed_secret(self, devnet: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> None:
        bad = Keypair.random().secret[:-3] + "XYZ"
        monkeypatch.setenv("SW_TEST_SECRET_BAD", bad)
        code, rep = run_fatal(make_spec(devnet, SecretRef(env="SW_TEST_SECRET_BAD")))
        msg = assert_config_error(code, rep, "SW_TEST_SECRET_BAD", "malformed")
        assert bad not in msg

    def test_wrong_network_passphrase(self, devnet: DevnetProcess, keys: Keys) -> None:
        _, ref = keys.new()
        spec = make_spec(devnet, ref, network_passphrase="Test SDF Network ; September 2015")
        code, rep = run_fatal(spec)
        assert_config_error(code, rep, "wrong network", devnet.info.network_passphrase)

    def test_unknown_contract(self, devnet: DevnetProcess, keys: Keys) -> None:
        _, ref = keys.new()
        other = StrKey.encode_contract(b"\x42" * 32)
        code, rep = run_fatal(make_spec(devnet, ref, contract_id=other))
        assert_config_error(code, rep, other, "not found")

    def test_unfunded_keeper_account(self, devnet: DevnetProcess, keys: Keys) -> None:
        kp, ref = keys.new(fund=False)
        code, rep = run_fatal(make_spec(devnet, ref))
        assert_config_error(code, rep, kp.public_key, "does not exist", "fund it")

    def test_unfunded_channel_account(self, devnet: DevnetProcess, keys: Keys) -> None:
        _, ref = keys.new()
        ch, ch_ref = keys.new(fund=False)
        code, rep = run_fatal(make_spec(devnet, ref, channel_secrets=(ch_ref,)))
        assert_config_error(code, rep, ch.public_key, "channel account")

    # an account that cannot pay fees is no longer fatal (issue 13): the shard is paused, see
    # tests/shard_worker/test_fees.py::TestBalances::test_all_accounts_low_pauses_not_fatal

    def test_fee_settings_that_do_not_fit(self, devnet: DevnetProcess, keys: Keys) -> None:
        _, ref = keys.new()
        spec = make_spec(devnet, ref, fee_floor=5000, fee_max_inclusion=1000)
        code, rep = run_fatal(spec)
        assert_config_error(code, rep, "fee_max_inclusion (1000) is below fee_floor (5000)")

    def test_duplicate_channel_account(self, devnet: DevnetProcess, keys: Keys) -> None:
        _, ref = keys.new()
        code, rep = run_fatal(make_spec(devnet, ref, channel_secrets=(ref,)))
        assert_config_error(code, rep, "duplicates")
