"""deploy/: every example config passes ``sorotask check-config``, every manifest parses and
agrees with the supervisor's settings, and the Grafana dashboard asks only for metrics that a
real supervisor serves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from stellar_sdk import Keypair

from sorotask_core.exitcodes import ExitCode
from supervisor.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXAMPLES = sorted((DEPLOY / "examples").glob("*.yaml"))


def check_config(
    path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sorotask.cli", "check-config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def secret_env_for(text: str, host_count: int = 1) -> dict[str, str]:
    """Fresh keys for every secret_env / secret_env_pattern the config names."""
    env: dict[str, str] = {}
    env.update({name: Keypair.random().secret for name in re.findall(r"secret_env:\s*(\w+)", text)})
    for pattern in re.findall(r'secret_env_pattern:\s*"([^"]+)"', text):
        for i in range(1, 65):
            env[pattern.replace("{index}", str(i))] = Keypair.random().secret
    return env


def systemd_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as {section: {key: [values]}} (keys may repeat, e.g. LoadCredential)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}:{n}: key outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}:{n}: not key=value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|min)?", value)
    assert m, value
    return float(m.group(1)) * (60 if m.group(2) == "min" else 1)


def k8s_docs() -> list[dict[str, Any]]:
    return [
        d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "sorotask.yaml").read_text()) if d
    ]


class TestExampleConfigs:
    @pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
    def test_passes_check_config_without_its_secrets(self, path: Path) -> None:
        res = check_config(path, "--skip-secrets", "--host-index", "0")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "OK" in res.stdout

    @pytest.mark.parametrize("name", ["testnet.yaml", "three-hosts.yaml", "sorotask.example.yaml"])
    def test_passes_check_config_with_real_keys_in_the_environment(self, name: str) -> None:
        path = DEPLOY / "examples" / name
        env = secret_env_for(path.read_text())
        res = check_config(path, "--host-index", "0", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        for secret in env.values():
            assert secret not in res.stdout + res.stderr

    def test_three_hosts_split_the_shards_between_them(self) -> None:
        path = DEPLOY / "examples" / "three-hosts.yaml"
        plans = [
            parse_config(path.read_text(), file=str(path), check_secrets=False, host_index=i)
            for i in range(3)
        ]
        local = [{s.spec.name for s in p.local_shards} for p in plans]
        assert all(local), local
        assert not (local[0] & local[1] or local[1] & local[2] or local[0] & local[2])
        assert set().union(*local) == {s.spec.name for s in plans[0].shards}

    def test_a_missing_secret_variable_is_reported_by_name(self) -> None:
        res = check_config(DEPLOY / "examples" / "testnet.yaml", env={"KEEPER_SECRET_A": ""})
        assert res.returncode == ExitCode.CONFIG
        assert "KEEPER_SECRET_B" in res.stdout + res.stderr


class TestKubernetesManifest:
    def test_parses_into_configmap_service_statefulset_and_pdb(self) -> None:
        kinds = [d["kind"] for d in k8s_docs()]
        assert kinds == ["ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"]

    def test_embedded_config_is_valid_for_every_pod_ordinal(self) -> None:
        cm = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")
        text = cm["data"]["config.yaml"]
        sts = next(d for d in k8s_docs() if d["kind"] == "StatefulSet")
        replicas = sts["spec"]["replicas"]
        names: list[set[str]] = []
        for ordinal in range(replicas):
            plan = parse_config(text, file="configmap", check_secrets=False, host_index=ordinal)
            assert plan.settings.host_count == replicas
            names.append({s.spec.name for s in plan.local_shards})
        assert all(names)
        assert sum(len(n) for n in names) == len(set().union(*names))

    def test_pods_probe_health_and_outlast_the_shutdown_grace(self) -> None:
        cm = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")
        grace = yaml.safe_load(cm["data"]["config.yaml"])["supervisor"]["shutdown_grace_s"]
        sts = next(d for d in k8s_docs() if d["kind"] == "StatefulSet")
        pod = sts["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        assert pod["spec"]["terminationGracePeriodSeconds"] > grace
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert sts["spec"]["podManagementPolicy"] == "OrderedReady"

    def test_keeper_reads_owner_only_copies_of_the_seeds(self, tmp_path: Path) -> None:
        """fsGroup turns secret-volume files 0440, which the keeper refuses (issue 15): an
        init container copies them owner-only into a memory volume; run its command here on
        0440 files and check the keeper accepts the copies (and refuses the originals)."""
        from shard_worker.errors import SecretError
        from shard_worker.secrets import load_keypair
        from shard_worker.spec import SecretRef
        from tests.support.supervisor import keypairs

        sts = next(d for d in k8s_docs() if d["kind"] == "StatefulSet")
        pod = sts["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        main_mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert volumes["keepers"]["emptyDir"]["medium"] == "Memory"
        assert "secret" in volumes["keepers-mounted"]
        assert "keepers-mounted" not in main_mounts
        init = pod["initContainers"][0]
        init_mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
        assert init_mounts["keepers"] == main_mounts["keepers"] == "/run/secrets/sorotask"
        cm = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")
        pattern = yaml.safe_load(cm["data"]["config.yaml"])["split"]["secret_file_pattern"]
        assert pattern.startswith(main_mounts["keepers"] + "/")

        src, dst = tmp_path / "mounted", tmp_path / "copies"
        src.mkdir()
        dst.mkdir()
        kps = keypairs(2)
        for i, kp in enumerate(kps, start=1):
            (src / f"keeper-{i}").write_text(kp.secret)
            (src / f"keeper-{i}").chmod(0o440)  # what fsGroup makes of defaultMode 0400
        script = init["command"][-1]
        script = script.replace(init_mounts["keepers-mounted"], str(src))
        script = script.replace(init_mounts["keepers"], str(dst))
        res = subprocess.run(
            [*init["command"][:-1], script], capture_output=True, text=True, timeout=30
        )
        assert res.returncode == 0, res.stderr
        for i, kp in enumerate(kps, start=1):
            copy = dst / f"keeper-{i}"
            assert copy.stat().st_mode & 0o777 == 0o400
            assert load_keypair(SecretRef(file=str(copy))).public_key == kp.public_key
            with pytest.raises(SecretError, match="chmod 600"):
                load_keypair(SecretRef(file=str(src / f"keeper-{i}")))


class TestSystemdUnit:
    def test_never_kills_workers_mid_transaction(self) -> None:
        unit = systemd_unit(DEPLOY / "systemd" / "sorotask.service")
        svc = unit["Service"]
        example = yaml.safe_load((DEPLOY / "examples" / "single-host-4-shards.yaml").read_text())
        assert svc["KillMode"] == ["mixed"]
        assert seconds(svc["TimeoutStopSec"][0]) > example["supervisor"]["shutdown_grace_s"]

    def test_is_hardened_and_does_not_restart_a_config_error(self) -> None:
        svc = systemd_unit(DEPLOY / "systemd" / "sorotask.service")["Service"]
        assert svc["Restart"] == ["on-failure"]
        assert str(int(ExitCode.CONFIG)) in svc["RestartPreventExitStatus"][0].split()
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "User": "sorotask",
        }.items():
            assert svc[key] == [value], key

    def test_is_type_notify_with_a_watchdog_the_supervisor_feeds(self) -> None:
        """The supervisor speaks sd_notify (supervisor/sdnotify.py, run against a fake
        NOTIFY_SOCKET in tests/supervisor/test_sdnotify.py): the unit asks for it, from the
        main PID only."""
        svc = systemd_unit(DEPLOY / "systemd" / "sorotask.service")["Service"]
        assert svc["Type"] == ["notify"]
        assert svc["NotifyAccess"] == ["main"]
        watchdog = seconds(svc["WatchdogSec"][0])
        assert 10 <= watchdog <= 120  # pings every WatchdogSec/2 from a loop that wakes each second
        assert svc["Restart"] == ["on-failure"]  # an expired watchdog is a failure: restarted

    def test_passes_systemd_analyze_verify(self, tmp_path: Path) -> None:
        """systemd's own parser knows every key (a misspelt WatchdogSec would be ignored)."""
        tool = shutil.which("systemd-analyze")
        if tool is None:
            pytest.skip("systemd-analyze is not installed")
        text = (DEPLOY / "systemd" / "sorotask.service").read_text()
        # the installed path does not exist here; verify checks that ExecStart is executable
        unit = tmp_path / "sorotask.service"
        unit.write_text(re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", text))
        res = subprocess.run(
            [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 0 and res.stderr.strip() == "", res.stdout + res.stderr

    def test_secrets_come_through_load_credential_for_every_example_shard(self) -> None:
        svc = systemd_unit(DEPLOY / "systemd" / "sorotask.service")["Service"]
        creds = {v.split(":", 1)[0] for v in svc["LoadCredential"]}
        example = yaml.safe_load((DEPLOY / "examples" / "single-host-4-shards.yaml").read_text())
        pattern = example["split"]["secret_file_pattern"]
        wanted = {Path(pattern.replace("{index}", str(i))).name for i in range(1, 5)}
        assert wanted <= creds
        assert "/run/credentials/sorotask.service/" in pattern


class TestContainer:
    def test_image_runs_as_non_root_with_a_health_check(self) -> None:
        text = (DEPLOY / "docker" / "Dockerfile").read_text()
        assert re.search(r"^USER (?!root)\w+", text, re.M)
        assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, re.M)

    @pytest.mark.parametrize("name", ["compose.devnet.yaml", "compose.quickstart.yaml"])
    def test_compose_files_parse_and_allow_the_drain(self, name: str) -> None:
        doc = yaml.safe_load((DEPLOY / "docker" / name).read_text())
        svc = doc["services"]["sorotask"]
        assert seconds(svc["stop_grace_period"]) > 30

    def test_devnet_compose_command_serves_status_on_the_given_address(
        self, tmp_path: Path
    ) -> None:
        """The compose file's own flags, run for real (the host part bound to 127.0.0.1 here)."""
        doc = yaml.safe_load((DEPLOY / "docker" / "compose.devnet.yaml").read_text())
        args = list(doc["services"]["sorotask"]["command"])
        i = args.index("--status-address")
        assert args[i + 1] == "0.0.0.0:9100"
        port = _free_port()
        args[i + 1] = f"127.0.0.1:{port}"
        res = subprocess.run(
            [sys.executable, "-m", "sorotask.cli", *args, "--duration", "4"],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert f"sorotask: status at http://127.0.0.1:{port}" in res.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestGrafanaDashboard:
    def test_every_metric_it_queries_is_served_by_a_running_supervisor(
        self, tmp_path: Path
    ) -> None:
        dash = json.loads((DEPLOY / "grafana" / "sorotask-dashboard.json").read_text())
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        wanted = {m for e in exprs for m in re.findall(r"\b(sorotask_[a-z_]+)", e)}
        assert wanted
        served = self._served_metric_names(tmp_path)
        # the RPC endpoint families exist only for shards with several endpoints
        # (network.rpc_urls); test_prometheus checks them against the collector given one
        only_with_endpoints = {m for m in wanted if m.startswith("sorotask_rpc_endpoint_")}
        assert wanted - only_with_endpoints <= served, sorted(wanted - served)

    def test_shows_due_now_the_oldest_overdue_and_the_execution_delay(self) -> None:
        dash = json.loads((DEPLOY / "grafana" / "sorotask-dashboard.json").read_text())
        exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
        assert "sorotask_tasks_due_now" in exprs
        assert "sorotask_oldest_overdue_ledgers" in exprs
        assert re.search(
            r"histogram_quantile\(0\.95, sum by \(shard, le\) "
            r"\(rate\(sorotask_execution_delay_ledgers_bucket",
            exprs,
        )
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids))

    @staticmethod
    def _served_metric_names(tmp_path: Path) -> set[str]:
        key = Keypair.random()
        cfg = {
            "network": {
                "rpc_url": "http://127.0.0.1:1",
                "network_passphrase": "Test ; none",
                "contract_id": "CAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSC4",
            },
            "worker": {"poll_interval_s": 0.2},
            "supervisor": {"status_address": "127.0.0.1:0", "log_dir": str(tmp_path / "logs")},
            "shards": [{"name": "a", "range": [1, 10], "secret_env": "DASH_KEY"}],
        }
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {
            **os.environ,
            "DASH_KEY": key.secret,
            "SOROTASK_TEST_KEEPER": "tests.support.stand_ins:fake_keeper",
            "PYTHONPATH": str(ROOT),  # the stand-ins live in the test tree
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sorotask.cli",
                "run",
                "--config",
                str(path),
                "--duration",
                "20",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        try:
            url = None
            deadline = time.monotonic() + 20
            assert proc.stdout is not None
            while url is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith("sorotask: status at http"):
                    url = line.split(" at ", 1)[1].strip()
            assert url, "supervisor printed no status URL"
            text = ""
            for _ in range(100):  # up to 10 s for the first cycle to show up
                text = httpx.get(url.rstrip("/") + "/metrics", timeout=5).text
                if "sorotask_cycles_total{" in text:
                    break
                time.sleep(0.1)
            # every family is declared (# TYPE), with or without samples yet
            names: set[str] = set()
            for m in re.finditer(r"^# TYPE (sorotask_[a-z_]+) (\w+)$", text, re.M):
                name = m.group(1)
                if m.group(2) == "counter" and not name.endswith("_total"):
                    name += "_total"
                if m.group(2) == "histogram":
                    names.update(f"{name}_{part}" for part in ("bucket", "sum", "count"))
                names.add(name)
            return names
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
