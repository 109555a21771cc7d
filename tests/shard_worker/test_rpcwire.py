"""The lean HTTP/1.1 client against raw scripted answers on 127.0.0.1 (the JSON-RPC behaviours
common to every transport are in test_rpc.py, which runs them with ``wire`` too)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shard_worker import rpcwire
from shard_worker.errors import TIMEOUT, TRANSPORT, RpcMalformedError, RpcTransportError
from shard_worker.rpcwire import WireClient

Answer = Callable[[bytes], bytes | None]


def ok(body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers).encode()
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


class Server:
    """Reads each request whole, answers with ``answer(request)`` (None: close at once)."""

    def __init__(self, answer: Answer, *, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for _ in range(100):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                out = self.answer(request)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def with_server(
    server: Server, body: Callable[[WireClient, str], Awaitable[Any]], **kw: Any
) -> Any:
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    client = WireClient(
        headers=kw.pop("headers", {"content-type": "application/json"}),
        max_connections=kw.pop("max_connections", 4),
        max_response_bytes=kw.pop("limit", 1 << 20),
    )
    try:
        return await body(client, f"http://127.0.0.1:{port}/rpc")
    finally:
        await client.close()
        srv.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def post_n(n: int, timeout_s: float = 2.0) -> Callable[[WireClient, str], Awaitable[Any]]:
    async def body(client: WireClient, url: str) -> list[Any]:
        return [await client.post(url, "m", b'{"a":1}', timeout_s) for _ in range(n)]

    return body


class TestAnswers:
    def test_sequential_posts_share_one_keep_alive_connection(self) -> None:
        server = Server(lambda req: ok(b'{"r":1}'))
        answers = run(with_server(server, post_n(3)))
        assert answers == [(200, b'{"r":1}', None)] * 3
        assert server.connections == 1
        head = server.requests[0].split(b"\r\n\r\n")[0]
        assert (
            head.startswith(b"POST /rpc HTTP/1.1\r\n") and b"content-type: application/json" in head
        )
        assert server.requests[0].endswith(b'\r\n\r\n{"a":1}')

    def test_a_chunked_answer_is_joined(self) -> None:
        chunked = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'3\r\n{"r\r\n5;ext=1\r\n":12}\r\n0\r\n\r\n'
        )
        server = Server(lambda req: chunked)
        answers = run(with_server(server, post_n(2)))
        assert answers == [(200, b'{"r":12}', None)] * 2
        assert server.connections == 1

    def test_an_answer_without_length_runs_until_the_close(self) -> None:
        server = Server(lambda req: b'HTTP/1.1 200 OK\r\n\r\n{"r":2}', close_after=True)
        answers = run(with_server(server, post_n(2)))
        assert answers == [(200, b'{"r":2}', None)] * 2
        assert server.connections == 2  # never reused after a read-to-close

    def test_status_and_retry_after_are_returned_not_followed(self) -> None:
        answer = b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n"
        redirect = (
            b"HTTP/1.1 307 Temporary\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"
        )
        assert run(with_server(Server(lambda r: answer), post_n(1))) == [(429, b"", "3")]
        assert run(with_server(Server(lambda r: redirect), post_n(1))) == [(307, b"", None)]

    def test_an_interim_answer_is_skipped(self) -> None:
        server = Server(lambda req: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}"))
        assert run(with_server(server, post_n(1))) == [(200, b"{}", None)]

    def test_connection_close_is_not_reused(self) -> None:
        server = Server(lambda req: ok(b"{}", "Connection: close"), close_after=True)
        run(with_server(server, post_n(3)))
        assert server.connections == 3

    def test_a_connection_idle_too_long_is_not_reused(self, monkeypatch: Any) -> None:
        monkeypatch.setattr(rpcwire, "KEEPALIVE_S", 0.0)
        server = Server(lambda req: ok(b"{}"))
        run(with_server(server, post_n(2)))
        assert server.connections == 2

    def test_the_host_header_carries_no_credentials(self) -> None:
        server = Server(lambda req: ok(b"{}"))

        async def body(client: WireClient, url: str) -> Any:
            url = url.replace("http://", "http://user:secret@")
            return await client.post(url, "m", b"{}", 2.0)

        run(with_server(server, body))
        assert b"secret" not in server.requests[0]


class TestFailures:
    @pytest.mark.parametrize(
        "answer",
        [
            ok(b"x" * 2000),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"800\r\n"
            + b"x" * 2048
            + b"\r\n",
        ],
        ids=["length", "chunked"],
    )
    def test_an_answer_over_the_cap_is_malformed(self, answer: bytes) -> None:
        with pytest.raises(RpcMalformedError, match="too large"):
            run(with_server(Server(lambda r: answer), post_n(1), limit=1000))

    @pytest.mark.parametrize(
        "answer",
        [b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", None],
        ids=["not-http", "bad-length", "closed"],
    )
    def test_a_garbled_or_dropped_answer_is_a_transport_error(self, answer: bytes | None) -> None:
        with pytest.raises(RpcTransportError) as err:
            run(with_server(Server(lambda r: answer), post_n(1)))
        assert err.value.kind == TRANSPORT

    def test_a_slow_answer_times_out_and_its_connection_is_dropped(self) -> None:
        calls: list[int] = []

        def answer(req: bytes) -> bytes | None:
            calls.append(1)
            return b"" if len(calls) == 1 else ok(b"{}")  # the first is never answered

        server = Server(answer)

        async def body(client: WireClient, url: str) -> Any:
            with pytest.raises(RpcTransportError) as err:
                await client.post(url, "m", b"{}", 0.2)
            assert err.value.kind == TIMEOUT
            return await client.post(url, "m", b"{}", 2.0)

        assert run(with_server(server, body)) == (200, b"{}", None)
        assert server.connections == 2

    def test_the_wait_for_a_free_connection_is_in_the_timeout(self) -> None:
        server = Server(lambda req: b"")  # never answers

        async def body(client: WireClient, url: str) -> Any:
            held = asyncio.ensure_future(client.post(url, "m", b"{}", 5.0))
            await asyncio.sleep(0.1)  # the one connection is in use
            started = asyncio.get_running_loop().time()
            with pytest.raises(RpcTransportError) as err:
                await client.post(url, "m", b"{}", 0.2)
            took = asyncio.get_running_loop().time() - started
            held.cancel()
            await asyncio.gather(held, return_exceptions=True)
            return err.value.kind, took

        kind, took = run(with_server(server, body, max_connections=1))
        assert kind == TIMEOUT and took < 2.0

    def test_a_refused_connection_is_a_transport_error(self) -> None:
        async def body() -> None:
            client = WireClient(headers={}, max_connections=1, max_response_bytes=1000)
            try:
                await client.post("http://127.0.0.1:1/", "m", b"{}", 2.0)
            finally:
                await client.close()

        with pytest.raises(RpcTransportError) as err:
            run(body())
        assert err.value.kind == TRANSPORT
