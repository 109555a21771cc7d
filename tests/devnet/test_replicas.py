"""Replicas: one chain on several ports (``sorotask devnet --replicas N``), each with its own
faults and an injectable lag, as several providers in front of one network behave."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import orjson
import pytest
from stellar_sdk import SorobanServer, scval
from stellar_sdk import xdr as sx
from stellar_sdk.exceptions import SorobanRpcErrorResponse
from stellar_sdk.soroban_rpc import GetTransactionStatus

from devnet.process import DevnetProcess, DevnetRpcError
from devnet.sorotask_contract import SOROTASK_ID
from tests.support import reference_contract as sc
from tests.support.devnet import DevnetOptions, execute_args, funded_keypair, invoke_tx

#: ledgers close only when a test says so: every lag below is exact
BY_HAND = 3600.0


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    return DevnetOptions(close_every=BY_HAND, replicas=3)


@pytest.fixture(scope="module")
def dn(devnet: DevnetProcess) -> DevnetProcess:
    return devnet


@pytest.fixture(scope="module")
def clients(dn: DevnetProcess) -> Iterator[list[SorobanServer]]:
    servers = [SorobanServer(url) for url in dn.info.rpc_urls]
    try:
        yield servers
    finally:
        for s in servers:
            s.close()


@pytest.fixture(autouse=True)
def _healthy(dn: DevnetProcess) -> Iterator[None]:
    yield
    for i in range(3):
        dn.set_faults(replica=i)
        dn.set_lag(0, replica=i)


def _last_run(srv: SorobanServer, task_id: int) -> int:
    entry = srv.get_ledger_entries([sc.task_ledger_key(SOROTASK_ID, task_id)]).entries[0]
    return sc.decode_task_config(sx.LedgerEntryData.from_xdr(entry.xdr).contract_data.val).last_run


class TestOneChain:
    def test_the_ready_line_lists_one_url_per_replica(self, dn: DevnetProcess) -> None:
        urls = dn.info.rpc_urls
        assert len(urls) == len(set(urls)) == 3
        assert urls[0] == dn.info.rpc_url

    def test_every_replica_serves_the_same_chain(
        self, dn: DevnetProcess, clients: list[SorobanServer]
    ) -> None:
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        tx = clients[1].prepare_transaction(
            invoke_tx(clients[1], dn, keeper, "execute", execute_args(keeper.public_key, first))
        )
        tx.sign(keeper)
        sent = clients[1].send_transaction(tx)  # sent to replica 1 ...
        assert sent.status.value == "PENDING"
        dn.close_ledger()
        for srv in clients:  # ... seen by all of them
            assert srv.get_transaction(sent.hash).status == GetTransactionStatus.SUCCESS
            assert _last_run(srv, first) > 0
        assert len({srv.get_latest_ledger().sequence for srv in clients}) == 1


class TestFaultsPerReplica:
    def test_faults_set_on_one_port_affect_only_that_replica(
        self, dn: DevnetProcess, clients: list[SorobanServer]
    ) -> None:
        dn.set_faults(error_rate=1.0, replica=1)
        with pytest.raises(SorobanRpcErrorResponse) as caught:
            clients[1].get_latest_ledger()
        assert caught.value.code == -32603
        assert clients[0].get_latest_ledger().sequence == clients[2].get_latest_ledger().sequence
        assert dn.rpc("devnet_setFaults", {}, replica=1)["faults"]["error_rate"] == 0
        assert clients[1].get_health().status == "healthy"

    def test_http_503_on_one_replica(self, dn: DevnetProcess) -> None:
        dn.set_faults(http_503_rate=1.0, replica=2)
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "getHealth"})
        headers = {"content-type": "application/json"}
        codes = [
            httpx.post(url, content=body, headers=headers, timeout=10).status_code
            for url in dn.info.rpc_urls
        ]
        assert codes == [200, 200, 503]


class TestLag:
    def test_a_lagging_replica_answers_as_of_k_ledgers_ago(
        self, dn: DevnetProcess, clients: list[SorobanServer]
    ) -> None:
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        dn.close_ledger(3)
        fresh, lagging = clients[0], clients[2]
        dn.set_lag(2, replica=2)
        latest = fresh.get_latest_ledger()
        behind = lagging.get_latest_ledger()
        assert behind.sequence == latest.sequence - 2
        assert behind.close_time < latest.close_time
        assert lagging.get_health().latest_ledger == latest.sequence - 2
        # an execution: the lagging replica sees it only 2 ledgers later
        tx = fresh.prepare_transaction(
            invoke_tx(fresh, dn, keeper, "execute", execute_args(keeper.public_key, first))
        )
        tx.sign(keeper)
        sent = fresh.send_transaction(tx)
        applied_in = dn.close_ledger()["sequence"]
        assert fresh.get_transaction(sent.hash).status == GetTransactionStatus.SUCCESS
        assert _last_run(fresh, first) > 0
        lagged = lagging.get_transaction(sent.hash)
        assert lagged.status == GetTransactionStatus.NOT_FOUND
        assert lagged.latest_ledger == applied_in - 2
        assert _last_run(lagging, first) == 0
        entries = lagging.get_ledger_entries([sc.task_ledger_key(SOROTASK_ID, first)])
        assert entries.latest_ledger == applied_in - 2
        dn.close_ledger(2)
        assert lagging.get_transaction(sent.hash).status == GetTransactionStatus.SUCCESS
        assert _last_run(lagging, first) == _last_run(fresh, first)

    def test_a_lagging_replica_serves_events_up_to_its_ledger(
        self, dn: DevnetProcess, clients: list[SorobanServer]
    ) -> None:
        creator = funded_keypair(dn)
        cfg = sc.TaskConfig(creator=creator.public_key, target=SOROTASK_ID, function="run")
        fresh, lagging = clients[0], clients[1]
        tx = fresh.prepare_transaction(
            invoke_tx(fresh, dn, creator, "register", [sc.encode_task_config(cfg)])
        )
        tx.sign(creator)
        fresh.send_transaction(tx)
        ledger = dn.close_ledger()["sequence"]
        dn.set_lag(1, replica=1)
        topics = [[scval.to_symbol("TaskRegistered").to_xdr(), "*"]]
        flt = [{"contractIds": [SOROTASK_ID], "topics": topics}]
        assert fresh.get_events(start_ledger=ledger, filters=flt).events
        behind = lagging.get_events(start_ledger=ledger - 1, filters=flt)
        assert behind.latest_ledger == ledger - 1
        assert behind.events == []
        with pytest.raises(SorobanRpcErrorResponse) as caught:  # ahead of that replica
            lagging.get_events(start_ledger=ledger, filters=flt)
        assert caught.value.code == -32600

    def test_lag_is_bounded_by_the_history_kept(self, dn: DevnetProcess) -> None:
        assert dn.set_lag(64, replica=1) == {"replica": 1, "lag": 64}
        with pytest.raises(DevnetRpcError) as caught:
            dn.set_lag(65, replica=1)
        assert caught.value.code == -32602
        with pytest.raises(DevnetRpcError):
            dn.rpc("devnet_setLag", {"ledgers": -1})


class TestOneReplica:
    def test_a_plain_devnet_has_one_url_and_no_lag_history(self) -> None:
        with DevnetProcess(close_every=BY_HAND, log_level="WARNING") as one:
            assert one.info.rpc_urls == (one.info.rpc_url,)
            with pytest.raises(DevnetRpcError) as caught:
                one.set_lag(1)
            assert "--max-lag" in caught.value.message
        args = ("--max-lag", "4")
        with DevnetProcess(close_every=BY_HAND, log_level="WARNING", extra_args=args) as one:
            one.close_ledger(5)
            latest = one.rpc("getLatestLedger")["sequence"]
            one.set_lag(4)
            assert one.rpc("getLatestLedger")["sequence"] == latest - 4

    @pytest.mark.parametrize(
        "flags",
        [
            ("--replicas", "0"),
            ("--replicas", "17"),
            ("--retention-ledgers", "1"),
            ("--retention-ledgers", "10", "--max-lag", "10"),
            ("--max-lag", "-1"),
        ],
    )
    def test_bad_replica_and_history_flags_exit_with_usage(self, flags: tuple[str, ...]) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "devnet", *flags],
            capture_output=True,
            timeout=60,
        )
        assert out.returncode == 64, out.stderr
        assert out.stdout == b""  # no ready line
