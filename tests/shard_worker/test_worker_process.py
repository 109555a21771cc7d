"""The worker process without stellar-sdk, the stop drain, and ``sorotask worker --config``,
against a real devnet process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from sorotask_core.exitcodes import ExitCode
from tests.support.keeper import Keys, RecordingReporter, make_spec

ROOT = Path(__file__).resolve().parents[2]
LONG = 10**7

#: runs in a fresh interpreter: the supervisor's preload list, then one keeper until a task is
#: executed through a channel account (so the keeper signs an authorization entry)
NO_SDK_CHILD = r"""
import asyncio, importlib, json, sys
from supervisor.worker_process import PRELOAD
for name in PRELOAD:
    importlib.import_module(name)
from shard_worker.keeper import run_keeper
from shard_worker.spec import WorkerSpec

spec = WorkerSpec.from_dict(json.loads(sys.argv[1]))
executed = []

class Reporter:
    def hello(self, *a): pass
    def heartbeat(self): pass
    def cycle(self, stats): pass
    def fatal(self, *a): print("fatal", a, file=sys.stderr)
    def goodbye(self, final): pass
    def event(self, kind, data):
        if kind == "executed":
            executed.append(data["task_id"])
            stop.set()

async def main():
    global stop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(40, stop.set)
    code = await run_keeper(spec, Reporter(), stop)
    sdk = sorted(m for m in sys.modules if m.startswith("stellar_sdk"))
    print(json.dumps({"code": int(code), "executed": executed,
                      "sdk_loaded": "stellar_sdk" in sys.modules, "sdk_modules": sdk[:5],
                      "pydantic_loaded": "pydantic" in sys.modules}))

asyncio.run(main())
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class TestWorkerWithoutStellarSdk:
    def test_keeper_cycle_and_channel_execution_never_import_stellar_sdk(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        _keeper, ref = keys.new()
        _channel, ch_ref = keys.new()
        first, last = devnet.seed_tasks(count=1, interval=LONG)
        spec = make_spec(devnet, ref, range_first=first, range_last=last, channel_secrets=(ch_ref,))
        out = subprocess.run(
            [sys.executable, "-c", NO_SDK_CHILD, json.dumps(spec.to_dict())],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["code"] == ExitCode.OK
        assert result["executed"] == [first]
        assert result["sdk_loaded"] is False, result["sdk_modules"]
        assert result["pydantic_loaded"] is False  # the config validator stays in the supervisor
        execs = devnet.executions([first])
        assert [e["effect"] for e in execs] == ["executed"]


class TestStopDrain:
    def test_queued_executions_are_dropped_at_once_and_sent_ones_counted_apart(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        _keeper, ref = keys.new()
        first, last = devnet.seed_tasks(count=30, interval=LONG)
        ids = list(range(first, last + 1))
        spec = make_spec(
            devnet,
            ref,
            range_first=first,
            range_last=last,
            max_concurrent_executions=1,
            stop_grace_s=1.5,
            tx_timeout_s=60,
        )
        rep = RecordingReporter()

        async def go() -> tuple[int, float]:
            stop = asyncio.Event()
            task = asyncio.create_task(run_keeper(spec, rep, stop))
            # one transaction is sent and never applied; the other 29 wait in the queue
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not devnet.stats().get("tx_received"):
                if rep.cycles and any(c.due for c in rep.cycles):
                    await asyncio.sleep(1.0)
                    break
                await asyncio.sleep(0.1)
            t0 = time.monotonic()
            stop.set()
            code = await asyncio.wait_for(task, 30)
            return code, time.monotonic() - t0

        devnet.set_faults(never_apply_rate=1.0)
        try:
            code, stop_s = asyncio.run(go())
        finally:
            devnet.set_faults()
        assert code == ExitCode.OK
        final = rep.goodbyes[0]
        assert final["sent_unresolved_at_stop"] == 1
        assert final["dropped_unsent_at_stop"] == len(ids) - 1
        assert final["journal_left"] == 1
        # only the sent one waited for its grace; the queued ones did not hold up the stop
        assert 1.0 <= stop_s < spec.stop_grace_s + 4
        assert not [e for e in devnet.executions(ids) if e["effect"] == "executed"]


def _config(tmp: Path, dn: DevnetProcess, shards: list[dict[str, object]]) -> Path:
    cfg = {
        "network": {
            "rpc_url": dn.info.rpc_url,
            "network_passphrase": dn.info.network_passphrase,
            "contract_id": dn.info.contract_id,
        },
        "worker": {"poll_interval_s": 0.2, "stop_grace_s": 5, "rpc_timeout_s": 3},
        "supervisor": {"state_dir": str(tmp / "state"), "log_dir": str(tmp / "logs")},
        "shards": shards,
    }
    path = tmp / "keeper.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class TestWorkerCommandWithConfig:
    def test_runs_the_named_shard_until_sigterm(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        _kp_a, ref_a = keys.new()
        _kp_b, ref_b = keys.new()
        first, last = devnet.seed_tasks(count=3, interval=LONG)
        other_first, other_last = devnet.seed_tasks(count=3, interval=LONG)
        path = _config(
            tmp_path,
            devnet,
            [
                {"name": "a", "range": [first, last], "secret_env": ref_a.env},
                {"name": "b", "range": [other_first, other_last], "secret_env": ref_b.env},
            ],
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "sorotask.cli", "worker", "--config", str(path), "--shard", "a"],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 40
            mine = list(range(first, last + 1))
            while time.monotonic() < deadline and proc.poll() is None:
                if len(devnet.executions(mine)) >= len(mine):
                    break
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == ExitCode.OK, err[-2000:]
        execs = devnet.executions(list(range(first, other_last + 1)))
        assert sorted(e["task_id"] for e in execs) == mine  # shard b's tasks untouched
        assert {e["effect"] for e in execs} == {"executed"}
        assert "[a]" in err and "keeper started" in err
        assert (tmp_path / "state").exists()

    def test_every_config_problem_is_printed_and_exit_is_78(
        self, devnet: DevnetProcess, tmp_path: Path
    ) -> None:
        path = _config(
            tmp_path,
            devnet,
            [
                {"name": "a", "range": [1, 10]},
                {"name": "a", "range": [5, "x"], "secret_env": "SW_NOT_SET_ANYWHERE"},
            ],
        )
        out = subprocess.run(
            [sys.executable, "-m", "sorotask.cli", "worker", "--config", str(path), "--shard", "a"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == ExitCode.CONFIG
        lines = [ln for ln in out.stderr.splitlines() if ln.startswith("  ")]
        assert "invalid configuration (2 problems)" in out.stderr
        assert len(lines) == 2, out.stderr
        assert all(str(path) in ln for ln in lines)
        assert "shards[0]: missing secret_env or secret_file" in lines[0]
        assert "shards[1].range[1]" in lines[1]

    def test_unknown_shard_is_a_config_error_naming_the_shards(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        _kp, ref = keys.new()
        path = _config(tmp_path, devnet, [{"name": "a", "range": [1, 5], "secret_env": ref.env}])
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "sorotask.cli",
                "worker",
                "--config",
                str(path),
                "--shard",
                "zz",
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == ExitCode.CONFIG
        assert "no shard named 'zz'" in out.stderr and "a" in out.stderr
