"""The HTTP side: aiohttp app, JSON-RPC 2.0 dispatch (single and batch), limits and faults, the
ledger-close timer and friendbot. The methods themselves are in devnet/rpc_methods.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from aiohttp import web
from loguru import logger

from devnet.accounts import AccountError
from devnet.overload import Overloaded, exceeded_limit, queue_full
from devnet.replica import Replica
from devnet.rpc_methods import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Method,
    RpcError,
    RpcMethods,
)

MAX_BODY_BYTES = 512 * 1024
#: jrpc2's HTTP bridge answers an unparsable body with HTTP 500 and this text (plus a newline)
PARSE_FAILURE_TEXT = "[-32700] invalid request value\n"


class RpcServer:
    """One endpoint: ``node`` is a replica of the chain (its own faults and lag); only the
    server with ``closes_ledgers`` runs the ledger-close timer."""

    def __init__(
        self,
        node: Replica,
        *,
        close_every: float = 5.0,
        base_latency_ms: float = 0.0,
        closes_ledgers: bool = True,
    ) -> None:
        self.node = node
        self.closes_ledgers = closes_ledgers
        self.close_every = close_every
        self.base_latency_ms = base_latency_ms
        node.clock.close_every = close_every
        self._closer: asyncio.Task[None] | None = None
        self.rpc = RpcMethods(node)
        self.methods: dict[str, Method] = self.rpc.table()

    @property
    def friendbot_url(self) -> str:
        return self.rpc.friendbot_url

    @friendbot_url.setter
    def friendbot_url(self, url: str) -> None:
        self.rpc.friendbot_url = url

    # app ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/", self.handle_rpc)
        app.router.add_route("*", "/friendbot", self.handle_friendbot)
        if self.closes_ledgers:
            app.on_startup.append(self._start_closer)
            app.on_cleanup.append(self._stop_closer)
        return app

    async def _start_closer(self, _app: web.Application) -> None:
        self._closer = asyncio.create_task(self._close_loop())

    async def _stop_closer(self, _app: web.Application) -> None:
        if self._closer is not None:
            self._closer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._closer

    async def _close_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.close_every
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += self.close_every
            if next_at < loop.time():  # fell behind (e.g. a long request): do not burst
                next_at = loop.time() + self.close_every
            try:
                started = time.perf_counter()
                applied = self.node.close_ledger()
                took = time.perf_counter() - started
                if applied or took > 0.2:
                    logger.debug(
                        "ledger {} closed: {} txs in {:.1f} ms",
                        self.node.ledger.sequence,
                        applied,
                        took * 1000,
                    )
            except Exception:
                logger.exception("ledger close failed")

    # HTTP --------------------------------------------------------------------------------
    async def handle_friendbot(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            return web.Response(status=405, text="method not allowed")
        addr = request.query.get("addr", "")
        try:
            acct = self.node.accounts.create(addr)
        except AccountError as exc:
            body = {"status": 400, "title": "Bad Request", "detail": str(exc)}
            return web.json_response(body, status=400, dumps=lambda o: orjson.dumps(o).decode())
        body = {"successful": True, "account": acct.account_id, "balance": str(acct.balance)}
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    async def handle_rpc(self, request: web.Request) -> web.StreamResponse:
        limits = self.node.limits
        if limits.http_in_flight >= limits.http_limit:  # stellar-rpc's HTTP backlog limiter
            return web.Response(status=503)
        limits.http_in_flight += 1
        try:
            return await self._handle_rpc(request)
        finally:
            limits.http_in_flight -= 1

    async def _handle_rpc(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, text="405 method not allowed\n")
        # like stellar-rpc's JSON-RPC bridge: only application/json (charset utf-8, if given)
        if request.content_type != "application/json" or (
            request.charset not in (None, "utf-8", "utf8")
        ):
            return web.Response(status=415, text="content-type must be application/json\n")
        body = await request.read()  # > client_max_size raises HTTP 413
        self.node.stats.requests += 1
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.Response(status=500, text=PARSE_FAILURE_TEXT)
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            return web.Response(status=204)  # an empty batch: no calls, no answers
        faults = self.node.faults
        names = [i.get("method") for i in items if isinstance(i, dict)]
        faulted = [m for m in names if isinstance(m, str) and faults.applies(m)]
        delay = self.base_latency_ms / 1000.0
        if faulted:
            delay += faults.delay_s()
        if delay:
            await asyncio.sleep(delay)
        for method in dict.fromkeys(faulted):  # each method of a batch rolls once
            if faults.hit("drop_rate", method):
                if request.transport is not None:
                    request.transport.close()
                raise asyncio.CancelledError  # nothing to answer on a closed connection
            if faults.hit("http_503_rate", method):
                return web.Response(status=503)
            if faults.hit("http_429_rate", method):
                retry = f"{faults.retry_after_s:g}"
                return web.Response(
                    status=429, text="429 Too Many Requests\n", headers={"Retry-After": retry}
                )
        responses = [await self._call(item) for item in items]
        if any(faults.hit("drop_answer_rate", m) for m in dict.fromkeys(faulted)):
            if request.transport is not None:  # done, but the answer is lost on the way
                request.transport.close()
            raise asyncio.CancelledError
        out = [r for r in responses if r is not None]
        if not out:
            return web.Response(status=204)
        if isinstance(payload, list):
            return self._json(out)
        return self._json(out[0])

    def _json(self, obj: Any) -> web.Response:
        data = orjson.dumps(obj)
        self.node.stats.bytes_out += len(data)
        return web.Response(body=data, content_type="application/json")

    async def _call(self, item: Any) -> dict[str, Any] | None:
        if not isinstance(item, dict):
            return _error_obj(None, INVALID_REQUEST, "invalid request")
        req_id = item.get("id")
        if item.get("jsonrpc") != "2.0" or not isinstance(item.get("method"), str):
            return _error_obj(req_id, INVALID_REQUEST, "invalid request")
        if req_id is not None and (
            isinstance(req_id, bool) or not isinstance(req_id, str | int | float)
        ):
            return _error_obj(None, INVALID_REQUEST, "invalid request ID")
        notification = "id" not in item
        method = item["method"]
        self.node.stats.calls[method] += 1
        fn = self.methods.get(method)
        if fn is None:
            if notification:
                return None
            return _error_obj(req_id, METHOD_NOT_FOUND, "method not found", data=method)
        params = item.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return _error_obj(req_id, INVALID_PARAMS, "invalid parameters")
        faults = self.node.faults
        if faults.hit("error_rate", method):
            return _error_obj(req_id, INTERNAL_ERROR, "internal error (injected fault)")
        try:
            if faults.hit("queue_full_rate", method):
                raise queue_full(method, self.node.limits.limit(method).queue)
            if faults.hit("timeout_rate", method):
                raise exceeded_limit()
            result = await self.node.limits.run(method, lambda: fn(params))
        except Overloaded as exc:
            return None if notification else _error_obj(req_id, exc.code, exc.message)
        except RpcError as exc:
            return None if notification else _error_obj(req_id, exc.code, exc.message)
        except Exception as exc:
            logger.exception("{} failed", method)
            return None if notification else _error_obj(req_id, INTERNAL_ERROR, str(exc))
        if notification:
            return None
        return {"jsonrpc": "2.0", "id": req_id, "result": result}


def _error_obj(req_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": req_id, "error": error}
