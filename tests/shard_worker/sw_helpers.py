"""Builders shared by the shard_worker tests: XDR made with stellar-sdk, a recording reporter."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from stellar_sdk import Address, Keypair, StrKey, scval
from stellar_sdk import xdr as sx

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from shard_worker.spec import CycleStats, SecretRef, WorkerSpec
from sorotask.contract import TaskConfig, encode_task_config, task_key_scval

CONTRACT_ID = StrKey.encode_contract(b"\x07" * 32)
TARGET_ID = StrKey.encode_contract(b"\x09" * 32)


def task_config(**kw: Any) -> TaskConfig:
    base: dict[str, Any] = {
        "creator": Keypair.random().public_key,
        "target": TARGET_ID,
        "function": "ping",
        "args": [scval.to_uint64(7), scval.to_string("hello"), scval.to_symbol("x")],
        "resolver": None,
        "interval": 60,
        "last_run": 1_000,
        "gas_balance": 5_000,
        "whitelist": [],
    }
    base.update(kw)
    return TaskConfig(**base)


def entry_data(
    cfg: TaskConfig, task_id: int = 1, contract_id: str = CONTRACT_ID
) -> sx.LedgerEntryData:
    return sx.LedgerEntryData(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.ContractDataEntry(
            ext=sx.ExtensionPoint(0),
            contract=Address(contract_id).to_xdr_sc_address(),
            key=task_key_scval(task_id),
            durability=sx.ContractDataDurability.PERSISTENT,
            val=encode_task_config(cfg),
        ),
    )


def entry_b64(cfg: TaskConfig, task_id: int = 1) -> str:
    return entry_data(cfg, task_id).to_xdr()


def counter_b64(value: int, contract_id: str = CONTRACT_ID) -> str:
    data = sx.LedgerEntryData(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.ContractDataEntry(
            ext=sx.ExtensionPoint(0),
            contract=Address(contract_id).to_xdr_sc_address(),
            key=scval.to_vec([scval.to_symbol("Counter")]),
            durability=sx.ContractDataDurability.PERSISTENT,
            val=scval.to_uint64(value),
        ),
    )
    return data.to_xdr()


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


@contextlib.asynccontextmanager
async def serve_rpc_proxy(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handler`` for ``POST /`` on 127.0.0.1 (a free port); yields its URL."""
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


class FakeRpc:
    """Answers each method from a script (a list, consumed in order); counts noted errors.
    For the pure-logic tests of the keeper's roles (no network)."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.noted: list[str] = []
        self.calls: list[tuple[str, dict[str, Any] | None]] = []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append((method, params))
        answer = self.script[method].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def note_error(self, method: str) -> None:
        self.noted.append(method)


class NullReporter:
    """Keeps the events it is told; everything else is ignored."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == kind]
