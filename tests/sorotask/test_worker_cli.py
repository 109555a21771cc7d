"""``sorotask worker``: its flags are the declared worker settings, and ``--config`` resolves
the shard without loading the config validator into the worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from stellar_sdk import Keypair

from sorotask.worker_cli import build_parser, main
from sorotask_core.exitcodes import ExitCode
from sorotask_core.settings import WORKER

BASE = ["--rpc-url", "http://127.0.0.1:1/", "--network-passphrase", "p", "--contract-id", "C1"]
FLAGGED = [s for s in WORKER if s.flag is not None]
CONTRACT = "CA3D5KRYM6CB7OWQ6TWYRR3Z4T7GNZLKERYNZGGA5SOAOPIFY6YQGAXE"


class TestFlagsFromTheDeclarations:
    def test_every_flag_has_the_declared_default(self) -> None:
        args = build_parser().parse_args([])
        assert FLAGGED
        for s in FLAGGED:
            assert getattr(args, s.name) == s.default, s.name

    def test_the_flags_are_the_ones_users_know(self) -> None:
        flags = {a for action in build_parser()._actions for a in action.option_strings}
        assert {s.flag for s in FLAGGED} == {
            "--poll-interval",
            "--read-mode",
            "--sweep-every-ledgers",
            "--max-requests-per-s",
            "--max-concurrent-reads",
            "--max-concurrent-executions",
            "--rpc-timeout",
            "--tx-timeout",
            "--stop-grace",
            "--base-fee",
            "--fee-strategy",
            "--fee-max-inclusion",
            "--state-dir",
            "--http-client",
            "--max-lag-ledgers",
            "--rpc-hedge-copies",
        }
        assert {s.flag for s in FLAGGED} <= flags

    def test_values_take_the_declared_type(self) -> None:
        args = build_parser().parse_args(
            ["--poll-interval", "2", "--tx-timeout", "19", "--log-level", "debug"]
        )
        assert args.poll_interval_s == 2.0 and isinstance(args.poll_interval_s, float)
        assert args.tx_timeout_s == 19 and isinstance(args.tx_timeout_s, int)
        assert args.log_level == "DEBUG"

    @pytest.mark.parametrize(
        ("flag", "value", "message"),
        [
            ("--max-concurrent-reads", "0", "must be >= 1, got 0"),
            ("--poll-interval", "0", "must be > 0, got 0"),
            ("--base-fee", "99", "must be >= 100, got 99"),
            ("--tx-timeout", "1.5", "expected an integer, got '1.5'"),
            ("--tx-timeout", "9", "must be at least 15 s"),
            ("--log-level", "LOUD", "must be one of TRACE"),
            ("--read-mode", "turbo", "invalid choice"),
        ],
    )
    def test_a_value_the_yaml_would_refuse_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
    ) -> None:
        assert main([*BASE, "--secret-env", "K", flag, value]) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert flag in err and message in err


class TestConfigIsResolvedOutsideTheWorker:
    def test_spec_comes_back_and_the_validator_never_loads(self, tmp_path: Path) -> None:
        cfg = tmp_path / "k.yaml"
        cfg.write_text(
            textwrap.dedent(
                f"""\
                network:
                  rpc_url: "http://127.0.0.1:1"
                  network_passphrase: "p"
                  contract_id: "{CONTRACT}"
                worker: {{poll_interval_s: 2}}
                supervisor: {{state_dir: st}}
                shards:
                  - {{name: a, range: [1, 10], secret_env: WCLI_A, worker: {{base_fee: 300}}}}
                  - {{name: b, range: [11, null], secret_env: WCLI_B}}
                """
            )
        )
        code = textwrap.dedent(
            f"""\
            import json, sys
            from sorotask.worker_cli import spec_from_config
            spec = spec_from_config({str(cfg)!r}, "a")
            heavy = ("pydantic", "yaml", "supervisor.config", "stellar_sdk")
            print(json.dumps({{
                "spec": spec.to_dict(),
                "loaded": sorted(m for m in sys.modules if m.split(".")[0] in heavy
                                 or m.startswith("supervisor.config")),
            }}))
            """
        )
        env = dict(os.environ)
        env.update(WCLI_A=Keypair.random().secret, WCLI_B=Keypair.random().secret)
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        got = json.loads(out.stdout)
        spec = got["spec"]
        assert (spec["name"], spec["range_first"], spec["range_last"]) == ("a", 1, 10)
        assert spec["poll_interval_s"] == 2 and spec["base_fee"] == 300
        assert spec["secret"] == {"env": "WCLI_A", "file": None}
        assert spec["state_dir"] == str((tmp_path / "st" / "a").resolve())
        assert env["WCLI_A"] not in out.stdout
        assert got["loaded"] == []

    def test_dry_run_resolves_a_public_key_only_shard(self, tmp_path: Path) -> None:
        from sorotask.worker_cli import spec_from_config

        pk = Keypair.random().public_key
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            textwrap.dedent(
                f"""\
                network:
                  rpc_url: "http://127.0.0.1:1"
                  network_passphrase: "p"
                  contract_id: "{CONTRACT}"
                shards:
                  - {{name: a, range: [1, 10], public_key: {pk}}}
                """
            )
        )
        spec = spec_from_config(str(cfg), "a", dry_run=True)
        assert not isinstance(spec, list), spec
        assert spec.dry_run and spec.secret is None and spec.public_key == pk
        problems = spec_from_config(str(cfg), "a")
        assert isinstance(problems, list)
        assert any("can only dry-run" in p for p in problems)

    def test_problems_come_back_as_lines(self, tmp_path: Path) -> None:
        from sorotask.worker_cli import spec_from_config

        cfg = tmp_path / "bad.yaml"
        cfg.write_text("network: {}\nshards: []\nworker: {poll_intervl_s: 1}\n")
        problems = spec_from_config(str(cfg), "a")
        assert isinstance(problems, list)
        assert any(p.startswith(f"{cfg}:3: worker.poll_intervl_s: unknown key") for p in problems)
        assert any("network.rpc_url: required" in p for p in problems)
