"""``sorotask worker`` argument handling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from stellar_sdk import Keypair

from shard_worker.cli import spec_from_args
from sorotask.worker_cli import build_parser, main
from sorotask_core.exitcodes import ExitCode
from tests.support.ledger_entries import CONTRACT_ID

BASE = ["--rpc-url", "http://127.0.0.1:1/", "--network-passphrase", "p", "--contract-id", "C1"]


class TestWorkerCli:
    def test_flags_become_a_worker_spec(self) -> None:
        args = build_parser().parse_args(
            [
                *BASE,
                "--secret-env",
                "K",
                "--range",
                "10:20",
                "--channel-secret-env",
                "C1",
                "--channel-secret-file",
                "/tmp/c2",
                "--read-mode",
                "simulate",
                "--max-concurrent-reads",
                "4",
                "--name",
                "s1",
                "--task-ids",
                "10,12",
            ]
        )
        spec = spec_from_args(args)
        assert (spec.range_first, spec.range_last, spec.task_ids) == (10, 20, (10, 12))
        assert spec.secret.env == "K" and spec.secret.file is None
        assert [c.env or c.file for c in spec.channel_secrets] == ["C1", "/tmp/c2"]
        assert spec.read_mode == "simulate" and spec.max_concurrent_reads == 4

    def test_a_repeated_rpc_url_gives_several_endpoints(self) -> None:
        args = [*BASE, "--rpc-url", "http://127.0.0.1:2/", "--secret-env", "K"]
        spec = spec_from_args(build_parser().parse_args(args))
        assert spec.rpc_url == "http://127.0.0.1:1/"
        assert [e["url"] for e in spec.rpc_endpoints] == [
            "http://127.0.0.1:1/",
            "http://127.0.0.1:2/",
        ]
        one = spec_from_args(build_parser().parse_args([*BASE, "--secret-env", "K"]))
        assert one.rpc_url == "http://127.0.0.1:1/" and one.rpc_endpoints == ()

    def test_open_ended_range(self) -> None:
        spec = spec_from_args(
            build_parser().parse_args([*BASE, "--secret-env", "K", "--range", "5:"])
        )
        assert (spec.range_first, spec.range_last) == (5, None)

    def test_secret_location_is_required(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(BASE) == ExitCode.USAGE

    def test_there_is_no_flag_taking_a_secret_value(self) -> None:
        flags = {a for action in build_parser()._actions for a in action.option_strings}
        assert "--secret" not in flags and "--seed" not in flags

    def test_dry_run_with_a_public_key_needs_no_secret(self) -> None:
        pk = "G" + "A" * 55
        spec = spec_from_args(build_parser().parse_args([*BASE, "--dry-run", "--public-key", pk]))
        assert spec.dry_run and spec.secret is None and spec.public_key == pk

    def test_a_public_key_without_dry_run_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main([*BASE, "--public-key", "G" + "A" * 55]) == ExitCode.USAGE
        assert "--public-key alone is for --dry-run" in capsys.readouterr().err

    def test_bad_range_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main([*BASE, "--secret-env", "K", "--range", "9:3"]) == ExitCode.USAGE

    def test_range_beyond_u64_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main([*BASE, "--secret-env", "K", "--range", "1:18446744073709551616"]) == (
            ExitCode.USAGE
        )
        assert "beyond u64 (18446744073709551615)" in capsys.readouterr().err
        spec = spec_from_args(
            build_parser().parse_args(
                [*BASE, "--secret-env", "K", "--range", "1:18446744073709551615"]
            )
        )
        assert spec.range_last == 2**64 - 1

    def test_missing_secret_env_exits_with_config_code(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("SW_CLI_MISSING", raising=False)
        code = main([*BASE, "--contract-id", CONTRACT_ID, "--secret-env", "SW_CLI_MISSING"])
        assert code == ExitCode.CONFIG
        assert "SW_CLI_MISSING" in capsys.readouterr().err

    def test_invalid_contract_id_exits_with_config_code(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert (
            main([*BASE, "--contract-id", "C" + "A" * 55, "--secret-env", "X"]) == ExitCode.CONFIG
        )


class TestWorkerCliConfigMode:
    def test_shard_without_config_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main([*BASE, "--secret-env", "K", "--shard", "a"]) == ExitCode.USAGE
        assert "--shard needs --config" in capsys.readouterr().err

    def test_config_with_shard_flags_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["--config", "x.yaml", "--rpc-url", "http://h/"]) == ExitCode.USAGE
        assert "--rpc-url" in capsys.readouterr().err

    def test_flag_mode_names_every_missing_flag(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--rpc-url", "http://h/"]) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert "--network-passphrase" in err and "--contract-id" in err and "--secret-env" in err

    def test_missing_config_file_exits_78(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--config", "/nonexistent/k.yaml", "--shard", "a"]) == ExitCode.CONFIG
        assert "config file does not exist" in capsys.readouterr().err


#: ``sorotask worker`` in the foreground with a client that cannot be built: the keeper crashes
#: and logs its stack trace to stderr
_CRASHING_WORKER = """
import sys
from shard_worker import keeper
from sorotask.worker_cli import main

def broken(*args, **kwargs):
    raise RuntimeError("no client today")

keeper.make_rpc = broken
sys.exit(main(sys.argv[1:]))
"""


def test_a_foreground_crash_trace_shows_no_variable_values(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/v2/9f3c0e5a41b2d7e8aa01c3d4?apikey=qk-31337-zz"
    seed = Keypair.random().secret
    flags = ["--rpc-url", url, "--network-passphrase", "p", "--contract-id", CONTRACT_ID]
    flags += ["--secret-env", "SW_CLI_CRASH", "--range", "1:5", "--state-dir", str(tmp_path)]
    res = subprocess.run(
        [sys.executable, "-c", _CRASHING_WORKER, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SW_CLI_CRASH": seed},
        cwd=tmp_path,
    )
    assert "keeper crashed: no client today" in res.stderr and "Traceback" in res.stderr
    for secret in ("9f3c0e5a41b2d7e8aa01c3d4", "qk-31337-zz", seed):
        assert secret not in res.stderr + res.stdout
