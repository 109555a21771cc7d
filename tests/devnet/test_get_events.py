"""getEvents and the retention window as stellar-rpc v28 has them (SOROBAN_FACTS.md, "getEvents
(stellar-rpc)"), through the stock stellar-sdk client and, where it hides the shape, raw HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from stellar_sdk import Keypair, SorobanServer, scval
from stellar_sdk.soroban_rpc import GetTransactionStatus

from devnet.process import DevnetProcess
from devnet.sorotask_contract import SOROTASK_ID, TARGET_OK_ID
from tests.support import reference_contract as sc
from tests.support.devnet import DevnetOptions, funded_keypair, invoke_tx, wait_for_tx
from tests.support.events import end_cursor, events_error, raw_call, topic_filter

REGISTERED = scval.to_symbol("TaskRegistered").to_xdr()
EVENT_KEYS = {
    "type",
    "ledger",
    "ledgerClosedAt",
    "contractId",
    "id",
    "operationIndex",
    "transactionIndex",
    "inSuccessfulContractCall",
    "txHash",
    "topic",
    "value",
}
#: enough events to need more than one default page (100)
MANY = 103


def _send_all(dn: DevnetProcess, srv: SorobanServer, txs: list[Any]) -> list[str]:
    hashes = []
    for tx in txs:
        sent = srv.send_transaction(tx)
        assert sent.status.value == "PENDING", sent
        hashes.append(sent.hash)
    for h in hashes:
        assert wait_for_tx(srv, h, timeout=20).status == GetTransactionStatus.SUCCESS
    return hashes


def register(dn: DevnetProcess, srv: SorobanServer) -> str:
    """One register transaction (TaskRegistered); its hash once applied. (Registrations in one
    ledger would collide: each one's footprint holds the task id its simulation predicted.)"""
    creator = funded_keypair(dn)
    cfg = sc.TaskConfig(creator=creator.public_key, target=TARGET_OK_ID, function="run")
    tx = srv.prepare_transaction(
        invoke_tx(srv, dn, creator, "register", [sc.encode_task_config(cfg)])
    )
    tx.sign(creator)
    return _send_all(dn, srv, [tx])[0]


def deposit_many(dn: DevnetProcess, srv: SorobanServer, count: int) -> list[str]:
    """``count`` GasDeposited events: one deposit into each of ``count`` new tasks, from as
    many new accounts, sent at once; their hashes once all are applied."""
    admin = funded_keypair(dn)
    if srv.simulate_transaction(invoke_tx(srv, dn, admin, "get_token", [])).error:
        init = srv.prepare_transaction(
            invoke_tx(srv, dn, admin, "init", [scval.to_address(Keypair.random().public_key)])
        )
        init.sign(admin)
        _send_all(dn, srv, [init])
    first, last = dn.seed_tasks(count=count)
    depositors = [Keypair.random() for _ in range(count)]
    dn.rpc("devnet_fund", {"addresses": [d.public_key for d in depositors]})
    txs = []
    for task_id, depositor in zip(range(first, last + 1), depositors, strict=True):
        args = [scval.to_uint64(task_id), scval.to_address(depositor.public_key)]
        tx = srv.prepare_transaction(
            invoke_tx(srv, dn, depositor, "deposit_gas", [*args, scval.to_int128(1)])
        )
        tx.sign(depositor)
        txs.append(tx)
    return _send_all(dn, srv, txs)


def deposited() -> list[dict[str, Any]]:
    return topic_filter("GasDeposited")


def registered_filter() -> list[dict[str, Any]]:
    return topic_filter("TaskRegistered")


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    """A devnet of this module's own (the events below need its token set; the shared devnet's
    contract stays uninitialised), keeping more than 10,000 ledgers for the scan limit."""
    return DevnetOptions(extra_args=("--retention-ledgers", "10100"))


@pytest.fixture(scope="module")
def dn(devnet: DevnetProcess) -> DevnetProcess:
    return devnet


@pytest.fixture(scope="module")
def srv(soroban: SorobanServer) -> SorobanServer:
    return soroban


@pytest.fixture(scope="module")
def many(
    dn: DevnetProcess, srv: SorobanServer
) -> tuple[DevnetProcess, SorobanServer, int, list[str]]:
    """MANY GasDeposited events: (devnet, client, first ledger, hashes)."""
    start = srv.get_latest_ledger().sequence
    hashes = deposit_many(dn, srv, MANY)
    return dn, srv, start, hashes


class TestShape:
    def test_events_and_ranges_have_stellar_rpc_fields_and_string_close_times(
        self, many: tuple[DevnetProcess, SorobanServer, int, list[str]]
    ) -> None:
        dn, _srv, start, hashes = many
        out = raw_call(dn, "getEvents", {"startLedger": start, "filters": deposited()})
        result = out["result"]
        assert set(result) == {
            "events",
            "cursor",
            "latestLedger",
            "oldestLedger",
            "latestLedgerCloseTime",
            "oldestLedgerCloseTime",
        }
        assert isinstance(result["latestLedgerCloseTime"], str)
        assert isinstance(result["oldestLedgerCloseTime"], str)
        assert int(result["latestLedgerCloseTime"]) > int(result["oldestLedgerCloseTime"])
        event = result["events"][0]
        assert set(event) == EVENT_KEYS
        assert event["inSuccessfulContractCall"] is True
        assert event["type"] == "contract" and event["contractId"] == SOROTASK_ID
        assert event["txHash"] in hashes
        assert event["transactionIndex"] >= 1 and event["operationIndex"] == 0

    def test_the_sdk_parses_the_answer(
        self, many: tuple[DevnetProcess, SorobanServer, int, list[str]]
    ) -> None:
        _dn, srv, start, hashes = many
        resp = srv.get_events(start_ledger=start, filters=deposited(), limit=MANY)
        assert {e.transaction_hash for e in resp.events} == set(hashes)
        assert resp.oldest_ledger <= start <= resp.latest_ledger


class TestPagination:
    def test_the_default_page_is_100_and_its_cursor_is_the_last_event(
        self, many: tuple[DevnetProcess, SorobanServer, int, list[str]]
    ) -> None:
        _dn, srv, start, _hashes = many
        resp = srv.get_events(start_ledger=start, filters=deposited())
        assert len(resp.events) == 100
        assert resp.cursor == resp.events[-1].id

    def test_resuming_from_each_cursor_reads_every_event_once_in_order(
        self, many: tuple[DevnetProcess, SorobanServer, int, list[str]]
    ) -> None:
        _dn, srv, start, _hashes = many
        page = srv.get_events(start_ledger=start, filters=deposited(), limit=7)
        seen = [e.id for e in page.events]
        for _ in range(MANY):  # bounded: at most one page per event
            if len(page.events) < 7:
                break
            page = srv.get_events(filters=deposited(), cursor=page.cursor, limit=7)
            seen += [e.id for e in page.events]
        assert len(seen) == len(set(seen)) == MANY  # nothing repeated, nothing missed
        assert seen == sorted(seen)
        # the last page ended with the scan: its cursor is the end of the scanned window
        assert page.cursor == end_cursor(page.latest_ledger)

    def test_the_end_of_window_cursor_resumes_with_only_new_events(
        self, many: tuple[DevnetProcess, SorobanServer, int, list[str]]
    ) -> None:
        dn, srv, start, _hashes = many
        done = srv.get_events(start_ledger=start, filters=deposited(), limit=1000)
        assert len(done.events) == MANY and done.cursor == end_cursor(done.latest_ledger)
        (new,) = deposit_many(dn, srv, 1)
        resumed = srv.get_events(filters=deposited(), cursor=done.cursor, limit=1000)
        assert [e.transaction_hash for e in resumed.events] == [new]

    def test_end_ledger_is_exclusive(
        self, many: tuple[DevnetProcess, SorobanServer, int, list[str]]
    ) -> None:
        dn, srv, start, _hashes = many
        all_events = srv.get_events(start_ledger=start, filters=deposited(), limit=1000)
        first_ledger = all_events.events[0].ledger
        out = raw_call(
            dn,
            "getEvents",
            {
                "startLedger": first_ledger,
                "endLedger": first_ledger + 1,
                "filters": deposited(),
                "pagination": {"limit": 1000},
            },
        )["result"]
        assert out["events"] and {e["ledger"] for e in out["events"]} == {first_ledger}
        assert out["cursor"] == end_cursor(first_ledger)

    def test_limit_at_most_10000(self, dn: DevnetProcess) -> None:
        latest = dn.rpc("getLatestLedger")["sequence"]
        err = events_error(dn, {"startLedger": latest, "pagination": {"limit": 10_001}})
        assert err == {"code": -32602, "message": "limit must not exceed 10000"}
        ok = raw_call(dn, "getEvents", {"startLedger": latest, "pagination": {"limit": 10_000}})
        assert "result" in ok

    def test_cursor_and_ledger_range_cannot_both_be_set(self, dn: DevnetProcess) -> None:
        latest = dn.rpc("getLatestLedger")["sequence"]
        err = events_error(
            dn, {"startLedger": latest, "pagination": {"cursor": end_cursor(latest - 1)}}
        )
        assert err == {"code": -32602, "message": "ledger ranges and cursor cannot both be set"}
        err = events_error(dn, {"filters": []})
        assert err == {"code": -32602, "message": "startLedger must be positive"}


class TestFilters:
    def _messages(self, dn: DevnetProcess, filters: list[dict[str, Any]]) -> str:
        latest = dn.rpc("getLatestLedger")["sequence"]
        err = events_error(dn, {"startLedger": latest, "filters": filters})
        assert err["code"] == -32602
        return err["message"]

    def test_at_most_5_filters_of_5_contract_ids_and_5_topics(self, dn: DevnetProcess) -> None:
        one = {"contractIds": [SOROTASK_ID]}
        assert self._messages(dn, [one] * 6) == "maximum 5 filters per request"
        ids = {"contractIds": [SOROTASK_ID] * 6}
        assert self._messages(dn, [ids]) == ("filter 1 invalid: maximum 5 contract IDs per filter")
        topics = {"topics": [["*"]] * 6}
        assert self._messages(dn, [one, topics]) == (
            "filter 2 invalid: maximum 5 topics per filter"
        )

    def test_a_topic_has_1_to_4_segments_and_double_star_only_last(self, dn: DevnetProcess) -> None:
        long = {"topics": [["*"] * 5]}
        assert self._messages(dn, [long]) == (
            "filter 1 invalid: topic 1 invalid: topic cannot have more than 4 segments"
        )
        assert "at least 1 segment" in self._messages(dn, [{"topics": [[]]}])
        inner = {"topics": [["*", "**", "*"]]}
        assert self._messages(dn, [inner]) == (
            "filter 1 invalid: topic 1 invalid: segment 2 invalid: "
            "wildcard '**' is only allowed as the last segment"
        )
        assert "contract ID 1 invalid" in self._messages(dn, [{"contractIds": ["CXYZ"]}])

    def test_segments_match_a_value_star_and_trailing_double_star(
        self, many: tuple[DevnetProcess, SorobanServer, int, list[str]]
    ) -> None:
        _dn, srv, start, _hashes = many

        def count(topic: list[str]) -> int:
            resp = srv.get_events(
                start_ledger=start,
                filters=[{"contractIds": [SOROTASK_ID], "topics": [topic]}],
                limit=1000,
            )
            return len(resp.events)

        # GasDeposited events have exactly two topics: (symbol, task id)
        name = scval.to_symbol("GasDeposited").to_xdr()
        total = count([name, "*"])
        assert total >= MANY  # (other tests of this module deposit too)
        assert count([name, "**"]) == total
        assert count([name, "*", "**"]) == total
        assert count(["*", "*", "**"]) >= total
        assert count([name]) == 0  # no trailing "**": the length must match
        assert count([name, "*", "*"]) == 0
        assert count([REGISTERED, "**"]) == 0


class TestScanLimit:
    def test_one_request_scans_at_most_10000_ledgers(
        self, dn: DevnetProcess, srv: SorobanServer
    ) -> None:
        early = register(dn, srv)
        early_ledger = srv.get_transaction(early).ledger
        for _ in range(10):
            dn.close_ledger(1000)
        late = register(dn, srv)
        assert srv.get_transaction(late).ledger > early_ledger + 10_000
        first = srv.get_events(start_ledger=early_ledger, filters=registered_filter())
        assert [e.transaction_hash for e in first.events] == [early]
        # the window ended after 10,000 ledgers, before the latest ledger
        assert first.cursor == end_cursor(early_ledger + 9_999)
        assert first.latest_ledger > early_ledger + 10_000
        rest = srv.get_events(filters=registered_filter(), cursor=first.cursor)
        assert [e.transaction_hash for e in rest.events] == [late]
