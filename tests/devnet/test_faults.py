"""devnet_setFaults: each fault does what it says, only where it is told to, and clears."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from stellar_sdk import SorobanServer
from stellar_sdk.exceptions import BadResponseError, SorobanRpcErrorResponse
from stellar_sdk.soroban_rpc import GetTransactionStatus, SendTransactionStatus

from devnet.process import DevnetProcess, DevnetRpcError
from tests.support.devnet import execute_args, funded_keypair, invoke_tx


@pytest.fixture(scope="module")
def faulty() -> Iterator[DevnetProcess]:
    with DevnetProcess(close_every=3600) as dn:
        yield dn


@pytest.fixture(autouse=True)
def _clear(faulty: DevnetProcess) -> Iterator[None]:
    faulty.set_faults()
    yield
    faulty.set_faults()


class TestFaults:
    def test_http_503_rate_one_answers_503_with_empty_body(self, faulty: DevnetProcess) -> None:
        faulty.set_faults(http_503_rate=1.0)
        resp = httpx.post(
            faulty.info.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}
        )
        assert (resp.status_code, resp.content) == (503, b"")
        with SorobanServer(faulty.info.rpc_url) as srv, pytest.raises(BadResponseError):
            srv.get_health()

    def test_error_rate_one_is_internal_error(self, faulty: DevnetProcess) -> None:
        faulty.set_faults(error_rate=1.0)
        with SorobanServer(faulty.info.rpc_url) as srv, pytest.raises(SorobanRpcErrorResponse) as e:
            srv.get_latest_ledger()
        assert e.value.code == -32603

    def test_drop_rate_one_closes_the_connection_without_answer(
        self, faulty: DevnetProcess
    ) -> None:
        faulty.set_faults(drop_rate=1.0)
        with pytest.raises(httpx.TransportError):
            httpx.post(
                faulty.info.rpc_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
                timeout=5,
            )

    def test_drop_answer_rate_queues_the_send_and_loses_the_answer(
        self, faulty: DevnetProcess
    ) -> None:
        keeper = funded_keypair(faulty)
        first, _ = faulty.seed_tasks(count=1)
        with SorobanServer(faulty.info.rpc_url) as srv:
            tx = srv.prepare_transaction(
                invoke_tx(srv, faulty, keeper, "execute", execute_args(keeper.public_key, first))
            )
            tx.sign(keeper)
            faulty.set_faults(drop_answer_rate=1.0, methods=["sendTransaction"])
            with pytest.raises(httpx.TransportError):
                httpx.post(
                    faulty.info.rpc_url,
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "sendTransaction",
                        "params": {"transaction": tx.to_xdr()},
                    },
                    timeout=5,
                )
            assert faulty.stats()["pending"] == 1  # it was queued all the same
            faulty.set_faults()
            # the same envelope again: the queue knows its hash
            assert srv.send_transaction(tx).status == SendTransactionStatus.DUPLICATE
            faulty.close_ledger()
            assert srv.get_transaction(tx.hash_hex()).status == GetTransactionStatus.SUCCESS
        assert [e["effect"] for e in faulty.executions([first])] == ["executed"]

    def test_latency_delays_answers(self, faulty: DevnetProcess) -> None:
        faulty.set_faults(latency_ms=300)
        started = time.monotonic()
        faulty.rpc("getHealth")
        assert time.monotonic() - started >= 0.29

    def test_faults_apply_only_to_listed_methods_and_never_to_control(
        self, faulty: DevnetProcess
    ) -> None:
        faulty.set_faults(error_rate=1.0, methods=["getLatestLedger"])
        assert faulty.rpc("getHealth")["status"] == "healthy"
        with pytest.raises(DevnetRpcError):
            faulty.rpc("getLatestLedger")
        assert faulty.stats()["ledger"] > 0  # devnet_* methods are never faulted

    def test_empty_object_clears_faults(self, faulty: DevnetProcess) -> None:
        faulty.set_faults(error_rate=1.0)
        faulty.set_faults()
        assert faulty.rpc("getHealth")["status"] == "healthy"

    def test_bad_fault_parameters_are_invalid_params(self, faulty: DevnetProcess) -> None:
        with pytest.raises(DevnetRpcError) as e:
            faulty.set_faults(error_rate=2)
        assert e.value.code == -32602
        with pytest.raises(DevnetRpcError):
            faulty.set_faults(bogus=1)

    def test_try_again_later_and_never_apply(self, faulty: DevnetProcess) -> None:
        keeper = funded_keypair(faulty)
        first, _ = faulty.seed_tasks(count=1)
        with SorobanServer(faulty.info.rpc_url) as srv:
            tx = srv.prepare_transaction(
                invoke_tx(srv, faulty, keeper, "execute", execute_args(keeper.public_key, first))
            )
            tx.sign(keeper)
            faulty.set_faults(try_again_later_rate=1.0)
            assert srv.send_transaction(tx).status == SendTransactionStatus.TRY_AGAIN_LATER
            faulty.set_faults(never_apply_rate=1.0)
            sent = srv.send_transaction(tx)
            assert sent.status == SendTransactionStatus.PENDING
            faulty.set_faults()
            faulty.close_ledger(3)
            assert srv.get_transaction(sent.hash).status == GetTransactionStatus.NOT_FOUND
            assert faulty.executions([first]) == []
            # the sequence number was never used: the same transaction goes through now
            assert srv.send_transaction(tx).status == SendTransactionStatus.PENDING
            faulty.close_ledger()
            assert srv.get_transaction(sent.hash).status == GetTransactionStatus.SUCCESS
