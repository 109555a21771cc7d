"""The JSON-RPC client against a scripted aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from devnet.process import DevnetProcess
from shard_worker.budget import RequestBudget
from shard_worker.errors import (
    RETRY_AFTER_CAP_S,
    RpcError,
    RpcMalformedError,
    RpcResponseError,
    RpcTransportError,
    kind_of_code,
    kind_of_status,
    parse_retry_after,
)
from shard_worker.rpc import RpcClient, as_int
from shard_worker.rpcbudget import BudgetedRpcClient
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


@pytest.fixture(params=["httpx", "aiohttp", "wire"], autouse=True)
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


PATH_KEY, QUERY_KEY, HEADER_KEY = "9f3c0e5a41b2d7e8aa01c3d4", "qk-31337-zz", "hk-271828-yy"


async def _secret_error(kind: str) -> str:
    """The text of the error a single-URL client raises when its server redirects it in a
    loop (aiohttp's error names the whole URL) or echoes the URL and the header back."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if kind == "redirect":
            raise web.HTTPPermanentRedirect(location=str(request.rel_url))
        message = f"no route {request.url} for {request.headers.get('X-Api-Key')}"
        error = {"code": -32601, "message": message}
        return web.Response(body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "error": error}))

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = RpcClient(
        f"http://127.0.0.1:{port}/v2/{PATH_KEY}?apikey={QUERY_KEY}",
        timeout_s=2.0,
        max_attempts=1,
        transport=TRANSPORT[0],
        headers={"X-Api-Key": HEADER_KEY},
    )
    try:
        with pytest.raises(RpcError) as err:
            await client.call("getHealth")
        return f"{err.value} {err.value!r} {getattr(err.value, 'rpc_message', '')}"
    finally:
        await client.aclose()
        await runner.cleanup()


class TestSecretsInErrors:
    @pytest.mark.parametrize("kind", ["redirect", "echo"])
    def test_no_error_of_a_single_url_shows_its_key(self, kind: str) -> None:
        text = run(_secret_error(kind))
        for key in (PATH_KEY, QUERY_KEY, HEADER_KEY):
            assert key not in text
        if kind == "echo":
            assert "/v2/***" in text  # the URL is shown by its label
        else:  # neither transport follows a redirect
            assert "HTTP 308" in text

    def test_a_redirect_is_not_followed_so_no_header_goes_elsewhere(self) -> None:
        async def go() -> tuple[str, list[dict[str, str]]]:
            elsewhere = Script(("result", "followed"))
            runner_b, url_b = await serve(elsewhere)

            async def moved(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
                raise web.HTTPTemporaryRedirect(location=url_b)

            runner_a, url_a = await serve(Script(moved))
            client = RpcClient(
                url_a, max_attempts=1, transport=TRANSPORT[0], headers={"X-Api-Key": HEADER_KEY}
            )
            try:
                with pytest.raises(RpcTransportError) as err:
                    await client.call("getHealth")
                return str(err.value), elsewhere.seen
            finally:
                await client.aclose()
                await runner_a.cleanup()
                await runner_b.cleanup()

        error, seen_elsewhere = run(go())
        assert error == "getHealth: HTTP 307" and seen_elsewhere == []


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


class TestKinds:
    """The pure classification the client (and the endpoint pool) use."""

    @pytest.mark.parametrize(
        ("status", "kind", "again"),
        [
            (503, "http_503", True),
            (429, "http_429", True),
            (500, "server_error", False),
            (404, "http_error", False),
        ],
    )
    def test_http_statuses(self, status: int, kind: str, again: bool) -> None:
        exc = RpcTransportError("m", f"HTTP {status}", status=status)
        assert kind_of_status(status) == kind and exc.kind == kind
        assert exc.try_again_later is again
        assert exc.retryable is (status != 404)

    @pytest.mark.parametrize(
        ("code", "kind", "retryable"),
        [
            (-32098, "queue_full", True),
            (-32001, "exec_timeout", True),
            (-32603, "internal", True),
            (-32602, "rpc_error", False),
        ],
    )
    def test_jsonrpc_codes(self, code: int, kind: str, retryable: bool) -> None:
        exc = RpcResponseError("m", code, "x")
        assert kind_of_code(code) == kind and exc.kind == kind and exc.retryable is retryable

    def test_retry_after_seconds_date_and_cap(self) -> None:
        now = 1_700_000_000.0
        assert parse_retry_after("2", now) == 2.0
        assert parse_retry_after(" 7 ", now) == 7.0
        date = email.utils.formatdate(now + 4, usegmt=True)
        assert parse_retry_after(date, now) == pytest.approx(4.0, abs=1.0)
        assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now) == 0.0
        assert parse_retry_after("86400", now) == RETRY_AFTER_CAP_S
        assert parse_retry_after("86400", now, cap_s=3) == 3
        assert parse_retry_after(None, now) is None
        assert parse_retry_after("soon", now) is None


class TestOverloadKinds:
    """Scripted answers: each overload kind retried and counted by kind."""

    @pytest.mark.parametrize(
        ("step", "kind"),
        [
            (
                ("error", {"code": -32098, "message": "rpc queue for getHealth surpassed"}),
                "queue_full",
            ),
            (
                ("error", {"code": -32001, "message": "request exceeded processing limit"}),
                "exec_timeout",
            ),
            (("status", 503), "http_503"),
            (("status", 429), "http_429"),
        ],
        ids=["-32098", "-32001", "503", "429"],
    )
    def test_each_overload_kind_is_retried_and_counted(self, step: Any, kind: str) -> None:
        result, client = run(call(Script(step, step, ("result", 9))))
        assert result == 9
        failures, retries = client.drain_kinds()
        assert failures == {kind: 2} and retries == {kind: 2}
        assert client.total_retries == 2

    def test_no_retry_past_the_callers_deadline(self) -> None:
        async def go() -> tuple[float, RpcClient, Script]:
            script = Script(("status", 503))
            runner, url = await serve(script)
            client = RpcClient(url, backoff_base_s=0.2, max_attempts=50, transport=TRANSPORT[0])
            t0 = time.monotonic()
            try:
                with pytest.raises(RpcTransportError) as err:
                    await client.call("getHealth", deadline=t0 + 0.5)
                assert err.value.kind == "http_503"
                return time.monotonic() - t0, client, script
            finally:
                await client.aclose()
                await runner.cleanup()

        elapsed, _client, script = run(go())
        assert elapsed < 0.6  # gave up before the deadline instead of waiting past it
        assert 1 <= len(script.seen) < 6

    def test_a_retry_storm_is_capped_by_the_retry_bucket(self) -> None:
        async def go() -> tuple[RpcClient, Script]:
            script = Script(("status", 503))
            runner, url = await serve(script)
            client = RpcClient(
                url,
                backoff_base_s=0.0,
                max_attempts=4,
                transport=TRANSPORT[0],
                max_retries_per_s=3,
            )
            try:
                results = await asyncio.gather(
                    *(client.call("getHealth") for _ in range(5)), return_exceptions=True
                )
                assert all(isinstance(r, RpcTransportError) for r in results)
                return client, script
            finally:
                await client.aclose()
                await runner.cleanup()

        client, script = run(go())
        # 5 first attempts, then only the bucket's 3 retries (not 5 x 3)
        assert len(script.seen) == 8
        assert client.total_retries == 3 and client.retries_denied == 5

    def test_each_attempt_takes_a_token_of_the_shared_budget(self) -> None:
        budget = RequestBudget(1000)

        async def go() -> Any:
            runner, url = await serve(Script(("status", 503), ("result", 1)))
            client = BudgetedRpcClient(
                url, budget=budget, backoff_base_s=0.01, transport=TRANSPORT[0]
            )
            try:
                return await client.call("getHealth")
            finally:
                await client.aclose()
                await runner.cleanup()

        result = run(go())
        assert result == 1
        assert budget.drain_stats()["granted"] == {"due": 2}


class TestOverloadOnTheDevnet:
    """The devnet's overload answers (devnet_setFaults), as stellar-rpc and providers give them."""

    @pytest.mark.parametrize(
        "fault",
        ["queue_full_rate", "timeout_rate", "http_503_rate", "http_429_rate"],
    )
    def test_each_overload_kind_is_retried_until_it_clears(
        self, devnet: DevnetProcess, fault: str
    ) -> None:
        kinds = {
            "queue_full_rate": "queue_full",
            "timeout_rate": "exec_timeout",
            "http_503_rate": "http_503",
            "http_429_rate": "http_429",
        }

        async def go() -> tuple[Any, RpcClient]:
            extra = {"retry_after_s": 0} if fault == "http_429_rate" else {}
            await asyncio.to_thread(
                devnet.set_faults, per_method={"getLatestLedger": {fault: 1.0}}, **extra
            )
            client = RpcClient(
                devnet.info.rpc_url,
                backoff_base_s=0.05,
                backoff_max_s=0.1,
                max_attempts=100,
                transport=TRANSPORT[0],
            )
            try:
                call_task = asyncio.create_task(
                    client.call("getLatestLedger", deadline=time.monotonic() + 10)
                )
                await asyncio.sleep(0.4)
                assert not call_task.done()  # still retrying the overload
                await asyncio.to_thread(devnet.set_faults)
                return await call_task, client
            finally:
                await asyncio.to_thread(devnet.set_faults)
                await client.aclose()

        result, client = run(go())
        assert int(result["sequence"]) >= 1000
        failures, retries = client.drain_kinds()
        assert failures.get(kinds[fault], 0) >= 2 and set(failures) == {kinds[fault]}
        assert retries[kinds[fault]] == failures[kinds[fault]]

    def test_retry_after_is_honoured(self, devnet: DevnetProcess) -> None:
        async def go() -> tuple[float, RpcClient]:
            await asyncio.to_thread(
                devnet.set_faults,
                per_method={"getLatestLedger": {"http_429_rate": 1.0}},
                retry_after_s=1,
            )
            client = RpcClient(
                devnet.info.rpc_url,
                backoff_base_s=0.01,
                max_attempts=100,
                transport=TRANSPORT[0],
            )
            t0 = time.monotonic()
            try:
                call_task = asyncio.create_task(client.call("getLatestLedger"))
                await asyncio.sleep(0.2)
                await asyncio.to_thread(devnet.set_faults)
                await call_task
                return time.monotonic() - t0, client
            finally:
                await asyncio.to_thread(devnet.set_faults)
                await client.aclose()

        elapsed, client = run(go())
        calls, _, _ = client.drain_counters()
        # one throttled attempt, then a retry only after the server's 1 s (not ~100 retries
        # 10 ms apart)
        assert calls == {"getLatestLedger": 2}
        assert elapsed >= 0.95
        failures, retries = client.drain_kinds()
        assert failures == {"http_429": 1} and retries == {"http_429": 1}

    def test_retry_after_past_the_deadline_gives_up_at_once(self, devnet: DevnetProcess) -> None:
        async def go() -> tuple[float, RpcError]:
            await asyncio.to_thread(
                devnet.set_faults,
                per_method={"getLatestLedger": {"http_429_rate": 1.0}},
                retry_after_s=5,
            )
            client = RpcClient(devnet.info.rpc_url, max_attempts=10, transport=TRANSPORT[0])
            t0 = time.monotonic()
            try:
                with pytest.raises(RpcError) as err:
                    await client.call("getLatestLedger", deadline=t0 + 1.0)
                return time.monotonic() - t0, err.value
            finally:
                await asyncio.to_thread(devnet.set_faults)
                await client.aclose()

        elapsed, err = run(go())
        assert elapsed < 0.9 and err.kind == "http_429"
        assert err.retry_after_s == pytest.approx(5.0)


class TestEndpointSeam:
    def test_each_attempt_asks_where_to_go_and_reports_how_it_went(self) -> None:
        class TwoUrls:
            def __init__(self, urls: list[str]) -> None:
                self.urls = urls
                self.seen: list[tuple[str, str, str | None]] = []

            def pick(self, method: str) -> str:
                return self.urls[len(self.seen) % 2]

            def outcome(
                self, url: str, method: str, error: RpcError | None, latency_s: float
            ) -> None:
                self.seen.append((url, method, None if error is None else error.kind))

        async def go() -> tuple[Any, TwoUrls]:
            busy, ok = Script(("status", 503)), Script(("result", 4))
            r1, url1 = await serve(busy)
            r2, url2 = await serve(ok)
            pool = TwoUrls([url1, url2])
            client = RpcClient(
                "http://127.0.0.1:9/",
                backoff_base_s=0.01,
                transport=TRANSPORT[0],
                endpoints=pool,
            )
            try:
                return await client.call("getHealth"), pool
            finally:
                await client.aclose()
                await r1.cleanup()
                await r2.cleanup()

        result, pool = run(go())
        assert result == 4
        assert [(m, k) for _, m, k in pool.seen] == [("getHealth", "http_503"), ("getHealth", None)]
        assert pool.seen[0][0] != pool.seen[1][0]
