"""A small, fast Soroban JSON-RPC client: one pooled HTTP client (aiohttp or httpx) and orjson.

* per-request timeouts; every failure has a ``kind`` (:mod:`shard_worker.errors`). "Try again
  later" (-32098, -32001, HTTP 503, 429) and transient failures (timeouts, dropped connections,
  garbled answers, other 5xx, -32603) are retried with the one backoff
  (:class:`shard_worker.retry.Backoff`), never sooner than the server's ``Retry-After`` (capped
  at 30 s; it pauses every request of the client), bounded by ``attempts`` and ``deadline``;
* reads are hedged (:mod:`shard_worker.rpcretry`): their attempts are copies in flight
  together when one is slow or failed;
* one accounting: every attempt goes through ``_attempt``, where
  :class:`~shard_worker.rpcbudget.BudgetedRpcClient` takes a token of the shard's request
  budget; retries and hedges of all requests share a token bucket (``max_retries_per_s``), so
  failures cannot become an overload of their own; requests on the wire are counted;
* other JSON-RPC errors (:class:`RpcResponseError` with the code) and HTTP statuses are raised
  at once; anything not a well-formed JSON-RPC response raises :class:`RpcMalformedError`;
* per-method call / error / latency counters, failures / retries by kind, hedges by method,
  drained once per cycle into ``CycleStats``;
* every error it raises is cleaned of its URL's credentials and header values
  (:func:`shard_worker.endpoint_config.scrub_url`; the URL is shown by its ``label``).

httpx is imported only when ``transport="httpx"`` is chosen (or a client is passed in);
stellar-sdk never (the tests' ``tests/support/sdk_client.py`` has one for the SDK).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson

from shard_worker.budget import TokenBucket
from shard_worker.endpoint_config import scrub_url, shown_url
from shard_worker.errors import (
    HTTP_429,
    RpcError,
    RpcMalformedError,
    RpcResponseError,
    RpcTransportError,
    parse_retry_after,
)
from shard_worker.retry import Backoff
from shard_worker.rpchttp import JSON_HEADERS, HttpTransports
from shard_worker.rpcretry import Retries

if TYPE_CHECKING:
    import httpx

__all__ = [
    "EndpointChoice",
    "MethodCounters",
    "RpcClient",
    "as_int",
    "expect_dict",
    "expect_list",
    "get_ledger_entries",
    "rpc_totals",
]

TRANSPORTS = ("httpx", "aiohttp", "wire")
#: JSON-RPC "internal error" (retried, like the overload codes -32098 and -32001)
INTERNAL_ERROR = -32603
#: retries a client may start per second (all its requests together), and their burst
MAX_RETRIES_PER_S = 50.0


class MethodCounters:
    """Calls (HTTP attempts), errors and summed latency of one RPC method."""

    __slots__ = ("calls", "errors", "latency_s")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.latency_s = 0.0


class EndpointChoice(Protocol):
    """The seam for an endpoint pool: which URL an attempt goes to, and how it went (``error``
    None for an answer; else the failure, with its ``kind`` and ``retry_after_s``)."""

    def pick(self, method: str) -> str: ...

    def outcome(self, url: str, method: str, error: RpcError | None, latency_s: float) -> None: ...


class RpcClient(HttpTransports, Retries):
    """Soroban JSON-RPC over one pooled HTTP client.

    ``transport="httpx"`` uses one ``httpx.AsyncClient``; ``transport="aiohttp"`` uses one
    ``aiohttp.ClientSession``, whose C HTTP parser costs about a fifth of httpx's CPU per
    200-entry ``getLedgerEntries`` answer (measured: 0.4 ms vs 1.9 ms a call), which is what
    the per-task CPU budget needs; ``"wire"`` (:mod:`shard_worker.rpcwire`) a third of aiohttp's
    CPU a request. All pool keep-alive connections; behaviour is the same.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 2.0,
        max_connections: int = 32,
        max_response_bytes: int = 32 * 1024 * 1024,
        client: httpx.AsyncClient | None = None,
        transport: str = "httpx",
        headers: Mapping[str, str] | None = None,
        max_retries_per_s: float = MAX_RETRIES_PER_S,
        endpoints: EndpointChoice | None = None,
        label: str | None = None,
        hedge_copies: int = 1,
    ) -> None:
        """``headers``: extra request headers (an endpoint's API key: never logged);
        ``label``: how ``url`` is shown in errors (default: without its credentials);
        ``hedge_copies``: copies of a read in flight at once (1: no hedging)."""
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        self.transport = "httpx" if client is not None else transport
        posts = {"wire": self._post_wire, "aiohttp": self._post_aiohttp}
        self._post = posts.get(self.transport, self._post_httpx)
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._wire = None
        self.url = url
        self.label = shown_url(url) if label is None else label
        self._headers = {**JSON_HEADERS, **(headers or {})}
        #: what no error may show: the extra headers' values
        self._secrets = tuple((headers or {}).values())
        self.timeout_s = timeout_s
        self.max_attempts = max(1, max_attempts)
        #: the wait before each retry of a failed attempt
        self.backoff = Backoff(backoff_base_s, max_s=backoff_max_s, jitter=0.5)
        self.max_response_bytes = max_response_bytes
        self._own_client = client is None
        self.http = client
        if self.transport == "httpx" and client is None:
            import httpx  # only for this transport: keeps httpx out of aiohttp workers

            self.http = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_s),
                limits=httpx.Limits(
                    max_connections=max_connections,
                    max_keepalive_connections=max_connections,
                    keepalive_expiry=30.0,
                ),
                http2=False,
            )
        self._next_id = 0
        self.counters: dict[str, MethodCounters] = {}
        #: totals over the client's life (never reset)
        self.total_calls = 0
        self.total_errors = 0
        self.total_retries = 0
        #: where each attempt goes (None: always ``url``)
        self.endpoints = endpoints
        #: retries of all requests share this bucket, so a storm of failures cannot turn
        #: into a storm of retries (a retry without a token is not made: the error is raised)
        self.retry_bucket = TokenBucket(max_retries_per_s, max_retries_per_s, time.monotonic())
        self.retries_denied = 0
        #: no attempt before this ``time.monotonic()`` (the latest ``Retry-After``)
        self._not_before = 0.0
        #: requests on the wire now
        self.in_flight = 0
        self._init_hedging(hedge_copies)
        #: failed attempts and retries by kind since the last :meth:`drain_kinds`
        self.failures_by_kind: dict[str, int] = {}
        self.retries_by_kind: dict[str, int] = {}

    async def aclose(self) -> None:
        if self._own_client and self.http is not None:
            await self.http.aclose()
        await self._close_pools()

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def drain_counters(self) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
        """Per-method (calls, errors, mean latency) since the last drain; resets them."""
        calls = {m: c.calls for m, c in self.counters.items() if c.calls}
        errors = {m: c.errors for m, c in self.counters.items() if c.errors}
        latency = {m: round(c.latency_s / c.calls, 6) for m, c in self.counters.items() if c.calls}
        self.counters = {}
        return calls, errors, latency

    def note_error(self, method: str) -> None:
        """Count an answer the caller found unusable (e.g. a stale ledger, a simulation that
        does not parse) as an error of ``method``, like a failed call."""
        counters = self.counters.get(method)
        if counters is None:
            counters = self.counters[method] = MethodCounters()
        counters.errors += 1
        self.total_errors += 1

    def drain_kinds(self) -> tuple[dict[str, int], dict[str, int]]:
        """(failed attempts by kind, retries by kind) since the last drain; resets them."""
        failures, retries = self.failures_by_kind, self.retries_by_kind
        self.failures_by_kind, self.retries_by_kind = {}, {}
        return failures, retries

    async def _gate(self, method: str, deadline: float | None) -> None:
        """Before each attempt: wait out a server's ``Retry-After`` (it holds for every
        request of this client). (The request budget is taken per attempt too, by
        :class:`~shard_worker.rpcbudget.BudgetedRpcClient`.)"""
        wait = self._not_before - time.monotonic()
        if wait > 0:
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise RpcTransportError(
                    method,
                    "throttled (Retry-After) past the deadline",
                    kind=HTTP_429,
                    retry_after_s=wait,
                )
            await asyncio.sleep(wait)

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        attempts: int | None = None,
        deadline: float | None = None,
        hedge: bool = True,
    ) -> Any:
        """Call ``method`` and return its ``result``; raises an :class:`RpcError` subclass
        (with its ``kind``). A retryable failure is retried with backoff (at least the
        server's ``Retry-After``) up to ``attempts`` times and, when given, until the
        ``deadline`` (a ``time.monotonic()`` value): no retry starts that could not begin
        before it, and no attempt waits past it. A read's attempts may be hedged copies
        (``hedge`` False: not this one, nobody waits for it)."""
        self._next_id += 1
        req_id = self._next_id
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}}
        )
        max_attempts = attempts or self.max_attempts
        timeout = timeout_s or self.timeout_s
        if hedge and max_attempts > 1 and self.hedge.hedges(method):
            return await self._call_hedged(method, body, req_id, timeout, max_attempts, deadline)
        last_error: RpcError | None = None
        for attempt in range(max_attempts):
            if last_error is not None:
                delay = self._retry_delay(attempt - 1, last_error)
                if not self._may_retry(last_error, delay, deadline):
                    raise last_error
                await asyncio.sleep(delay)
            try:
                return await self._one(method, body, req_id, timeout, deadline)
            except RpcError as exc:
                if not exc.retryable:
                    raise
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _one(
        self,
        method: str,
        body: bytes,
        req_id: int,
        timeout_s: float,
        deadline: float | None,
        *,
        prepaid: bool = False,
    ) -> Any:
        """One HTTP attempt, counted (calls, errors, latency, failures by kind, in flight);
        ``prepaid``: its budget token was taken already (a hedge)."""
        await self._gate(method, deadline)
        attempt_timeout = timeout_s
        if deadline is not None:
            attempt_timeout = max(0.05, min(timeout_s, deadline - time.monotonic()))
        counters = self.counters.get(method)
        if counters is None:
            counters = self.counters[method] = MethodCounters()
        counters.calls += 1
        self.total_calls += 1
        self.in_flight += 1
        started = time.perf_counter()
        try:
            result = await self._attempt(method, body, req_id, attempt_timeout, prepaid=prepaid)
        except RpcError as exc:
            counters.errors += 1
            self.total_errors += 1
            self.failures_by_kind[exc.kind] = self.failures_by_kind.get(exc.kind, 0) + 1
            if exc.retry_after_s is not None:
                self._not_before = max(self._not_before, time.monotonic() + exc.retry_after_s)
            self.hedge.observe(method, time.perf_counter() - started, failed=True)
            raise
        finally:
            self.in_flight -= 1
            counters.latency_s += time.perf_counter() - started
        self.hedge.observe(method, time.perf_counter() - started)
        return result

    async def _attempt(
        self, method: str, body: bytes, req_id: int, timeout_s: float, *, prepaid: bool = False
    ) -> Any:
        """One POST and its answer (``prepaid``: the request budget's token is taken, see
        :class:`~shard_worker.rpcbudget.BudgetedRpcClient`)."""
        url = self.url if self.endpoints is None else self.endpoints.pick(method)
        started = time.monotonic()
        try:
            status, content, retry_after = await self._post(url, method, body, timeout_s)
            if status != 200:
                wait = parse_retry_after(retry_after, time.time()) if status in (429, 503) else None
                raise RpcTransportError(method, f"HTTP {status}", status=status, retry_after_s=wait)
            result = self._parse(method, content, req_id)
        except RpcError as exc:
            label = self.label if url == self.url else None
            exc.args = (scrub_url(str(exc), url, label, self._secrets),)
            if isinstance(exc, RpcResponseError):  # the server's own words, logged by callers
                exc.rpc_message = scrub_url(exc.rpc_message, url, label, self._secrets)
            if self.endpoints is not None:
                self.endpoints.outcome(url, method, exc, time.monotonic() - started)
            raise
        if self.endpoints is not None:
            self.endpoints.outcome(url, method, None, time.monotonic() - started)
        return result

    def _parse(self, method: str, content: bytes, req_id: int) -> Any:
        try:
            payload = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise RpcMalformedError(
                method, f"response is not JSON ({len(content)} bytes)"
            ) from None
        if not isinstance(payload, dict):
            raise RpcMalformedError(method, "response is not a JSON object")
        if payload.get("id") != req_id:
            raise RpcMalformedError(method, "response id does not match the request")
        error = payload.get("error")
        if error is not None:
            if not isinstance(error, dict) or not isinstance(error.get("code"), int):
                raise RpcMalformedError(method, "malformed JSON-RPC error object")
            raise RpcResponseError(
                method, error["code"], str(error.get("message", "")), error.get("data")
            )
        if "result" not in payload:
            raise RpcMalformedError(method, "response has neither result nor error")
        return payload["result"]


def rpc_totals(rpc: Any) -> dict[str, int]:
    """A client's (or a pool's) totals over its life, for the keeper's goodbye."""
    return {
        "rpc_calls": rpc.total_calls,
        "rpc_errors": rpc.total_errors,
        "rpc_retries": rpc.total_retries,
        "rpc_retries_denied": rpc.retries_denied,
        "rpc_hedges": rpc.total_hedges,
    }


def expect_dict(value: Any, method: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RpcMalformedError(method, f"result is {type(value).__name__}, expected an object")
    return value


def expect_list(value: Any, method: str, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise RpcMalformedError(method, f"{field} is {type(value).__name__}, expected a list")
    return value


def as_int(obj: dict[str, Any], field: str, method: str, default: int | None = None) -> int:
    """An integer field that may arrive as a JSON number or (int64) as a string."""
    value = obj.get(field)
    if value is None:
        if default is not None:
            return default
        raise RpcMalformedError(method, f"missing field {field}")
    if isinstance(value, bool):
        raise RpcMalformedError(method, f"{field} is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise RpcMalformedError(method, f"{field} is not an integer")


async def get_ledger_entries(rpc: RpcClient, keys: list[str]) -> list[dict[str, Any]]:
    """``getLedgerEntries`` of ``keys`` (at most 200): the entry objects found (maybe none)."""
    result = expect_dict(await rpc.call("getLedgerEntries", {"keys": keys}), "getLedgerEntries")
    entries = result.get("entries") or []
    return [e for e in expect_list(entries, "getLedgerEntries", "entries") if isinstance(e, dict)]
