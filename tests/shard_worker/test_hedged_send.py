"""A send whose answer is slow, on an RPC that has been refusing sends, gets a hedged copy of
the same envelope (issue 16): the copy is answered at once (DUPLICATE: the first reached the
queue), the task is executed once, and the copy is counted as a hedge.

A proxy in front of the real devnet refuses the first ``BUSY_SENDS`` ``sendTransaction``
requests (HTTP 503, as a busy stellar-rpc does: the keeper sends again), then holds the answer
to the next one (after the devnet has queued it) for ``HOLD_S``; every other request passes at
once. The devnet closes ledgers only when told (``close_every`` one hour).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from sorotask_core.exitcodes import ExitCode
from tests.support.devnet import DevnetOptions
from tests.support.keeper import Keys, RecordingReporter, make_spec
from tests.support.rpc_proxy import serve_rpc_proxy

#: how long the proxy holds the send's answer (beyond the keeper's rpc_timeout_s 3)
HOLD_S = 4.0
#: sends refused first (failures enough in the keeper's record of answers to hedge by time;
#: fewer than a round of copies, so the held one is not its last)
BUSY_SENDS = 4


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    return DevnetOptions(close_every=3600)


class HoldFirstSend:
    """Forwards every request to the devnet, but refuses the first ``BUSY_SENDS`` sends; the
    next one is carried out, then its answer held ``HOLD_S``. Records when each send after the
    refused ones arrived and when each answer left."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.client = httpx.AsyncClient(timeout=30)
        self.sends_in: list[float] = []
        self.sends_out: list[tuple[float, str]] = []
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        method = orjson.loads(raw).get("method")
        first = False
        if method == "sendTransaction":
            if self.refused < BUSY_SENDS:
                self.refused += 1
                return web.Response(status=503)
            self.sends_in.append(time.monotonic())
            first = len(self.sends_in) == 1
        resp = await self.client.post(
            self.upstream, content=raw, headers={"content-type": "application/json"}
        )
        if method == "sendTransaction":
            if first:
                await asyncio.sleep(HOLD_S)
            status = orjson.loads(resp.content).get("result", {}).get("status", "?")
            self.sends_out.append((time.monotonic(), status))
        return web.Response(
            body=resp.content, status=resp.status_code, content_type="application/json"
        )


def totals(rep: RecordingReporter, field: str) -> Counter[str]:
    total: Counter[str] = Counter()
    with rep.lock:
        for c in rep.cycles:
            total.update(getattr(c, field))
    return total


def queued_answers(rep: RecordingReporter) -> int:
    """sendTransaction answers the keeper counted that say queued."""
    sends = totals(rep, "send_results")
    return sends["DUPLICATE"] + sends["PENDING"]


async def wait_for(check: Any, limit_s: float) -> bool:
    """Poll ``check()`` (in a thread: it may call the devnet) every 50 ms, at most ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return False


def run_case(
    devnet: DevnetProcess, keys: Keys, copies: int
) -> tuple[RecordingReporter, HoldFirstSend, int, list[dict[str, Any]], int, float]:
    """One task due, its first send's answer held. Returns the reporter, the proxy, the task
    id, its executions, the exit code and the seconds from the first send to the first answer
    the keeper got that says queued."""
    _keeper, ref = keys.new()
    first, _ = devnet.seed_tasks(count=1, interval=3600)
    proxy = HoldFirstSend(devnet.info.rpc_url)
    rep = RecordingReporter()

    async def go() -> tuple[int, float]:
        async with serve_rpc_proxy(proxy.handle) as url:
            spec = make_spec(
                devnet,
                ref,
                rpc_url=url,
                range_first=first,
                range_last=first,
                tx_timeout_s=60,
                rpc_hedge_copies=copies,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(run_keeper(spec, rep, stop))
            try:
                await asyncio.to_thread(devnet.close_ledger)  # the keeper's first cycle reads
                assert await wait_for(lambda: devnet.stats()["pending"] >= 1, 15)
                assert await wait_for(lambda: queued_answers(rep) >= 1, 15)
                took = min(t for t, s in proxy.sends_out if s in ("PENDING", "DUPLICATE"))
                await asyncio.to_thread(devnet.close_ledger)
                assert await wait_for(lambda: bool(rep.events_of("executed")), 10)
                for _ in range(2):  # more ledgers: nothing else is sent for the task
                    await asyncio.to_thread(devnet.close_ledger)
                    await asyncio.sleep(0.3)
            finally:
                stop.set()
                code = await asyncio.wait_for(task, spec.stop_grace_s + 10)
                await proxy.client.aclose()
        return code, took - proxy.sends_in[0]

    code, took = asyncio.run(go())
    return rep, proxy, first, devnet.executions([first]), code, took


class TestHedgedSend:
    def test_a_slow_send_answer_is_overtaken_by_a_copy_of_the_envelope(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        rep, proxy, task_id, executions, code, took = run_case(devnet, keys, copies=3)
        assert code == ExitCode.OK
        # the copy's DUPLICATE came back long before the first copy's held PENDING
        assert took < 1.0, took
        assert len(proxy.sends_in) >= 2
        assert proxy.refused == BUSY_SENDS  # (their copies were replaced within the round)
        assert totals(rep, "rpc_hedges")["sendTransaction"] >= 1
        assert totals(rep, "send_results")["DUPLICATE"] >= 1
        assert [e["effect"] for e in executions] == ["executed"]  # once
        assert [e["task_id"] for e in rep.events_of("executed")] == [task_id]
        final = rep.goodbyes[0]
        assert final["rpc_hedges"] >= 1
        assert final["journal_left"] == 0 and final["tx_errors"] == 0

    def test_without_hedging_the_held_answer_costs_the_request_timeout(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        # the control: one copy at a time waits out rpc_timeout_s (3 s), then settles the
        # unknown outcome by a resend
        rep, _proxy, _task_id, executions, code, took = run_case(devnet, keys, copies=1)
        assert code == ExitCode.OK
        assert took >= 2.5, took
        assert not totals(rep, "rpc_hedges")
        assert [e["effect"] for e in executions] == ["executed"]
