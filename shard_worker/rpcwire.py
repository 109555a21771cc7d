"""A lean HTTP/1.1 POST client on asyncio's transports, for JSON-RPC (``http_client: wire``).

aiohttp costs about 80-120 us of CPU a request here (a request object, a cookie jar, a
payload writer task, a response object, several event loop turns); a keep-alive connection
that writes one prebuilt request and feeds the answer's bytes to httptools' response parser
(llhttp, the parser of Node.js and of uvicorn) in ``data_received`` needs a fraction of that
(``scripts/rpc_request_cpu.py`` prints both). What it does, as the other transports:

* keep-alive connections per origin (``http`` or ``https``), at most ``max_connections`` in
  use at once; a connection whose answer was not read to its end (a timeout, an error, a
  cancelled request) is closed, never reused;
* answers with a ``Content-Length``, ``Transfer-Encoding: chunked`` or read until the server
  closes; the body capped at ``max_response_bytes`` (:class:`RpcMalformedError` beyond);
* no redirect is followed (a 3xx is an answer); no compression is asked for;
* a timeout (connect and answer together) raises :class:`RpcTransportError` of kind
  ``timeout``; a refused, reset or dropped connection or a garbled answer one of kind
  ``transport``.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools

from shard_worker.errors import TIMEOUT, RpcMalformedError, RpcTransportError

__all__ = ["WireClient"]

#: the longest status line and headers accepted
MAX_HEAD_BYTES = 64 * 1024
#: an idle connection older than this is closed, not reused (as aiohttp's keepalive_timeout:
#: servers and load balancers drop idle connections, a request sent as they do would fail)
KEEPALIVE_S = 30.0


class _TooLarge(Exception):
    """The answer's body is over the cap."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; its answers are parsed by httptools (llhttp) into
    ``waiter``, one at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[tuple[int, bytes, str | None]] | None = None
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.keep_alive = True
        self.retry_after: str | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.head_done = False
        self.answer: tuple[int, bytes, str | None] | None = None
        self.chunked = False
        self.length: int | None = None
        self.head_bytes = 0

    # ---------------------------------------------------------------- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"retry-after":
            self.retry_after = value.strip().decode("latin-1")
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            self.chunked = True
        elif name == b"content-length":
            self.length = int(value)  # (llhttp checked it is a number)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.head_done = True
        if self.status >= 200 and self.length is not None and self.length > self.limit:
            raise _TooLarge(self.length)

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            raise _TooLarge
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.status < 200:  # 1xx: an interim answer, the real one follows
            self.head_done, self.body, self.size, self.retry_after = False, [], 0, None
            self.length, self.chunked = None, False
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.answer = (self.status, b"".join(self.body), self.retry_after)

    # ---------------------------------------------------------------- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.head_done and self.length is None and not self.chunked:
            # an answer delimited by the close: its body is what came
            waiter.set_result((self.status, b"".join(self.body), self.retry_after))
        else:
            waiter.set_exception(ConnectionResetError("connection closed before the answer"))

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: the connection is spent
            self.keep_alive = False
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc.__cause__
            waiter.set_exception(cause if isinstance(cause, _TooLarge) else exc)
            return
        except httptools.HttpParserError as exc:
            waiter.set_exception(exc)
            return
        if self.answer is not None:
            waiter.set_result(self.answer)
        elif not self.head_done:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                waiter.set_exception(httptools.HttpParserError("status line and headers too long"))

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Origin:
    """Where requests to one URL go, and their prebuilt request head."""

    __slots__ = ("head", "host", "key", "port", "server_hostname", "ssl")

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
        self.host = parts.hostname
        secure = parts.scheme == "https"
        self.port = parts.port or (443 if secure else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if secure else None
        self.server_hostname = self.host if secure else None
        self.key = (parts.scheme, self.host, self.port)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.netloc.rpartition("@")[2]  # never the URL's credentials
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")


class WireClient:
    """Keep-alive HTTP/1.1 POSTs (see the module's docstring)."""

    def __init__(
        self, *, headers: dict[str, str], max_connections: int, max_response_bytes: int
    ) -> None:
        self.headers = headers
        self.max_response_bytes = max_response_bytes
        self._origins: dict[str, _Origin] = {}
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[_Connection] = set()

    async def post(
        self, url: str, method: str, body: bytes, timeout_s: float
    ) -> tuple[int, bytes, str | None]:
        """POST ``body`` to ``url``: the answer's status, body and ``Retry-After``."""
        origin = self._origins.get(url)
        if origin is None:
            origin = self._origins[url] = _Origin(url, self.headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn: _Connection | None = None
        slots = self._slots
        if slots.locked():  # every connection in use: the wait for one is in the timeout
            try:
                async with asyncio.timeout_at(deadline):
                    await slots.acquire()
            except TimeoutError:
                raise RpcTransportError(method, "timeout", kind=TIMEOUT) from None
        else:
            await slots.acquire()
        try:
            try:
                conn = await self._connection(origin, deadline)
                waiter: asyncio.Future[tuple[int, bytes, str | None]] = loop.create_future()
                conn._reset()
                conn.waiter = waiter
                assert conn.transport is not None
                conn.transport.write(origin.head + b"%d\r\n\r\n" % len(body) + body)
                timer = loop.call_at(deadline, _expire, waiter)
                try:
                    answer = await waiter
                finally:
                    timer.cancel()
                    conn.waiter = None
            except BaseException as exc:
                if conn is not None:
                    conn.abort()
                    self._open.discard(conn)
                if isinstance(exc, TimeoutError):
                    raise RpcTransportError(method, "timeout", kind=TIMEOUT) from None
                if isinstance(exc, _TooLarge):
                    size = f" ({exc.args[0]} bytes)" if exc.args else ""
                    raise RpcMalformedError(method, f"response too large{size}") from None
                if isinstance(exc, OSError | httptools.HttpParserError | ssl.SSLError):
                    raise RpcTransportError(
                        method, f"transport error ({type(exc).__name__}: {exc})"
                    ) from None
                raise
            if conn.keep_alive and not conn.closed:
                conn.idle_since = loop.time()
                self._idle.setdefault(origin.key, []).append(conn)
            else:
                conn.abort()
                self._open.discard(conn)
        finally:
            slots.release()
        return answer

    async def _connection(self, origin: _Origin, deadline: float) -> _Connection:
        idle = self._idle.get(origin.key)
        loop = asyncio.get_running_loop()
        while idle:
            conn = idle.pop()
            transport = conn.transport
            fresh = loop.time() - conn.idle_since < KEEPALIVE_S
            if fresh and not conn.closed and transport is not None and not transport.is_closing():
                return conn
            conn.abort()
            self._open.discard(conn)
        limit = self.max_response_bytes
        async with asyncio.timeout_at(deadline):
            _, conn = await loop.create_connection(
                lambda: _Connection(limit),
                origin.host,
                origin.port,
                ssl=origin.ssl,
                server_hostname=origin.server_hostname,
            )
        self._open.add(conn)
        return conn

    async def close(self) -> None:
        for conn in list(self._open):
            conn.abort()
        self._open.clear()
        self._idle.clear()


def _expire(waiter: asyncio.Future[tuple[int, bytes, str | None]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
