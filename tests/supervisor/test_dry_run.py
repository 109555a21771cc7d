"""``sorotask run --dry-run`` (issue 15): reads, classifies and simulates on a real devnet but
never signs or sends; says what it would execute and at what fee; needs only public keys."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from stellar_sdk import Keypair

from devnet.process import DevnetProcess
from shard_worker.accounts import load_source_accounts
from shard_worker.dryrun import WatchOnly
from shard_worker.errors import FatalConfigError
from shard_worker.spec import SecretRef, WorkerSpec
from supervisor.config import ConfigError, load_config
from tests.support.supervisor import (
    CONTRACT,
    PASSPHRASE,
    ROOT,
    Supervisor,
    base_config,
    wait_for,
    write_yaml,
)

pytestmark = pytest.mark.timeout(120)


def _config(tmp_path: Path, shard: str) -> Path:
    head = textwrap.dedent(
        f"""\
        network:
          rpc_url: "http://127.0.0.1:8000"
          network_passphrase: "{PASSPHRASE}"
          contract_id: "{CONTRACT}"
        shards:
        """
    )
    p = tmp_path / "c.yaml"
    p.write_text(head + textwrap.indent(textwrap.dedent(shard), "  "))
    return p


def _problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config(path, **kw)  # type: ignore[arg-type]
    return [str(p) for p in ei.value.problems]


class TestConfig:
    def test_a_public_key_is_enough_for_a_dry_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pk = Keypair.random().public_key
        monkeypatch.delenv("DRY_CH_NOT_SET", raising=False)
        p = _config(
            tmp_path,
            f"""\
            - name: a
              range: [1, null]
              public_key: {pk}
              channels: [{{secret_env: DRY_CH_NOT_SET}}]
            """,
        )
        plan = load_config(p, dry_run=True)
        (shard,) = plan.shards
        assert plan.dry_run and shard.spec.dry_run
        assert shard.spec.secret is None and shard.spec.public_key == pk
        assert shard.keeper_public_key == pk
        assert shard.spec.channel_secrets == ()  # a dry run sends from the keeper only
        spec = WorkerSpec.from_dict(json.loads(json.dumps(shard.spec.to_dict())))
        assert spec == shard.spec  # crosses the pipe

    def test_a_public_key_alone_is_refused_for_a_real_run(self, tmp_path: Path) -> None:
        pk = Keypair.random().public_key
        p = _config(tmp_path, f"- {{name: a, range: [1, null], public_key: {pk}}}\n")
        msg = next(x for x in _problems(p) if "public_key" in x)
        assert msg.startswith(f"{p}:6: shards[0].public_key")
        assert "can only dry-run (sorotask run --dry-run)" in msg
        assert "secret_env or secret_file" in msg

    def test_a_secret_given_with_a_public_key_must_be_its_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        kp, other = Keypair.random(), Keypair.random()
        monkeypatch.setenv("DRY_KS", kp.secret)
        shard = "- {name: a, range: [1, null], secret_env: DRY_KS, public_key: %s}\n"
        p = _config(tmp_path, shard % other.public_key)
        probs = _problems(p)
        assert any(f"not of public_key {other.public_key}" in x for x in probs), probs
        assert all(kp.secret not in x for x in probs)
        p = _config(tmp_path, shard % kp.public_key)
        assert load_config(p).shards[0].keeper_public_key == kp.public_key
        # a dry run with both reads no secret: the public key is used
        monkeypatch.delenv("DRY_KS")
        assert load_config(p, dry_run=True).shards[0].keeper_public_key == kp.public_key

    def test_a_bad_public_key_is_named_and_a_seed_there_is_not_echoed(self, tmp_path: Path) -> None:
        seed = Keypair.random().secret
        p = _config(tmp_path, f"- {{name: a, range: [1, null], public_key: {seed}}}\n")
        probs = _problems(p, dry_run=True)
        msg = next(x for x in probs if "public_key" in x)
        assert "never put one in the config" in msg
        assert all(seed not in x for x in probs)


class TestWatchOnly:
    def test_cannot_sign(self) -> None:
        kp = Keypair.random()
        w = WatchOnly(kp.public_key)
        assert w.public_key == kp.public_key and w.hint == kp.raw_public_key()[-4:]
        with pytest.raises(RuntimeError, match="nothing is ever signed"):
            w.sign(b"x")

    def test_a_dry_run_keeper_is_watch_only_even_with_a_secret(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        kp = Keypair.random()
        monkeypatch.setenv("DRY_SEED", kp.secret)
        spec = WorkerSpec(
            name="a",
            rpc_url="http://127.0.0.1:1",
            network_passphrase=PASSPHRASE,
            contract_id=CONTRACT,
            secret=SecretRef(env="DRY_SEED"),
            channel_secrets=(SecretRef(env="DRY_NOT_READ"),),
            dry_run=True,
        )
        (acc,) = load_source_accounts(spec)
        assert isinstance(acc.keypair, WatchOnly) and acc.is_keeper
        assert acc.public_key == kp.public_key

    def test_a_real_run_without_a_secret_is_a_config_error(self) -> None:
        spec = WorkerSpec(
            name="a",
            rpc_url="http://127.0.0.1:1",
            network_passphrase=PASSPHRASE,
            contract_id=CONTRACT,
            secret=None,
            public_key=Keypair.random().public_key,
        )
        with pytest.raises(FatalConfigError, match="can only dry-run"):
            load_source_accounts(spec)


class TestOnTheDevnet:
    def test_dry_run_names_the_due_tasks_and_the_devnet_records_nothing_sent(
        self, devnet: DevnetProcess, tmp_path: Path
    ) -> None:
        keeper = Keypair.random()
        devnet.rpc("devnet_fund", {"addresses": [keeper.public_key]})
        due_first, due_last = devnet.seed_tasks(count=4, interval=60)
        _nd_first, nd_last = devnet.seed_tasks(count=3, interval=60, last_run=2**40)  # not due
        due_ids = list(range(due_first, due_last + 1))
        all_ids = list(range(due_first, nd_last + 1))
        before = devnet.stats()

        doc = base_config(
            rpc_url=devnet.info.rpc_url,
            passphrase=devnet.info.network_passphrase,
            contract=devnet.info.contract_id,
            log_dir=str(tmp_path / "logs"),
        )
        doc["worker"]["poll_interval_s"] = 0.2
        doc["shards"] = [
            {"name": "dry", "range": [due_first, nd_last], "public_key": keeper.public_key}
        ]
        cfg = write_yaml(tmp_path / "c.yaml", doc)
        summary = tmp_path / "summary.json"
        sv = Supervisor(
            cfg, {}, extra_args=["--dry-run", "--duration", "6", "--summary-json", str(summary)]
        )
        try:
            sv.wait_url()

            def late() -> dict[str, int] | None:
                t = sv.shard("dry")["totals"]
                return t if t["oldest_overdue_ledgers"] >= 2 and t["due"] > 4 else None

            # nothing executes in a dry run: the 4 due tasks stay due and grow older, while
            # the per-cycle due count summed over cycles says ever more
            totals = wait_for(late, 20, interval=0.2, what="the due tasks to grow overdue")
            assert totals["due_now"] == 4 and totals["executed"] == 0
            table = subprocess.run(
                [sys.executable, "-m", "sorotask.cli", "status", "--url", str(sv.url)],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            header, row = table.stdout.splitlines()[1:3]
            cols = dict(zip(header.split(), row.split(), strict=False))
            assert cols["due_now"] == "4" and int(cols["overdue_ledgers"]) >= 2, table.stdout
            assert sv.wait(60) == 0, sv.stderr()
        finally:
            sv.kill_tree()

        # the devnet's own record: no transaction reached it, no task was executed
        after = devnet.stats()
        assert devnet.executions(all_ids) == []
        assert after["calls"].get("sendTransaction", 0) == before["calls"].get("sendTransaction", 0)
        for key in ("tx_applied", "tx_failed", "tx_rejected", "executions", "fees_total"):
            assert after[key] == before[key], key
        assert after["calls"].get("simulateTransaction", 0) > 0  # it did simulate

        # the would-execute list names exactly the due tasks, each with a fee
        out = json.loads(summary.read_text())
        final = out["shards"]["dry"]["final"]
        assert out["dry_run"] is True and final["dry_run"] is True
        listed = {task_id: fee for task_id, fee in final["would_execute"]}
        assert sorted(listed) == due_ids
        assert all(fee > 100 for fee in listed.values())  # inclusion fee + resource fee
        assert final["would_execute_count"] == 4
        assert final["would_execute_fees"] == sum(listed.values())
        assert out["executed"] == 0

        text = sv.stdout()
        assert "sorotask: dry run: nothing was signed or sent" in text
        m = re.search(r"shard dry: would execute 4 task\(s\) for (\d+) stroops", text)
        assert m and int(m.group(1)) == sum(listed.values())
        for task_id in due_ids:
            assert f"{task_id} ({listed[task_id]})" in text
        log = (tmp_path / "logs" / "dry.log").read_text()
        for task_id in due_ids:
            assert re.search(rf"would_execute task_id={task_id} fee={listed[task_id]} ", log)
        assert "would execute 4" in log  # the cycle line
        assert "DRY RUN" in (tmp_path / "logs" / "supervisor.log").read_text()

    def test_the_foreground_worker_dry_runs_from_a_public_key(
        self, devnet: DevnetProcess, tmp_path: Path
    ) -> None:
        keeper = Keypair.random()
        devnet.rpc("devnet_fund", {"addresses": [keeper.public_key]})
        first, last = devnet.seed_tasks(count=2, interval=60)
        ids = list(range(first, last + 1))
        before = devnet.stats()
        argv = [
            sys.executable,
            "-m",
            "sorotask.cli",
            "worker",
            "--rpc-url",
            devnet.info.rpc_url,
            "--network-passphrase",
            devnet.info.network_passphrase,
            "--contract-id",
            devnet.info.contract_id,
            "--public-key",
            keeper.public_key,
            "--dry-run",
            "--range",
            f"{first}:{last}",
            "--poll-interval",
            "0.2",
            "--state-dir",
            str(tmp_path / "state"),
        ]
        err = tmp_path / "worker.stderr"
        with err.open("wb") as fh:
            proc = subprocess.Popen(
                argv,
                stderr=fh,
                stdout=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and proc.poll() is None:
                    if err.read_text().count("would_execute task_id=") >= len(ids):
                        break
                    time.sleep(0.2)
                proc.send_signal(signal.SIGINT)
                assert proc.wait(20) == 0, err.read_text()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        text = err.read_text()
        for task_id in ids:
            assert re.search(rf"would_execute task_id={task_id} fee=\d+ ", text), text
        after = devnet.stats()
        assert devnet.executions(ids) == []
        assert after["calls"].get("sendTransaction", 0) == before["calls"].get("sendTransaction", 0)
        assert after["tx_applied"] == before["tx_applied"]
