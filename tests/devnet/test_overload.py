"""Overload as stellar-rpc (and providers in front of it) answer it, through stock clients.

-32098 when a method's queue is full, -32001 past its execution limit, HTTP 503 past the HTTP
backlog, HTTP 429 with Retry-After from a provider: injected by rate (devnet_setFaults, per
method) and, for the real limits, produced by actual queues (devnet_setLimits).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from stellar_sdk import SorobanServer, SorobanServerAsync
from stellar_sdk.exceptions import BadRequestError, BadResponseError, SorobanRpcErrorResponse

from devnet.process import DevnetProcess, DevnetRpcError
from tests.support.sdk_client import HttpxAsyncClient

QUEUE_FULL = -32098
EXCEEDED = -32001


@pytest.fixture(scope="module")
def busy() -> Iterator[DevnetProcess]:
    with DevnetProcess(tasks=1, close_every=3600) as dn:
        yield dn


@pytest.fixture(autouse=True)
def _clear(busy: DevnetProcess) -> Iterator[None]:
    busy.set_faults()
    busy.rpc("devnet_setLimits", {})
    yield
    busy.set_faults()
    busy.rpc("devnet_setLimits", {})


def _post(dn: DevnetProcess, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        body["params"] = params
    return httpx.post(dn.info.rpc_url, json=body, timeout=10)


async def _concurrently(url: str, n: int, call: str) -> list[Any]:
    """``n`` simultaneous calls of a SorobanServerAsync method; results or exceptions."""
    async with SorobanServerAsync(url, client=HttpxAsyncClient(timeout_s=10)) as srv:
        return await asyncio.gather(
            *(getattr(srv, call)() for _ in range(n)), return_exceptions=True
        )


class TestInjectedOverload:
    def test_queue_full_is_32098_with_stellar_rpc_message_for_that_method_only(
        self, busy: DevnetProcess
    ) -> None:
        busy.set_faults(per_method={"getLatestLedger": {"queue_full_rate": 1.0}})
        with SorobanServer(busy.info.rpc_url) as srv:
            with pytest.raises(SorobanRpcErrorResponse) as err:
                srv.get_latest_ledger()
            assert err.value.code == QUEUE_FULL
            assert err.value.message == (
                "rpc queue for getLatestLedger surpassed queue limit of 1000 requests"
            )
            assert srv.get_health().status == "healthy"  # other methods are not faulted

    def test_send_transaction_queue_limit_in_the_message_is_500(self, busy: DevnetProcess) -> None:
        busy.set_faults(per_method={"sendTransaction": {"queue_full_rate": 1.0}})
        out = _post(busy, "sendTransaction", {"transaction": "AAAA"}).json()
        assert out["error"] == {
            "code": QUEUE_FULL,
            "message": "rpc queue for sendTransaction surpassed queue limit of 500 requests",
        }

    def test_execution_limit_fault_is_32001(self, busy: DevnetProcess) -> None:
        busy.set_faults(timeout_rate=1.0, methods=["getLedgerEntries"])
        with SorobanServer(busy.info.rpc_url) as srv:
            with pytest.raises(SorobanRpcErrorResponse) as err:
                srv.get_ledger_entries([])
            assert err.value.code == EXCEEDED
            assert err.value.message == "request exceeded processing limit threshold"
            assert srv.get_latest_ledger().sequence > 0

    def test_http_429_carries_retry_after(self, busy: DevnetProcess) -> None:
        busy.set_faults(per_method={"getHealth": {"http_429_rate": 1.0}}, retry_after_s=7)
        resp = _post(busy, "getHealth")
        assert resp.status_code == 429
        assert resp.headers["retry-after"] == "7"

        async def through_the_sdk() -> BadRequestError:
            async with SorobanServerAsync(busy.info.rpc_url, client=HttpxAsyncClient()) as srv:
                with pytest.raises(BadRequestError) as err:
                    await srv.get_health()
                assert (await srv.get_latest_ledger()).sequence > 0  # only getHealth
                return err.value

        err = asyncio.run(through_the_sdk())
        assert err.status == 429
        headers = {k.lower(): v for k, v in err.args[0].headers.items()}
        assert headers["retry-after"] == "7"

    def test_http_503_per_method_has_an_empty_body(self, busy: DevnetProcess) -> None:
        busy.set_faults(per_method={"simulateTransaction": {"http_503_rate": 1.0}})
        resp = _post(busy, "simulateTransaction", {"transaction": "AAAA"})
        assert (resp.status_code, resp.content) == (503, b"")
        with SorobanServer(busy.info.rpc_url) as srv:
            assert srv.get_health().status == "healthy"

    def test_rates_are_checked(self, busy: DevnetProcess) -> None:
        for bad in (
            {"queue_full_rate": 1.5},
            {"per_method": {"getHealth": {"nope_rate": 1}}},
            {"per_method": ["getHealth"]},
            {"retry_after_s": -1},
        ):
            with pytest.raises(DevnetRpcError) as err:
                busy.set_faults(**bad)
            assert err.value.code == -32602, bad


class TestRealLimits:
    def test_requests_past_a_full_method_queue_get_32098(self, busy: DevnetProcess) -> None:
        # one runs at a time for 400 ms, one more may wait: the queue holds 2
        busy.rpc(
            "devnet_setLimits",
            {"methods": {"getLatestLedger": {"concurrency": 1, "queue": 2, "service_ms": 400}}},
        )
        started = time.monotonic()
        out = asyncio.run(_concurrently(busy.info.rpc_url, 4, "get_latest_ledger"))
        took = time.monotonic() - started
        ok = [r for r in out if not isinstance(r, BaseException)]
        refused = [r for r in out if isinstance(r, SorobanRpcErrorResponse)]
        assert len(ok) == 2 and len(refused) == 2, out
        assert {(e.code, e.message) for e in refused} == {
            (QUEUE_FULL, "rpc queue for getLatestLedger surpassed queue limit of 2 requests")
        }
        assert took >= 0.75  # the two accepted ran one after the other
        with SorobanServer(busy.info.rpc_url) as srv:  # other methods are not limited
            assert srv.get_health().status == "healthy"

    def test_waiting_and_running_past_the_execution_limit_is_32001(
        self, busy: DevnetProcess
    ) -> None:
        busy.rpc(
            "devnet_setLimits",
            {"methods": {"getHealth": {"concurrency": 1, "service_ms": 200, "timeout_ms": 300}}},
        )
        out = asyncio.run(_concurrently(busy.info.rpc_url, 2, "get_health"))
        ok = [r for r in out if not isinstance(r, BaseException)]
        late = [r for r in out if isinstance(r, SorobanRpcErrorResponse)]
        assert len(ok) == 1 and ok[0].status == "healthy"  # 200 ms: within the limit
        assert [(e.code, e.message) for e in late] == [
            (EXCEEDED, "request exceeded processing limit threshold")
        ]  # waited 200 ms for the slot, then 200 more: past 300 ms

    def test_http_backlog_past_its_limit_is_503_with_an_empty_body(
        self, busy: DevnetProcess
    ) -> None:
        busy.rpc(
            "devnet_setLimits", {"http_limit": 1, "methods": {"getHealth": {"service_ms": 400}}}
        )
        url = busy.info.rpc_url
        body = {"jsonrpc": "2.0", "id": 1, "method": "getHealth"}

        async def scenario() -> tuple[httpx.Response, httpx.Response, BadResponseError]:
            async with (
                httpx.AsyncClient(timeout=10) as client,
                SorobanServerAsync(url, client=HttpxAsyncClient()) as srv,
            ):
                first = asyncio.create_task(client.post(url, json=body))
                await asyncio.sleep(0.15)  # the first holds the only HTTP slot for 400 ms
                second = await client.post(url, json=body)
                with pytest.raises(BadResponseError) as err:
                    await srv.get_health()
                return await first, second, err.value

        first, second, err = asyncio.run(scenario())
        assert first.status_code == 200 and first.json()["result"]["status"] == "healthy"
        assert (second.status_code, second.content) == (503, b"")
        assert err.status == 503

    def test_empty_object_restores_stellar_rpc_defaults(self, busy: DevnetProcess) -> None:
        busy.rpc("devnet_setLimits", {"http_limit": 3, "methods": {"getHealth": {"queue": 1}}})
        out = busy.rpc("devnet_setLimits", {})
        assert out["limits"] == {"http_limit": 5000, "methods": {}}

    def test_bad_limits_are_invalid_params(self, busy: DevnetProcess) -> None:
        for bad in (
            {"http_limit": 0},
            {"methods": {"getHealth": {"queue": 0}}},
            {"methods": {"getHealth": {"timeout_ms": 0}}},
            {"methods": {"getHealth": {"speed": 1}}},
            {"other": 1},
        ):
            with pytest.raises(DevnetRpcError) as err:
                busy.rpc("devnet_setLimits", bad)
            assert err.value.code == -32602, bad

    def test_control_methods_are_never_faulted(self, busy: DevnetProcess) -> None:
        busy.set_faults(http_503_rate=1.0, queue_full_rate=1.0)
        assert busy.stats()["ledger"] > 0
