"""PooledRpc against scripted JSON-RPC servers on 127.0.0.1: which endpoint answers, what is
asked again elsewhere, what is not, and that no credential reaches an error or a figure."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from shard_worker.errors import RpcResponseError, RpcTransportError
from shard_worker.rpc_pool import PooledRpc, make_rpc
from shard_worker.spec import SecretRef, WorkerSpec
from tests.support.rpc_proxy import serve_rpc_proxy

PASSPHRASE = "Test SDF Network ; September 2015"
CONTRACT = "CA3D5KRYM6CB7OWQ6TWYRR3Z4T7GNZLKERYNZGGA5SOAOPIFY6YQGAXE"

Answer = Callable[[str, dict[str, Any]], Any]


class Node:
    """A scripted endpoint: ``ledger`` is what it reports; ``answer`` may override a method."""

    def __init__(self, ledger: int = 100, answer: Answer | None = None) -> None:
        self.ledger = ledger
        self.answer = answer
        self.calls: list[str] = []
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        method = body["method"]
        self.calls.append(method)
        self.headers.append(dict(request.headers))
        result: Any = None
        if self.answer is not None:
            result = self.answer(method, body.get("params") or {})
            if isinstance(result, web.StreamResponse):
                return result
            if isinstance(result, dict) and "error" in result:
                return web.json_response({"jsonrpc": "2.0", "id": body["id"], **result})
        if result is None:
            result = {
                "getNetwork": {"passphrase": PASSPHRASE},
                "getLatestLedger": {"sequence": self.ledger, "closeTime": self.ledger * 5},
            }.get(method, {"entries": [], "latestLedger": self.ledger})
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})


@contextlib.asynccontextmanager
async def pool_of(*nodes: Node, **entry: Any) -> AsyncIterator[tuple[PooledRpc, list[str]]]:
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serve_rpc_proxy(n.handle)) for n in nodes]
        spec = WorkerSpec(
            name="t",
            rpc_url=urls[0],
            network_passphrase=PASSPHRASE,
            contract_id=CONTRACT,
            secret=SecretRef(env="UNUSED"),
            rpc_timeout_s=2.0,
            rpc_endpoints=tuple({"url": u, **entry} for u in urls),
        )
        rpc = make_rpc(spec, max_connections=4)
        assert isinstance(rpc, PooledRpc)
        try:
            await rpc.check_networks()
            rpc.fresh_reads_only = False
            yield rpc, urls
        finally:
            await rpc.aclose()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_a_request_error_is_not_asked_again_elsewhere() -> None:
    def bad_params(method: str, params: dict[str, Any]) -> Any:
        if method == "simulateTransaction":
            return {"error": {"code": -32602, "message": "invalid parameters"}}
        return None

    a, b = Node(answer=bad_params), Node(answer=bad_params)

    async def go() -> None:
        async with pool_of(a, b) as (rpc, _):
            with pytest.raises(RpcResponseError):
                await rpc.call("simulateTransaction", {"transaction": "x"})
        assert a.calls.count("simulateTransaction") + b.calls.count("simulateTransaction") == 1

    run(go())


def test_a_failed_attempt_is_answered_by_another_endpoint() -> None:
    def down(method: str, params: dict[str, Any]) -> Any:
        if method == "getLedgerEntries":
            return web.Response(status=502)
        return None

    a, b = Node(answer=down), Node()

    async def go() -> None:
        async with pool_of(a, b) as (rpc, _):
            for _ in range(6):
                res = await rpc.call("getLedgerEntries", {"keys": []})
                assert res == {"entries": [], "latestLedger": 100}
            first = rpc.status()["endpoints"][0]
            assert first["errors"].get("http_error", 0) >= 1
        assert b.calls.count("getLedgerEntries") == 6

    run(go())


def test_a_stale_read_is_asked_again_at_the_freshest_endpoint() -> None:
    fresh, behind = Node(ledger=200), Node(ledger=190)

    async def go() -> None:
        async with pool_of(fresh, behind) as (rpc, _):
            for _ in range(4):
                res = await rpc.call("getLedgerEntries", {"keys": []})
                assert res["latestLedger"] == 200
            lagging = rpc.status()["endpoints"][1]
            assert lagging["state"] == "demoted" and "lagging" in lagging["reasons"]
            assert lagging["lag_ledgers"] == 10
        # the lagging endpoint got the start-up checks, no read
        assert behind.calls.count("getLedgerEntries") == 0

    run(go())


def test_a_send_whose_answer_is_lost_goes_through_another_endpoint() -> None:
    def lose(method: str, params: dict[str, Any]) -> Any:
        return web.Response(status=503) if method == "sendTransaction" else None

    a, b = Node(answer=lose), Node(answer=lose)

    async def go() -> None:
        async with pool_of(a, b) as (rpc, _):
            with pytest.raises(RpcTransportError):
                await rpc.call("sendTransaction", {"transaction": "AAAA"}, attempts=2)
            assert rpc.send_failovers == 1
        assert a.calls.count("sendTransaction") == 1 and b.calls.count("sendTransaction") == 1

    run(go())


def test_header_values_go_to_the_endpoint_and_nowhere_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "v4lue-of-the-api-key"
    monkeypatch.setenv("POOL_TEST_KEY", secret)

    def refuse(method: str, params: dict[str, Any]) -> Any:
        return web.Response(status=401) if method == "getLedgerEntries" else None

    a = Node(answer=refuse)

    async def go() -> tuple[str, str]:
        async with pool_of(a, headers_from_env={"X-Api-Key": "POOL_TEST_KEY"}) as (rpc, _):
            with pytest.raises(RpcTransportError) as ei:
                await rpc.call("getLedgerEntries", {"keys": []}, attempts=1)
            return str(ei.value), repr(rpc.status()) + repr(rpc) + repr(rpc.pool.endpoints)

    error, shown = run(go())
    assert all(h.get("X-Api-Key") == secret for h in a.headers)
    assert secret not in error and secret not in shown


def test_an_error_naming_the_url_shows_the_label_instead() -> None:
    async def go() -> str:
        # a URL with credentials that nothing answers: the connection error names the host
        async with serve_rpc_proxy(Node().handle) as url:
            spec = WorkerSpec(
                name="t",
                rpc_url=url,
                network_passphrase=PASSPHRASE,
                contract_id=CONTRACT,
                secret=SecretRef(env="UNUSED"),
                rpc_timeout_s=1.0,
                http_client="httpx",
                rpc_endpoints=(
                    {"url": url},
                    {"url": "http://user:pa55word@127.0.0.1:1/rpc?key=hunter2"},
                ),
            )
            rpc = make_rpc(spec, max_connections=2)
            assert isinstance(rpc, PooledRpc)
            try:
                down = await rpc.check_networks()
                return " ".join(down) + rpc.pool.describe()
            finally:
                await rpc.aclose()

    text = run(go())
    assert "http://127.0.0.1:1/rpc" in text
    assert "pa55word" not in text and "hunter2" not in text


def test_no_attempt_starts_after_the_callers_deadline_and_retries_are_counted() -> None:
    def down(method: str, params: dict[str, Any]) -> Any:
        return web.Response(status=502) if method == "getLedgerEntries" else None

    a, b = Node(answer=down), Node(answer=down)

    async def go() -> None:
        async with pool_of(a, b) as (rpc, _):
            rpc.drain_kinds()
            with pytest.raises(RpcTransportError):
                await rpc.call("getLedgerEntries", {"keys": []}, deadline=time.monotonic())
            assert a.calls.count("getLedgerEntries") + b.calls.count("getLedgerEntries") == 1
            with pytest.raises(RpcTransportError):
                await rpc.call("getLedgerEntries", {"keys": []}, attempts=2)
            assert a.calls.count("getLedgerEntries") + b.calls.count("getLedgerEntries") == 3
            _failures, retries = rpc.drain_kinds()
            assert sum(retries.values()) == 1 and rpc.total_retries >= 1

    run(go())
