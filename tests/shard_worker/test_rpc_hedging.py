"""The RPC client's hedged reads over real HTTP (a scripted JSON-RPC server on 127.0.0.1): on an
RPC that has been failing, a slow copy gets a second one and the first good answer wins; a
hedge starts only with a token of the request budget at hand; a healthy RPC is not hedged."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiohttp import web

from shard_worker.budget import DUE, SWEEP, RequestBudget
from shard_worker.rpc import RpcClient
from shard_worker.rpcbudget import BudgetedRpcClient, priority
from tests.support.rpc_proxy import serve_rpc_proxy

#: how long the server holds its first answer after the warm-up
HOLD_S = 1.5
#: calls before the timed one (the hedge policy's minimum of answers)
WARM_UP = 8


class SlowAfterFailures:
    """Answers getLatestLedger. During the warm-up every other request is refused (HTTP 503,
    retried by the client) if ``failing``; then one request's answer is held ``HOLD_S``;
    every other is answered at once."""

    def __init__(self, failing: bool) -> None:
        self.failing = failing
        self.requests = 0
        self.warm = False
        self.held = False

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.requests += 1
        if not self.warm:
            if self.failing and self.requests % 2:
                return web.Response(status=503)
        elif not self.held:
            self.held = True
            await asyncio.sleep(HOLD_S)
        result = {"id": "x", "protocolVersion": 23, "sequence": self.requests}
        return web.Response(
            body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}),
            content_type="application/json",
        )


def timed_call(
    make: Any, level: int | None = None, failing: bool = True
) -> tuple[Any, float, RpcClient, SlowAfterFailures]:
    """``WARM_UP`` calls (against a server refusing every other request if ``failing``), then
    one getLatestLedger, timed, through the client ``make(url)`` builds; (its result,
    seconds, client, server)."""
    server = SlowAfterFailures(failing)

    async def go() -> tuple[Any, float, RpcClient]:
        async with serve_rpc_proxy(server.handle) as url:
            client = make(url)
            try:
                with priority(DUE if level is None else level):
                    for _ in range(WARM_UP):
                        await asyncio.wait_for(client.call("getLatestLedger"), 10)
                    server.warm = True
                    client.drain_hedges()
                    before = client.total_hedges
                    t0 = time.monotonic()
                    got = await asyncio.wait_for(client.call("getLatestLedger"), 10)
                    client.total_hedges -= before
                return got, time.monotonic() - t0, client
            finally:
                await client.aclose()

    got, took, client = asyncio.run(go())
    return got, took, client, server


@pytest.mark.parametrize("transport", ["aiohttp", "wire"])
class TestHedgedReads:
    def test_a_slow_answer_is_overtaken_by_a_hedge(self, transport: str) -> None:
        got, took, client, server = timed_call(
            lambda url: RpcClient(url, transport=transport, hedge_copies=2)
        )
        assert took < HOLD_S / 2  # the second copy answered
        assert got["sequence"] == server.requests  # the copy's answer, not the held one
        assert client.drain_hedges() == {"getLatestLedger": 1}
        assert client.total_hedges == 1

    def test_without_hedging_the_slow_answer_is_waited_for(self, transport: str) -> None:
        _got, took, client, _server = timed_call(
            lambda url: RpcClient(url, transport=transport, hedge_copies=1)
        )
        assert took >= HOLD_S * 0.9
        assert client.total_hedges == 0

    def test_a_healthy_rpc_is_not_hedged(self, transport: str) -> None:
        # no failures in the warm-up: the slow answer is waited for, no request is added
        # (only a client's first requests, before it knows the RPC, may be hedged)
        _got, took, client, _server = timed_call(
            lambda url: RpcClient(url, transport=transport, hedge_copies=3), failing=False
        )
        assert took >= HOLD_S * 0.9
        assert client.total_hedges == 0

    def test_no_hedge_without_a_budget_token_at_hand(self, transport: str) -> None:
        # a burst of 17: the warm-up's 16 requests (8 calls, each refused once) and the
        # call's first copy; then one token every 4 s: none at hand for a hedge
        _got, took, client, _server = timed_call(
            lambda url: BudgetedRpcClient(
                url, budget=RequestBudget(0.25, burst=17), transport=transport, hedge_copies=3
            )
        )
        assert took >= HOLD_S * 0.9
        assert client.total_hedges == 0 and client.hedges_denied >= 1

    def test_no_hedge_for_the_sweep(self, transport: str) -> None:
        # a background read: nobody waits for it, a copy would only spend the budget
        _got, took, client, _server = timed_call(
            lambda url: BudgetedRpcClient(
                url, budget=RequestBudget(None), transport=transport, hedge_copies=3
            ),
            level=SWEEP,
        )
        assert took >= HOLD_S * 0.9 and client.total_hedges == 0

    def test_a_due_read_is_hedged_within_the_budget(self, transport: str) -> None:
        _got, took, client, _server = timed_call(
            lambda url: BudgetedRpcClient(
                url, budget=RequestBudget(50.0), transport=transport, hedge_copies=3
            )
        )
        assert took < HOLD_S / 2 and client.total_hedges == 1
