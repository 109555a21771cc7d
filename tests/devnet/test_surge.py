"""Surge pricing: a ledger capacity, competing load, stellar-core's queue rules and the fee
statistics stellar-rpc computes from what the last ledgers really included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from stellar_sdk import SorobanServer, TransactionBuilder
from stellar_sdk import xdr as sx
from stellar_sdk.soroban_rpc import GetTransactionStatus, SendTransactionStatus
from stellar_sdk.transaction_envelope import TransactionEnvelope

from devnet.process import DevnetProcess, DevnetRpcError
from devnet.surge import BAN_DEPTH, PENDING_DEPTH, fee_distribution
from tests.support.devnet import execute_args, funded_keypair, result_code

TRC = sx.TransactionResultCode
CAPACITY = 2


@pytest.fixture(scope="module")
def crowded() -> Iterator[DevnetProcess]:
    """Ledgers close when asked and include at most two Soroban transactions."""
    with DevnetProcess(close_every=3600, extra_args=("--ledger-capacity", str(CAPACITY))) as dn:
        yield dn


@pytest.fixture(scope="module")
def srv(crowded: DevnetProcess) -> Iterator[SorobanServer]:
    with SorobanServer(crowded.info.rpc_url) as server:
        yield server


@pytest.fixture(autouse=True)
def _quiet(crowded: DevnetProcess) -> Iterator[None]:
    yield
    crowded.rpc("devnet_setLoad", {})
    crowded.rpc("devnet_setCapacity", {"capacity": CAPACITY})
    crowded.close_ledger(PENDING_DEPTH + 1)  # whatever still waits gets in
    assert crowded.stats()["pending"] == 0


def _execute(srv: SorobanServer, dn: DevnetProcess, bid: int) -> TransactionEnvelope:
    """A signed execute from a new keeper bidding ``bid`` stroops of inclusion fee."""
    keeper = funded_keypair(dn)
    first, _ = dn.seed_tasks(count=1)
    account = srv.load_account(keeper.public_key)
    tx = (
        TransactionBuilder(account, dn.info.network_passphrase, base_fee=bid)
        .append_invoke_contract_function_op(
            dn.info.contract_id, "execute", execute_args(keeper.public_key, first)
        )
        .add_time_bounds(0, srv.get_latest_ledger().close_time + 3600)
        .build()
    )
    tx = srv.prepare_transaction(tx)  # fee = bid + the simulated resource fee
    tx.sign(keeper)
    return tx


def _resource_fee(tx: TransactionEnvelope) -> int:
    return tx.transaction.soroban_data.resource_fee.int64


def _charged(xdr: str) -> int:
    return sx.TransactionResult.from_xdr(xdr).fee_charged.int64


def _fee_stats(dn: DevnetProcess) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "getFeeStats"}
    return httpx.post(dn.info.rpc_url, json=body, timeout=10).json()["result"]


class TestInclusion:
    def test_a_higher_bid_gets_in_and_pays_the_lowest_included_bid(
        self, crowded: DevnetProcess, srv: SorobanServer
    ) -> None:
        crowded.rpc("devnet_setLoad", {"count": 2, "fee": 300})
        tx = _execute(srv, crowded, 1000)
        sent = srv.send_transaction(tx)
        assert sent.status == SendTransactionStatus.PENDING
        crowded.close_ledger()  # 3 want in, 2 fit: ours and one load transaction at 300
        found = srv.get_transaction(sent.hash)
        assert found.status == GetTransactionStatus.SUCCESS
        assert _charged(found.result_xdr) == 300 + _resource_fee(tx)

    def test_a_lower_bid_waits_in_the_queue_until_the_load_drops(
        self, crowded: DevnetProcess, srv: SorobanServer
    ) -> None:
        crowded.rpc("devnet_setLoad", {"count": 2, "fee": 500})
        tx = _execute(srv, crowded, 200)
        sent = srv.send_transaction(tx)
        assert sent.status == SendTransactionStatus.PENDING
        for _ in range(PENDING_DEPTH - 1):
            crowded.close_ledger()
            assert srv.get_transaction(sent.hash).status == GetTransactionStatus.NOT_FOUND
            assert crowded.stats()["pending"] == 1
        crowded.rpc("devnet_setLoad", {})
        crowded.close_ledger()  # alone in the ledger: no surge, the base fee
        found = srv.get_transaction(sent.hash)
        assert found.status == GetTransactionStatus.SUCCESS
        assert _charged(found.result_xdr) == 100 + _resource_fee(tx)

    def test_the_minimum_fee_left_out_too_long_is_dropped_and_banned(
        self, crowded: DevnetProcess, srv: SorobanServer
    ) -> None:
        crowded.rpc("devnet_setLoad", {"count": 2, "fee": 500})
        tx = _execute(srv, crowded, 100)
        sent = srv.send_transaction(tx)
        assert sent.status == SendTransactionStatus.PENDING
        crowded.close_ledger(PENDING_DEPTH)
        assert crowded.stats()["pending"] == 0
        assert crowded.stats()["surge"]["timed_out"] >= 1
        assert srv.get_transaction(sent.hash).status == GetTransactionStatus.NOT_FOUND
        crowded.rpc("devnet_setLoad", {})
        assert srv.send_transaction(tx).status == SendTransactionStatus.TRY_AGAIN_LATER
        crowded.close_ledger(BAN_DEPTH - 1)
        assert srv.send_transaction(tx).status == SendTransactionStatus.TRY_AGAIN_LATER
        crowded.close_ledger()  # the ban has lapsed
        assert srv.send_transaction(tx).status == SendTransactionStatus.PENDING
        crowded.close_ledger()
        assert srv.get_transaction(sent.hash).status == GetTransactionStatus.SUCCESS


class TestQueueLimit:
    def test_a_full_queue_refuses_low_bids_and_evicts_the_cheapest(
        self, crowded: DevnetProcess, srv: SorobanServer
    ) -> None:
        crowded.rpc("devnet_setCapacity", {"capacity": 1})  # the queue holds 2
        crowded.rpc("devnet_setLoad", {"count": 2, "fee": 400})  # ... and is full
        low = _execute(srv, crowded, 300)
        refused = srv.send_transaction(low)
        assert refused.status == SendTransactionStatus.ERROR
        assert result_code(refused) == TRC.txINSUFFICIENT_FEE
        assert _charged(refused.error_result_xdr) == 401 + _resource_fee(low)  # what gets in
        assert srv.send_transaction(low).status == SendTransactionStatus.TRY_AGAIN_LATER

        high = _execute(srv, crowded, 1000)  # evicts a load transaction (400)
        assert srv.send_transaction(high).status == SendTransactionStatus.PENDING
        equal = _execute(srv, crowded, 400)  # must now beat the evicted bid
        assert result_code(srv.send_transaction(equal)) == TRC.txINSUFFICIENT_FEE
        middle = _execute(srv, crowded, 450)  # evicts the last load transaction
        middle_sent = srv.send_transaction(middle)
        assert middle_sent.status == SendTransactionStatus.PENDING
        below_middle = _execute(srv, crowded, 420)  # the cheapest queued is now 450
        answer = srv.send_transaction(below_middle)
        assert result_code(answer) == TRC.txINSUFFICIENT_FEE
        assert _charged(answer.error_result_xdr) == 451 + _resource_fee(below_middle)
        top = _execute(srv, crowded, 500)  # evicts 450: it is dropped and banned
        assert srv.send_transaction(top).status == SendTransactionStatus.PENDING
        assert srv.send_transaction(middle).status == SendTransactionStatus.TRY_AGAIN_LATER

        crowded.close_ledger()  # room for one: the highest bid, paying its own bid
        found = srv.get_transaction(high.hash_hex())
        assert found.status == GetTransactionStatus.SUCCESS
        assert _charged(found.result_xdr) == 1000 + _resource_fee(high)
        assert srv.get_transaction(top.hash_hex()).status == GetTransactionStatus.NOT_FOUND
        assert srv.get_transaction(middle_sent.hash).status == GetTransactionStatus.NOT_FOUND
        assert crowded.stats()["surge"]["evicted"] >= 3

    def test_capacity_and_load_controls(self, crowded: DevnetProcess) -> None:
        surge = crowded.stats()["surge"]
        assert (surge["capacity"], surge["queue_limit"]) == (CAPACITY, 2 * CAPACITY)
        out = crowded.rpc("devnet_setCapacity", {"capacity": None})["surge"]
        assert (out["capacity"], out["queue_limit"]) == (None, None)
        out = crowded.rpc("devnet_setLoad", {"count": 7, "fee": 250})["surge"]
        assert out["load"] == {"count": 7, "fee": 250, "queued": 7}
        for method, bad in (
            ("devnet_setCapacity", {"capacity": 0}),
            ("devnet_setCapacity", {"size": 3}),
            ("devnet_setLoad", {"count": 1, "fee": 99}),
            ("devnet_setLoad", {"count": -1}),
        ):
            with pytest.raises(DevnetRpcError) as err:
                crowded.rpc(method, bad)
            assert err.value.code == -32602, (method, bad)


class TestFeeStats:
    def test_fee_stats_are_what_the_last_50_ledgers_included(self) -> None:
        with (
            DevnetProcess(close_every=3600, extra_args=("--ledger-capacity", "2")) as dn,
            SorobanServer(dn.info.rpc_url) as srv,
        ):
            empty = _fee_stats(dn)
            assert empty["sorobanInclusionFee"] == fee_distribution([], 0)
            assert empty["sorobanInclusionFee"]["p50"] == "0"
            assert empty["inclusionFee"]["transactionCount"] == "0"

            dn.rpc("devnet_setLoad", {"count": 3, "fee": 500})
            dn.close_ledger()  # 2 of 3 in, each paying 500
            dn.rpc("devnet_setLoad", {"count": 3, "fee": 800})
            dn.close_ledger()  # 2 of 3 in, each paying 800
            dn.rpc("devnet_setLoad", {})
            dn.close_ledger()  # an empty ledger still counts in ledgerCount
            stats = _fee_stats(dn)
            soroban = stats["sorobanInclusionFee"]
            assert {k: v for k, v in soroban.items() if k != "ledgerCount"} == {
                "max": "800",
                "min": "500",
                "mode": "500",
                "p10": "500",
                "p20": "500",
                "p30": "500",
                "p40": "500",
                "p50": "500",
                "p60": "800",
                "p70": "800",
                "p80": "800",
                "p90": "800",
                "p95": "800",
                "p99": "800",
                "transactionCount": "4",
            }
            assert soroban["ledgerCount"] == 3  # a number, unlike the rest
            assert stats["latestLedger"] == srv.get_latest_ledger().sequence

            parsed = srv.get_fee_stats()  # the SDK reads the same
            assert parsed.soroban_inclusion_fee.p60 == 800
            assert parsed.soroban_inclusion_fee.transaction_count == 4
            assert parsed.soroban_inclusion_fee.ledger_count == 3

            dn.close_ledger(48)  # the 500s are the 51st ledger back: out of the window
            assert _fee_stats(dn)["sorobanInclusionFee"]["max"] == "800"
            assert _fee_stats(dn)["sorobanInclusionFee"]["min"] == "800"
            dn.close_ledger()
            assert _fee_stats(dn)["sorobanInclusionFee"] == fee_distribution([], 0)

    def test_distribution_is_nearest_rank_with_the_lowest_mode_on_ties(self) -> None:
        fees = [300, 100, 200, 100, 200, 1000, 200, 100]
        out = fee_distribution(fees, 2)
        assert (out["min"], out["max"], out["mode"]) == ("100", "1000", "100")
        assert [out[f"p{p}"] for p in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)] == [
            "100",
            "100",
            "100",
            "200",
            "200",
            "200",
            "200",
            "300",
            "1000",
            "1000",
            "1000",
        ]
        assert (out["transactionCount"], out["ledgerCount"]) == ("8", 2)
        assert fee_distribution([7], 1)["p99"] == "7"
