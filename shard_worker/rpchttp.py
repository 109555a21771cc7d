"""The HTTP transports of :class:`shard_worker.rpc.RpcClient` (httpx, aiohttp, and the lean
:mod:`shard_worker.rpcwire`): one POST each, the answer's status, body (size-capped) and
``Retry-After`` header; timeouts and connection errors raised as :class:`RpcTransportError` of
kind ``timeout`` / ``transport``. None follows a redirect (a 3xx is an answer like any other
status)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from shard_worker.errors import TIMEOUT, RpcMalformedError, RpcTransportError
from shard_worker.rpcwire import WireClient

if TYPE_CHECKING:
    import httpx

__all__ = ["JSON_HEADERS", "HttpTransports"]

JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class HttpTransports:
    """The POSTs; the client sets ``url``, ``http`` (httpx), ``_session`` (aiohttp), ``_wire``
    (wire), ``max_connections`` and ``max_response_bytes``."""

    url: str
    http: httpx.AsyncClient | None
    _session: aiohttp.ClientSession | None
    _wire: WireClient | None
    max_connections: int
    max_response_bytes: int
    #: the JSON headers and an endpoint's extra ones (an API key: never logged)
    _headers: dict[str, str]

    async def _close_pools(self) -> None:
        """Close the aiohttp session's and the wire client's connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._wire is not None:
            await self._wire.close()
            self._wire = None

    async def _post_httpx(
        self, url: str, method: str, body: bytes, timeout_s: float
    ) -> tuple[int, bytes, str | None]:
        import httpx

        assert self.http is not None
        try:
            request = self.http.build_request(
                "POST",
                url,
                content=body,
                headers=self._headers,
                timeout=httpx.Timeout(timeout_s),
            )
            response = await self.http.send(request, stream=True)
            try:
                status = response.status_code
                retry_after = response.headers.get("retry-after")
                length = response.headers.get("content-length")
                if (
                    length is not None
                    and length.isdigit()
                    and int(length) > self.max_response_bytes
                ):
                    raise RpcMalformedError(method, f"response too large ({length} bytes)")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise RpcMalformedError(method, "response too large")
                    chunks.append(chunk)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise RpcTransportError(
                method, f"timeout ({type(exc).__name__})", kind=TIMEOUT
            ) from None
        except httpx.HTTPError as exc:
            raise RpcTransportError(
                method, f"transport error ({type(exc).__name__}: {exc})"
            ) from None
        return status, chunks[0] if len(chunks) == 1 else b"".join(chunks), retry_after

    async def _post_wire(
        self, url: str, method: str, body: bytes, timeout_s: float
    ) -> tuple[int, bytes, str | None]:
        wire = self._wire
        if wire is None:
            wire = self._wire = WireClient(
                headers=self._headers,
                max_connections=self.max_connections,
                max_response_bytes=self.max_response_bytes,
            )
        return await wire.post(url, method, body, timeout_s)

    async def _post_aiohttp(
        self, url: str, method: str, body: bytes, timeout_s: float
    ) -> tuple[int, bytes, str | None]:
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_connections, keepalive_timeout=30.0, force_close=False
                ),
            )
        limit = self.max_response_bytes
        try:
            async with session.post(
                url,
                data=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                # as httpx: a redirect is an answer (HTTP 3xx), never followed; following one
                # would send the endpoint's headers (an API key) wherever it points
                allow_redirects=False,
            ) as resp:
                length = resp.content_length
                if length is not None and length > limit:
                    raise RpcMalformedError(method, f"response too large ({length} bytes)")
                if length is not None:
                    content = await resp.read()
                else:
                    parts: list[bytes] = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > limit:
                            raise RpcMalformedError(method, "response too large")
                        parts.append(chunk)
                    content = b"".join(parts)
                return resp.status, content, resp.headers.get("Retry-After")
        except TimeoutError:
            raise RpcTransportError(method, "timeout", kind=TIMEOUT) from None
        except aiohttp.ClientError as exc:
            raise RpcTransportError(
                method, f"transport error ({type(exc).__name__}: {exc})"
            ) from None
