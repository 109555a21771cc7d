"""Malformed answers, 5xx and undecodable XDR (a corrupting proxy in front of the real
devnet): the keeper counts them, survives, and never executes from bad data."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
import orjson
import pytest
from aiohttp import web

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from sorotask_core.exitcodes import ExitCode
from tests.support.keeper import Keys, RecordingReporter, make_spec
from tests.support.rpc_proxy import serve_rpc_proxy

LONG = 10**7


class CorruptingProxy:
    def __init__(self, upstream: str, bad_key: str) -> None:
        self.upstream = upstream
        self.bad_key = bad_key
        self.counts: dict[str, itertools.count] = {}
        self.client = httpx.AsyncClient()

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw)
        method = body.get("method", "")
        n = next(self.counts.setdefault(method, itertools.count(1)))
        if method == "getLatestLedger" and n % 4 == 0:
            return web.Response(
                body=orjson.dumps(
                    {"jsonrpc": "2.0", "id": body["id"], "result": {"sequence": "abc"}}
                )
            )
        if method == "getLedgerEntries" and n % 5 == 0:
            return web.Response(body=b"<html>proxy error</html>")
        if n % 7 == 0:
            return web.Response(status=502)
        resp = await self.client.post(
            self.upstream, content=raw, headers={"content-type": "application/json"}
        )
        if method == "getLedgerEntries":
            data = orjson.loads(resp.content)
            for e in data.get("result", {}).get("entries", []):
                if e.get("key") == self.bad_key:
                    e["xdr"] = "AAAABgAAAAA="  # contract data, then truncated
            return web.Response(body=orjson.dumps(data))
        return web.Response(body=resp.content, status=resp.status_code)


class TestBadRpcAnswers:
    @pytest.mark.parametrize("read_mode", ["ledger_entries", "events"])
    def test_survives_counts_and_skips_undecodable_task(
        self, devnet: DevnetProcess, keys: Keys, read_mode: str
    ) -> None:
        from sorotask_core.contract import TaskKeys

        _, ref = keys.new()
        first, last = devnet.seed_tasks(count=5, interval=LONG)
        bad_id = first + 2
        proxy = CorruptingProxy(
            devnet.info.rpc_url, TaskKeys(devnet.info.contract_id).key_b64(bad_id)
        )
        rep = RecordingReporter()
        good = [i for i in range(first, last + 1) if i != bad_id]

        async def go() -> int:
            async with serve_rpc_proxy(proxy.handle) as url:
                spec = make_spec(
                    devnet,
                    ref,
                    rpc_url=url,
                    range_first=first,
                    range_last=last,
                    read_mode=read_mode,
                )
                stop = asyncio.Event()
                task = asyncio.create_task(run_keeper(spec, rep, stop))
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not task.done():
                    if len(await asyncio.to_thread(devnet.executions, good)) >= len(good):
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.5)
                stop.set()
                try:
                    return await asyncio.wait_for(task, 15)
                finally:
                    await proxy.client.aclose()

        assert asyncio.run(go()) == ExitCode.OK
        execs = devnet.executions(list(range(first, last + 1)))
        assert sorted(e["task_id"] for e in execs) == good
        assert {e["effect"] for e in execs} == {"executed"}
        assert sum(c.read_errors for c in rep.cycles) >= 1
        if read_mode == "ledger_entries":  # its cycle's own getLatestLedger is the one broken
            assert any(c.cycle_error for c in rep.cycles if c.cycle_error != "interrupted by stop")
        assert sum(sum(c.rpc_errors.values()) for c in rep.cycles) >= 1
        assert any(bad_id in d.get("task_ids", []) for d in rep.events_of("read_error"))
        assert not rep.fatals
