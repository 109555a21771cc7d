"""Fixtures for the shard_worker tests: a real devnet process and funded keepers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from stellar_sdk import Keypair
from sw_helpers import RecordingReporter

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from shard_worker.spec import SecretRef, WorkerSpec


@pytest.fixture(scope="module")
def devnet() -> Iterator[DevnetProcess]:
    with DevnetProcess(close_every=0.25, log_level="WARNING") as dn:
        yield dn


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


@pytest.fixture
def keys(devnet: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> Keys:
    return Keys(devnet, monkeypatch)


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
