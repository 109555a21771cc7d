"""The RPC client's hedged reads over real HTTP (a scripted JSON-RPC server on 127.0.0.1):
a slow first copy gets a second one, the first good answer wins, and a hedge starts only with
a token of the request budget at hand."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from shard_worker.budget import SWEEP, RequestBudget
from shard_worker.rpc import RpcClient
from shard_worker.rpcbudget import BudgetedRpcClient, priority
from tests.support.rpc_proxy import serve_rpc_proxy

#: how long the server holds its first answer
HOLD_S = 1.5


class SlowFirst:
    """Answers getLatestLedger; the first request's answer is held ``HOLD_S``."""

    def __init__(self) -> None:
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.requests += 1
        if self.requests == 1:
            await asyncio.sleep(HOLD_S)
        result = {"id": "x", "protocolVersion": 23, "sequence": 100 + self.requests}
        return web.Response(
            body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}),
            content_type="application/json",
        )


def timed_call(make: Any, level: int | None = None) -> tuple[Any, float, RpcClient, SlowFirst]:
    """One getLatestLedger through the client ``make(url)`` builds; (result, seconds, client,
    server)."""
    server = SlowFirst()

    async def go() -> tuple[Any, float, RpcClient]:
        async with serve_rpc_proxy(server.handle) as url:
            client = make(url)
            try:
                t0 = time.monotonic()
                if level is None:
                    got = await asyncio.wait_for(client.call("getLatestLedger"), 10)
                else:
                    with priority(level):
                        got = await asyncio.wait_for(client.call("getLatestLedger"), 10)
                return got, time.monotonic() - t0, client
            finally:
                await client.aclose()

    got, took, client = asyncio.run(go())
    return got, took, client, server


class TestHedgedReads:
    def test_a_slow_answer_is_overtaken_by_a_hedge(self) -> None:
        got, took, client, server = timed_call(
            lambda url: RpcClient(url, transport="aiohttp", hedge_copies=2)
        )
        assert took < HOLD_S / 2  # the second copy answered (after ~0.1 s)
        assert got["sequence"] == 102
        assert client.drain_hedges() == {"getLatestLedger": 1}
        assert client.total_hedges == 1 and client.total_calls == 2
        assert server.requests == 2

    def test_without_hedging_the_slow_answer_is_waited_for(self) -> None:
        got, took, client, server = timed_call(
            lambda url: RpcClient(url, transport="aiohttp", hedge_copies=1)
        )
        assert took >= HOLD_S * 0.9
        assert got["sequence"] == 101
        assert client.total_hedges == 0 and server.requests == 1

    def test_no_hedge_without_a_budget_token_at_hand(self) -> None:
        # one request every 4 s, burst 1: the first copy took the only token
        got, took, client, _server = timed_call(
            lambda url: BudgetedRpcClient(
                url, budget=RequestBudget(0.25), transport="aiohttp", hedge_copies=3
            )
        )
        assert took >= HOLD_S * 0.9 and got["sequence"] == 101
        assert client.total_hedges == 0 and client.hedges_denied >= 1

    def test_no_hedge_for_the_sweep(self) -> None:
        # a background read: nobody waits for it, a copy would only spend the budget
        _got, took, client, _server = timed_call(
            lambda url: BudgetedRpcClient(
                url, budget=RequestBudget(None), transport="aiohttp", hedge_copies=3
            ),
            level=SWEEP,
        )
        assert took >= HOLD_S * 0.9 and client.total_hedges == 0

    def test_a_due_read_is_hedged_within_the_budget(self) -> None:
        _got, took, client, _server = timed_call(
            lambda url: BudgetedRpcClient(
                url, budget=RequestBudget(50.0), transport="aiohttp", hedge_copies=3
            )
        )
        assert took < HOLD_S / 2 and client.total_hedges == 1
