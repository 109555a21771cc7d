"""The retention window (``sorotask devnet --retention-ledgers``): what getHealth reports and
what getTransaction and getEvents answer once history is older than it (stellar-rpc v28)."""

from __future__ import annotations

import pytest
from stellar_sdk import SorobanServer
from stellar_sdk.exceptions import SorobanRpcErrorResponse
from stellar_sdk.soroban_rpc import GetTransactionStatus

from devnet.process import DevnetProcess
from devnet.sorotask_contract import TARGET_OK_ID
from tests.support import reference_contract as sc
from tests.support.devnet import DevnetOptions, funded_keypair, invoke_tx
from tests.support.events import end_cursor, events_error, raw_call, topic_filter

WINDOW = 10


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    """A devnet keeping 10 ledgers, closed by hand."""
    return DevnetOptions(close_every=3600, extra_args=("--retention-ledgers", str(WINDOW)))


class TestRetention:
    def test_history_older_than_the_window_is_gone(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        dn, srv = devnet, soroban
        creator = funded_keypair(dn)
        cfg = sc.TaskConfig(creator=creator.public_key, target=TARGET_OK_ID, function="run")
        tx = srv.prepare_transaction(
            invoke_tx(srv, dn, creator, "register", [sc.encode_task_config(cfg)])
        )
        tx.sign(creator)
        sent = srv.send_transaction(tx)
        ledger = dn.close_ledger()["sequence"]
        registered = topic_filter("TaskRegistered")
        assert srv.get_transaction(sent.hash).status == GetTransactionStatus.SUCCESS
        assert srv.get_events(start_ledger=ledger, filters=registered).events
        dn.close_ledger(WINDOW + 2)
        health = srv.get_health()
        assert health.ledger_retention_window == WINDOW
        assert health.latest_ledger == ledger + WINDOW + 2
        assert health.oldest_ledger == health.latest_ledger - WINDOW + 1
        raw = dn.rpc("getHealth")
        assert isinstance(raw["latestLedgerCloseTime"], str)
        assert isinstance(raw["oldestLedgerCloseTime"], str)
        assert int(raw["oldestLedgerCloseTime"]) < int(raw["latestLedgerCloseTime"])
        # the transaction and its event left with their ledger
        assert srv.get_transaction(sent.hash).status == GetTransactionStatus.NOT_FOUND
        window = srv.get_events(start_ledger=health.oldest_ledger, filters=registered)
        assert window.events == []
        assert window.oldest_ledger == health.oldest_ledger

    def test_a_start_outside_the_window_is_invalid_request_with_the_range(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        dn, srv = devnet, soroban
        dn.close_ledger(WINDOW + 1)
        health = srv.get_health()
        oldest, latest = health.oldest_ledger, health.latest_ledger
        want = {
            "code": -32600,
            "message": f"startLedger must be within the ledger range: {oldest} - {latest}",
        }
        assert events_error(dn, {"startLedger": oldest - 1}) == want
        assert events_error(dn, {"startLedger": latest + 1}) == want
        # a cursor left behind by the window is refused the same way
        assert events_error(dn, {"pagination": {"cursor": end_cursor(oldest - 2)}}) == want
        with pytest.raises(SorobanRpcErrorResponse) as caught:
            srv.get_events(start_ledger=oldest - 1, filters=[])
        assert caught.value.code == -32600
        assert raw_call(dn, "getEvents", {"startLedger": oldest})["result"]["events"] == []
