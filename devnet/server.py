"""The HTTP side: aiohttp app, JSON-RPC 2.0 dispatch (single and batch), limits and faults."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from loguru import logger
from stellar_sdk import xdr as sx

from devnet import control, events
from devnet.accounts import AccountError
from devnet.archival import is_archived, is_temporary
from devnet.ledger import PROTOCOL_VERSION
from devnet.node import Devnet
from devnet.overload import Overloaded, exceeded_limit, queue_full
from devnet.replica import Replica
from devnet.simulate import simulate

MAX_BODY_BYTES = 512 * 1024
MAX_KEYS = 200
#: jrpc2's HTTP bridge answers an unparsable body with HTTP 500 and this text (plus a newline)
PARSE_FAILURE_TEXT = "[-32700] invalid request value\n"
VERSION = "23.0.0-sorotask-devnet"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _params_error(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


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
        self.friendbot_url = ""
        node.clock.close_every = close_every
        self._closer: asyncio.Task[None] | None = None
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getHealth": self.get_health,
            "getNetwork": self.get_network,
            "getVersionInfo": self.get_version_info,
            "getLatestLedger": self.get_latest_ledger,
            "getLedgerEntries": self.get_ledger_entries,
            "getFeeStats": self.get_fee_stats,
            "simulateTransaction": self.simulate_transaction,
            "sendTransaction": self.send_transaction,
            "getTransaction": self.get_transaction,
            "getEvents": self.get_events,
        }
        for name, fn in control.METHODS.items():
            self.methods[name] = self._control(fn)

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
        self.node.count_request(time.time())
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

    # methods -----------------------------------------------------------------------------
    def _control(self, fn: Callable[[Devnet, dict[str, Any]], Any]) -> Callable[..., Any]:
        def call(params: dict[str, Any]) -> Any:
            try:
                return fn(self.node, params)
            except control.ControlParamError as exc:
                raise _params_error(str(exc)) from exc

        return call

    def get_health(self, _params: dict[str, Any]) -> dict[str, Any]:
        view = self.node.view()
        return {
            "status": "healthy",
            **view.ledger_range(),
            "ledgerRetentionWindow": view.retention,
        }

    def get_network(self, _params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.friendbot_url:
            out["friendbotUrl"] = self.friendbot_url
        out["passphrase"] = self.node.passphrase
        out["protocolVersion"] = PROTOCOL_VERSION
        return out

    def get_version_info(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": VERSION,
            "commitHash": "0" * 40,
            "buildTimestamp": "2025-09-01T00:00:00",
            "captiveCoreVersion": "stellar-core (SoroTask devnet emulation)",
            "protocolVersion": PROTOCOL_VERSION,
        }

    def get_latest_ledger(self, _params: dict[str, Any]) -> dict[str, Any]:
        info = self.node.view().latest
        return {
            "id": info.hash_hex,
            "protocolVersion": PROTOCOL_VERSION,
            "sequence": info.sequence,
            "closeTime": str(info.close_time),
            "headerXdr": info.header_b64,
            "metadataXdr": info.meta_b64,
        }

    def get_ledger_entries(self, params: dict[str, Any]) -> dict[str, Any]:
        keys = params.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _params_error("invalid parameters: keys must be a list of base64 strings")
        if len(keys) > MAX_KEYS:
            raise _params_error(f"key count ({len(keys)}) exceeds maximum supported ({MAX_KEYS})")
        view = self.node.view()
        seq = view.sequence
        out = []
        for i, key in enumerate(keys):
            entry = view.entry(key)
            if entry is None:
                canonical = _canonical_key(key)
                if canonical is None:
                    raise _params_error(f"cannot unmarshal key value {key} at index {i}")
                if canonical == "ttl":
                    raise _params_error("ledger ttl entries cannot be queried directly")
                if view.entry(canonical) is not None:  # core answers with the canonical key
                    raise RpcError(INTERNAL_ERROR, "mismatching key in result")
                continue
            live_until = entry.live_until
            if live_until is not None and is_archived(entry, seq):
                if is_temporary(key):
                    continue  # an expired temporary entry is gone
                live_until = 0  # an archived persistent entry (core reports no TTL)
            item: dict[str, Any] = {
                "key": key,
                "xdr": entry.data_b64,
                "lastModifiedLedgerSeq": entry.last_modified,
            }
            if live_until is not None:
                item["liveUntilLedgerSeq"] = live_until
            item["extXdr"] = "AAAAAA=="
            out.append(item)
        return {"entries": out, "latestLedger": seq}

    def get_fee_stats(self, _params: dict[str, Any]) -> dict[str, Any]:
        return self.node.surge.fee_stats(self.node.ledger.sequence)

    def simulate_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params.get("transaction"), str):
            raise _params_error("invalid parameters: transaction must be a base64 string")
        return simulate(self.node, params)

    def send_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        tx = params.get("transaction")
        if not isinstance(tx, str):
            raise _params_error("invalid_xdr")
        try:
            return self.node.submit(tx)
        except ValueError as exc:
            raise _params_error("invalid_xdr") from exc

    def get_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        from devnet.transactions import record_to_json

        h = params.get("hash")
        if not isinstance(h, str):
            raise _params_error("unexpected hash length (0)")
        if len(h) != 64:
            raise _params_error(f"unexpected hash length ({len(h)})")
        try:
            bytes.fromhex(h)
        except ValueError as exc:
            raise _params_error(f"incorrect hash: {exc}") from exc
        view = self.node.view()
        base = view.ledger_range()
        rec = view.transaction(h.lower())
        if rec is None:  # stellar-rpc sends the zero values of the fields it found nothing for
            return {
                **base,
                "status": "NOT_FOUND",
                "txHash": h,
                "applicationOrder": 0,
                "feeBump": False,
                "ledger": 0,
                "createdAt": "0",
            }
        return {**base, **record_to_json(rec)}

    def get_events(self, params: dict[str, Any]) -> dict[str, Any]:
        rng = self.node.view().ledger_range()
        try:
            found, cursor = events.query(
                self.node.events,
                params,
                oldest=rng["oldestLedger"],
                latest=rng["latestLedger"],
            )
        except events.EventParamError as exc:
            raise _params_error(str(exc)) from exc
        except events.EventRangeError as exc:
            raise RpcError(INVALID_REQUEST, str(exc)) from exc
        return {"events": found, "cursor": cursor, **rng}


def _canonical_key(key: str) -> str | None:
    """Canonical base64 of a decodable LedgerKey, "ttl" for TTL keys, None if undecodable."""
    try:
        lk = sx.LedgerKey.from_xdr_bytes(base64.b64decode(key, validate=True))
    except Exception:
        return None
    if lk.type == sx.LedgerEntryType.TTL:
        return "ttl"
    return lk.to_xdr()


def _error_obj(req_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": req_id, "error": error}
