"""Stand-in keepers for tests and chaos runs (never used unless explicitly selected).

Select one with the test hook environment variable ``SOROTASK_TEST_KEEPER``, e.g.
``SOROTASK_TEST_KEEPER="tests.support.stand_ins:fake_keeper"`` (every shard) or
``"b=tests.support.stand_ins:garbage_keeper"`` (one shard; ``;`` separates entries).
Each has the real keeper's signature ``(spec, reporter, stop) -> exit code`` and talks to the
supervisor only through the reporter, like the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from shard_worker.spec import CycleStats, WorkerSpec
from sorotask_core.exitcodes import ExitCode


def _public_key(spec: WorkerSpec) -> str:
    from supervisor.config import public_key_of

    return public_key_of(spec.secret)


async def _heartbeats(reporter: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        reporter.heartbeat()
        await asyncio.sleep(0.2)


async def fake_keeper(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    """Heartbeats and fake cycle statistics; drains instantly on stop."""
    try:
        pk = _public_key(spec)
    except ValueError as exc:
        reporter.fatal(ExitCode.CONFIG, str(exc))
        return ExitCode.CONFIG
    reporter.hello(os.getpid(), pk, [])
    hb = asyncio.create_task(_heartbeats(reporter, stop))
    n = 0
    last = spec.range_last or spec.range_first + 99
    while not stop.is_set():
        n += 1
        t0 = time.monotonic()
        stats = CycleStats(
            shard=spec.name,
            cycle=n,
            ledger=100 + n,
            ledger_time=1_700_000_000 + 5 * n,
            started_at=time.time(),
            duration_s=time.monotonic() - t0,
            checked=last - spec.range_first + 1,
            due=1,
            executed=1,
            skipped={"not_due": 2},
            rpc_calls={"getLedgerEntries": 1},
        )
        reporter.cycle(stats)
        reporter.event("executed", {"task_id": spec.range_first, "tx_hash": "00" * 32})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), spec.poll_interval_s)
    hb.cancel()
    reporter.goodbye({"cycles": n, "in_flight_left": 0})
    return ExitCode.OK


#: what :func:`memory_hog_keeper` holds on to (MiB, written so it is resident)
HOG_MIB = 64


async def memory_hog_keeper(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    """A fake keeper that holds ``HOG_MIB`` MiB of resident memory (the memory guard's test)."""
    hog = bytearray(b"\x01") * (HOG_MIB * 1024 * 1024)
    try:
        return await fake_keeper(spec, reporter, stop)
    finally:
        del hog


async def garbage_keeper(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    """Behaves, then writes garbage on the pipe (bypassing the reporter's encoding)."""
    pk = _public_key(spec)
    reporter.hello(os.getpid(), pk, [])
    reporter.heartbeat()
    await asyncio.sleep(0.5)
    reporter.connection.send_bytes(b"\x80\x04garbage, not json \xff")
    return await fake_keeper_no_hello(spec, reporter, stop)


async def oversized_keeper(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    """Behaves, then sends a message over the 1 MiB limit."""
    reporter.hello(os.getpid(), _public_key(spec), [])
    await asyncio.sleep(0.5)
    reporter.connection.send_bytes(b"{" + b" " * (2 << 20) + b"}")
    return await fake_keeper_no_hello(spec, reporter, stop)


async def out_of_order_keeper(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    """Sends a cycle report before its hello."""
    reporter.heartbeat()
    await asyncio.sleep(0.3)
    reporter.cycle({"shard": spec.name, "cycle": 1, "checked": 1})
    return await fake_keeper_no_hello(spec, reporter, stop)


async def fake_keeper_no_hello(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    hb = asyncio.create_task(_heartbeats(reporter, stop))
    await stop.wait()
    hb.cancel()
    return ExitCode.OK


async def crash_keeper(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    """Crashes shortly after start (a crash loop)."""
    reporter.heartbeat()
    await asyncio.sleep(0.05)
    raise RuntimeError("stand-in crash")


async def config_error_keeper(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    """Reports a configuration error, as the real keeper does for a bad secret."""
    reporter.fatal(ExitCode.CONFIG, "stand-in configuration error")
    return ExitCode.CONFIG


async def hang_keeper(spec: WorkerSpec, reporter: Any, stop: asyncio.Event) -> int:
    """Says hello, then blocks its event loop (no more heartbeats)."""
    reporter.hello(os.getpid(), _public_key(spec), [])
    time.sleep(3600)  # noqa: ASYNC251 - blocking on purpose
    return ExitCode.OK
