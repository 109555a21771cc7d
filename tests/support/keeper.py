"""Running the real keeper in a test: a recording reporter, funded keys, worker specs and a
bounded run loop."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from stellar_sdk import Keypair

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from shard_worker.spec import CycleStats, SecretRef, WorkerSpec
from tests.support.ledger_entries import CONTRACT_ID


class RecordingReporter:
    """A Reporter that keeps everything it is told (thread-safe, never raises)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hellos: list[tuple[int, str, list[str]]] = []
        self.heartbeats = 0
        self.cycles: list[CycleStats] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.fatals: list[tuple[int, str]] = []
        self.goodbyes: list[dict[str, Any]] = []

    def hello(self, pid: int, keeper_public_key: str, channel_public_keys: list[str]) -> None:
        with self.lock:
            self.hellos.append((pid, keeper_public_key, list(channel_public_keys)))

    def heartbeat(self) -> None:
        with self.lock:
            self.heartbeats += 1

    def cycle(self, stats: CycleStats) -> None:
        with self.lock:
            self.cycles.append(stats)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((kind, dict(data)))

    def fatal(self, code: int, message: str) -> None:
        with self.lock:
            self.fatals.append((code, message))

    def goodbye(self, final: dict[str, Any]) -> None:
        with self.lock:
            self.goodbyes.append(dict(final))

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for k, d in self.events if k == kind]


class Keys:
    """Keypairs funded on the devnet, their seeds exported to env vars for the test."""

    def __init__(self, dn: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dn = dn
        self.mp = monkeypatch
        self.n = 0

    def new(self, fund: bool = True) -> tuple[Keypair, SecretRef]:
        kp = Keypair.random()
        self.n += 1
        name = f"SW_TEST_SECRET_{os.getpid()}_{id(self)}_{self.n}"
        self.mp.setenv(name, kp.secret)
        if fund:
            self.dn.rpc("devnet_fund", {"addresses": [kp.public_key]})
        return kp, SecretRef(env=name)


def offline_spec(**kw: Any) -> WorkerSpec:
    """A spec for units that never reach an RPC (nothing answers on port 1)."""
    return WorkerSpec(
        name="t",
        rpc_url="http://127.0.0.1:1/",
        network_passphrase="Test SDF Network ; September 2015",
        contract_id=CONTRACT_ID,
        secret=SecretRef(env="UNUSED"),
        **kw,
    )


def make_spec(dn: DevnetProcess, secret: SecretRef, **kw: Any) -> WorkerSpec:
    base = WorkerSpec(
        name="t",
        rpc_url=dn.info.rpc_url,
        network_passphrase=dn.info.network_passphrase,
        contract_id=dn.info.contract_id,
        secret=secret,
        poll_interval_s=0.2,
        rpc_timeout_s=3.0,
        stop_grace_s=5.0,
        max_concurrent_reads=4,
    )
    return replace(base, **kw)


async def run_until(
    spec: WorkerSpec,
    reporter: RecordingReporter,
    done: Callable[[], bool],
    limit_s: float,
    settle: float = 0.0,
) -> int:
    """Run a keeper until ``done()`` (polled) or ``limit_s``; then ``settle`` s more; stop."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_keeper(spec, reporter, stop))
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and not task.done():
        if await asyncio.to_thread(done):
            break
        await asyncio.sleep(0.2)
    if settle and not task.done():
        await asyncio.sleep(settle)
    stop.set()
    return await asyncio.wait_for(task, spec.stop_grace_s + 10)
