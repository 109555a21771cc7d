"""The JSON-RPC client against a scripted aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from shard_worker.errors import RpcMalformedError, RpcResponseError, RpcTransportError
from shard_worker.rpc import RpcClient, as_int
from tests.support.sdk_client import HttpxAsyncClient

Handler = Callable[[dict[str, Any], int], Any]


class Script:
    """Serves responses from a list of behaviours, one per request (last one repeats)."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.seen.append(body)
        step = self.steps[min(len(self.seen) - 1, len(self.steps) - 1)]
        if callable(step):
            return await step(request, body)
        kind, value = step
        if kind == "result":
            return web.Response(
                body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": value})
            )
        if kind == "error":
            return web.Response(
                body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "error": value})
            )
        if kind == "status":
            return web.Response(status=value, body=b"")
        if kind == "raw":
            return web.Response(body=value)
        if kind == "sleep":
            await asyncio.sleep(value)
            return web.Response(
                body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": "late"})
            )
        raise AssertionError(kind)


async def _drop(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response(body=b"")


async def serve(script: Script) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/"


TRANSPORT = ["httpx"]


@pytest.fixture(params=["httpx", "aiohttp"], autouse=True)
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    TRANSPORT[0] = request.param
    yield request.param
    TRANSPORT[0] = "httpx"


async def call(script: Script, method: str = "getHealth", **kw: Any) -> tuple[Any, RpcClient]:
    runner, url = await serve(script)
    client = RpcClient(
        url,
        timeout_s=kw.pop("timeout_s", 2.0),
        backoff_base_s=0.01,
        transport=TRANSPORT[0],
        **kw,
    )
    try:
        return await client.call(method, {"a": 1}), client
    finally:
        await client.aclose()
        await runner.cleanup()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


class TestRpcClient:
    def test_result_is_returned_and_counted(self) -> None:
        script = Script(("result", {"status": "healthy"}))
        result, client = run(call(script))
        assert result == {"status": "healthy"}
        assert script.seen[0]["method"] == "getHealth" and script.seen[0]["params"] == {"a": 1}
        calls, errors, latency = client.drain_counters()
        assert calls == {"getHealth": 1} and errors == {} and latency["getHealth"] > 0

    def test_jsonrpc_error_carries_its_code_and_is_not_retried(self) -> None:
        script = Script(("error", {"code": -32602, "message": "invalid params"}))
        with pytest.raises(RpcResponseError) as err:
            run(call(script))
        assert err.value.code == -32602
        assert len(script.seen) == 1

    def test_internal_error_is_retried(self) -> None:
        script = Script(("error", {"code": -32603, "message": "internal"}), ("result", 3))
        result, _ = run(call(script))
        assert result == 3

    def test_503_then_success_is_retried(self) -> None:
        script = Script(("status", 503), ("status", 503), ("result", 5))
        result, client = run(call(script))
        assert result == 5
        calls, errors, _ = client.drain_counters()
        assert calls == {"getHealth": 3} and errors == {"getHealth": 2}

    def test_429_is_retried(self) -> None:
        result, _ = run(call(Script(("status", 429), ("result", 1))))
        assert result == 1

    def test_persistent_500_raises_transport_error_after_bounded_attempts(self) -> None:
        script = Script(("status", 500))
        with pytest.raises(RpcTransportError) as err:
            run(call(script, max_attempts=3))
        assert err.value.status == 500
        assert len(script.seen) == 3

    def test_404_is_not_retried(self) -> None:
        script = Script(("status", 404))
        with pytest.raises(RpcTransportError):
            run(call(script))
        assert len(script.seen) == 1

    def test_timeout_is_retried(self) -> None:
        script = Script(("sleep", 1.0), ("result", "ok"))
        result, _ = run(call(script, timeout_s=0.2))
        assert result == "ok"

    def test_dropped_connection_is_retried(self) -> None:
        result, _ = run(call(Script(_drop, ("result", 7))))
        assert result == 7

    @pytest.mark.parametrize(
        "raw",
        [
            b"<html>oops</html>",
            b"[1,2]",
            b'{"jsonrpc":"2.0","id":999,"result":1}',
            b'{"jsonrpc":"2.0","id":1}',
        ],
        ids=["not-json", "not-object", "wrong-id", "no-result"],
    )
    def test_malformed_responses_raise_malformed_error(self, raw: bytes) -> None:
        with pytest.raises(RpcMalformedError):
            run(call(Script(("raw", raw)), max_attempts=2))

    def test_malformed_error_object_raises_malformed_error(self) -> None:
        with pytest.raises(RpcMalformedError):
            run(call(Script(("error", "boom")), max_attempts=1))

    def test_huge_body_is_refused(self) -> None:
        big = b'{"jsonrpc":"2.0","id":1,"result":"' + b"x" * 300_000 + b'"}'
        with pytest.raises(RpcMalformedError):
            run(call(Script(("raw", big)), max_attempts=1, max_response_bytes=100_000))

    def test_connection_refused_is_a_transport_error(self) -> None:
        async def go() -> None:
            client = RpcClient(
                "http://127.0.0.1:9/", timeout_s=0.5, max_attempts=2, backoff_base_s=0.01
            )
            try:
                await client.call("getHealth")
            finally:
                await client.aclose()

        with pytest.raises(RpcTransportError):
            run(go())


class TestAsInt:
    def test_accepts_numbers_and_int64_strings(self) -> None:
        assert as_int({"a": 5}, "a", "m") == 5
        assert as_int({"a": "9007199254740993"}, "a", "m") == 9007199254740993

    @pytest.mark.parametrize("value", [None, "x", 1.5, True, [1]])
    def test_rejects_other_types(self, value: object) -> None:
        with pytest.raises(RpcMalformedError):
            as_int({"a": value}, "a", "m")

    def test_default_for_missing(self) -> None:
        assert as_int({}, "a", "m", 3) == 3


class TestHttpxAsyncClient:
    def test_post_json_returns_sdk_response(self) -> None:
        async def go() -> Any:
            script = Script(("result", {"x": 1}))
            runner, url = await serve(script)
            client = HttpxAsyncClient()
            try:
                resp = await client.post(url, json_data={"jsonrpc": "2.0", "id": 1, "method": "m"})
            finally:
                await client.close()
                await runner.cleanup()
            return resp

        resp = run(go())
        assert resp.status_code == 200 and resp.json()["result"] == {"x": 1}
