"""An httpx implementation of stellar-sdk's ``BaseAsyncClient``.

For tests that drive the devnet and the keeper's RPC client through a stock stellar-sdk client:
``SorobanServerAsync(client=HttpxAsyncClient())``. Only tests use it (it imports stellar-sdk,
which the worker process never does), so it lives with them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson
from stellar_sdk.client.base_async_client import BaseAsyncClient
from stellar_sdk.client.response import Response
from stellar_sdk.exceptions import ConnectionError as SdkConnectionError

__all__ = ["HttpxAsyncClient"]

_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class HttpxAsyncClient(BaseAsyncClient):
    """stellar-sdk ``BaseAsyncClient`` over httpx (for ``SorobanServerAsync(client=...)``)."""

    def __init__(self, client: httpx.AsyncClient | None = None, timeout_s: float = 10.0) -> None:
        self._own = client is None
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s))

    async def get(
        self,
        url: str,
        params: dict[str, str] | None = None,
        max_content_size: int | None = None,
    ) -> Response:
        try:
            resp = await self.client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise SdkConnectionError(exc) from exc
        if max_content_size is not None and len(resp.content) > max_content_size:
            from stellar_sdk.exceptions import ContentSizeLimitExceededError

            raise ContentSizeLimitExceededError(
                f"Response content size exceeds the limit of {max_content_size} bytes"
            )
        return Response(resp.status_code, resp.text, dict(resp.headers), str(resp.url))

    async def post(
        self,
        url: str,
        data: dict[str, str] | None = None,
        json_data: dict[str, Any] | None = None,
    ) -> Response:
        try:
            if json_data is not None:
                resp = await self.client.post(
                    url, content=orjson.dumps(json_data), headers=_JSON_HEADERS
                )
            else:
                resp = await self.client.post(url, data=data)
        except httpx.HTTPError as exc:
            raise SdkConnectionError(exc) from exc
        return Response(resp.status_code, resp.text, dict(resp.headers), str(resp.url))

    async def stream(  # type: ignore[override]
        self, url: str, params: dict[str, str] | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        raise NotImplementedError("streaming is a Horizon feature; Soroban RPC does not use it")
        yield {}  # pragma: no cover

    async def close(self) -> None:
        if self._own:
            await self.client.aclose()
