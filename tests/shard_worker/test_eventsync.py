"""Following the contract's events: requests, answers shaped like stellar-rpc's, and when a
full re-read is needed. Topics are built with stellar-sdk (an independent encoder)."""

from __future__ import annotations

import base64

import pytest
from stellar_sdk import StrKey, scval

from shard_worker.errors import RpcMalformedError, RpcResponseError, RpcTransportError
from shard_worker.eventsync import (
    EVENT_NAMES,
    EventSync,
    Position,
    cursor_ledger,
    decode_symbol_topic,
    decode_u64_topic,
    events_request,
    parse_events,
    symbol_topic_b64,
    window_reason,
)

CONTRACT = StrKey.encode_contract(bytes(range(32)))
OTHER_CONTRACT = StrKey.encode_contract(bytes(32))
TX_MASK, OP_MASK, EV_MAX = 0xFFFFF, 0xFFF, 0xFFFFFFFF


def event_id(ledger: int, tx: int, op: int = 0, index: int = 0) -> str:
    """stellar-rpc's Cursor.String(): SEP-35 toid, then the event index."""
    return f"{(ledger << 32) | (tx << 12) | op:019d}-{index:010d}"


def window_end(ledger: int) -> str:
    return event_id(ledger, TX_MASK, OP_MASK, EV_MAX)


def event(
    ledger: int,
    tx: int,
    name: str,
    task_id: int,
    *,
    index: int = 0,
    ok: bool | None = True,
    contract: str = CONTRACT,
) -> dict:
    ev = {
        "type": "contract",
        "ledger": ledger,
        "ledgerClosedAt": "2026-01-01T00:00:00Z",
        "contractId": contract,
        "id": event_id(ledger, tx, 1, index),
        "opIndex": 0,
        "txIndex": tx,
        "txHash": "ab" * 32,
        "topic": [scval.to_symbol(name).to_xdr(), scval.to_uint64(task_id).to_xdr()],
        "value": scval.to_void().to_xdr(),
    }
    if ok is not None:
        ev["inSuccessfulContractCall"] = ok
    return ev


def answer(events: list[dict], latest: int, oldest: int = 1, cursor: str | None = None) -> dict:
    return {
        "events": events,
        "cursor": cursor if cursor is not None else window_end(latest),
        "latestLedger": latest,
        "oldestLedger": oldest,
        "latestLedgerCloseTime": "1700000000",
        "oldestLedgerCloseTime": "1690000000",
    }


class TestTopics:
    @pytest.mark.parametrize("name", EVENT_NAMES)
    def test_symbol_filter_segments_match_the_sdk_encoding(self, name: str) -> None:
        assert symbol_topic_b64(name) == scval.to_symbol(name).to_xdr()
        assert decode_symbol_topic(scval.to_symbol(name).to_xdr()) == name

    @pytest.mark.parametrize("value", [0, 1, 2**32, 2**64 - 1])
    def test_u64_topics_decode(self, value: int) -> None:
        assert decode_u64_topic(scval.to_uint64(value).to_xdr()) == value

    @pytest.mark.parametrize(
        "topic",
        [
            scval.to_uint32(5).to_xdr(),
            scval.to_int64(5).to_xdr(),
            scval.to_symbol("x").to_xdr(),
            "not base64!",
            "",
            None,
        ],
    )
    def test_anything_but_a_u64_is_refused_as_an_id(self, topic: object) -> None:
        with pytest.raises(ValueError):
            decode_u64_topic(topic)

    def test_a_symbol_with_bad_length_or_padding_is_refused(self) -> None:
        good = base64.b64decode(scval.to_symbol("abc").to_xdr())
        raw = bytearray(good)
        raw[-1] = 1  # non-zero padding
        with pytest.raises(ValueError):
            decode_symbol_topic(base64.b64encode(bytes(raw)).decode())
        with pytest.raises(ValueError):
            decode_symbol_topic(base64.b64encode(good + b"\0\0\0\0").decode())


class TestCursor:
    def test_the_ledger_comes_from_the_toid(self) -> None:
        assert cursor_ledger(event_id(123_456, 7, 1, 2)) == 123_456
        assert cursor_ledger(window_end(99)) == 99

    @pytest.mark.parametrize("text", ["", "abc", "12", "1-2-3", "x-1", None])
    def test_an_unparseable_cursor_has_no_ledger(self, text: object) -> None:
        assert cursor_ledger(text) is None  # type: ignore[arg-type]


class TestRequest:
    def test_start_ledger_request(self) -> None:
        params = events_request(CONTRACT, start_ledger=50, limit=200)
        assert params == {
            "startLedger": 50,
            "filters": [
                {
                    "type": "contract",
                    "contractIds": [CONTRACT],
                    "topics": [[scval.to_symbol(n).to_xdr(), "*"] for n in EVENT_NAMES],
                }
            ],
            "pagination": {"limit": 200},
        }

    def test_cursor_request_omits_the_start_ledger(self) -> None:
        params = events_request(CONTRACT, cursor=window_end(9))
        assert "startLedger" not in params
        assert params["pagination"] == {"limit": 1000, "cursor": window_end(9)}

    @pytest.mark.parametrize(
        "kw",
        [
            {},
            {"cursor": "1-1", "start_ledger": 3},
            {"start_ledger": 0},
            {"cursor": "x", "limit": 0},
        ],
    )
    def test_bad_combinations_are_refused(self, kw: dict) -> None:
        with pytest.raises(ValueError):
            events_request(CONTRACT, **kw)


class TestParse:
    def test_ids_by_event_kind(self) -> None:
        batch = parse_events(
            answer(
                [
                    event(10, 1, "TaskRegistered", 7),
                    event(10, 2, "GasDeposited", 3),
                    event(11, 1, "GasWithdrawn", 3),
                    event(11, 2, "TaskRegistered", 8),
                ],
                latest=11,
            ),
            CONTRACT,
            limit=100,
        )
        assert batch.registered == {7, 8} and batch.deposited == {3} and batch.withdrawn == {3}
        assert batch.ids == {3, 7, 8} and batch.max_registered == 8
        assert batch.events == 4 and not batch.more
        assert batch.cursor == window_end(11) and batch.cursor_ledger == 11
        assert batch.latest_ledger == 11 and batch.oldest_ledger == 1

    def test_events_of_failed_calls_are_ignored(self) -> None:
        batch = parse_events(
            answer(
                [event(10, 1, "GasDeposited", 3, ok=False), event(10, 2, "GasDeposited", 4)], 10
            ),
            CONTRACT,
            limit=100,
        )
        assert batch.ids == {4} and batch.failed_calls == 1

    def test_a_missing_success_flag_counts_as_success(self) -> None:
        batch = parse_events(
            answer([event(10, 1, "GasDeposited", 3, ok=None)], 10), CONTRACT, limit=9
        )
        assert batch.ids == {3}

    def test_other_contracts_types_and_topics_are_foreign(self) -> None:
        other = event(10, 1, "GasDeposited", 3, contract=OTHER_CONTRACT)
        system = {**event(10, 2, "GasDeposited", 4), "type": "system"}
        topic = event(10, 3, "GasDeposited", 5)
        topic["topic"] = [scval.to_symbol("transfer").to_xdr(), scval.to_uint64(5).to_xdr()]
        batch = parse_events(answer([other, system, topic], 10), CONTRACT, limit=100)
        assert batch.ids == set() and batch.foreign == 3

    def test_duplicates_by_event_id_are_skipped(self) -> None:
        seen: set[str] = set()
        evs = [event(10, 1, "GasDeposited", 3), event(10, 2, "GasWithdrawn", 4)]
        first = parse_events(answer(evs, 10), CONTRACT, limit=100, seen=seen)
        again = parse_events(
            answer([*evs, event(11, 1, "GasDeposited", 5)], 11), CONTRACT, limit=100, seen=seen
        )
        assert first.ids == {3, 4} and again.ids == {5} and again.duplicates == 2
        assert again.event_ids == [event(11, 1, "GasDeposited", 5)["id"]]

    def test_a_full_page_or_a_short_window_asks_for_more(self) -> None:
        evs = [event(10, i, "GasDeposited", i) for i in range(1, 4)]
        full = parse_events(answer(evs, 20, cursor=evs[-1]["id"]), CONTRACT, limit=3)
        assert full.more and full.cursor_ledger == 10
        short = parse_events(answer([], 20_000, cursor=window_end(10_050)), CONTRACT, limit=3)
        assert short.more and short.cursor_ledger == 10_050
        done = parse_events(answer(evs, 20), CONTRACT, limit=4)
        assert not done.more

    def test_no_events_field_is_an_empty_answer(self) -> None:
        res = answer([], 10)
        del res["events"]
        assert parse_events(res, CONTRACT, limit=5).ids == set()

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda r: [],
            lambda r: {**r, "events": {}},
            lambda r: {**r, "cursor": ""},
            lambda r: {**r, "cursor": None},
            lambda r: {**r, "latestLedger": None},
            lambda r: {**r, "latestLedger": True},
            lambda r: {**r, "latestLedger": "ten"},
            lambda r: {**r, "events": ["x"]},
            lambda r: {**r, "events": [{**r["events"][0], "id": None}]},
            lambda r: {**r, "events": [{**r["events"][0], "topic": []}]},
            lambda r: {**r, "events": [{**r["events"][0], "topic": ["!!"]}]},
            lambda r: {**r, "events": [{**r["events"][0], "topic": r["events"][0]["topic"][:1]}]},
            lambda r: {
                **r,
                "events": [
                    {
                        **r["events"][0],
                        "topic": [r["events"][0]["topic"][0], scval.to_int64(3).to_xdr()],
                    }
                ],
            },
        ],
        ids=[
            "not_object",
            "events_not_list",
            "empty_cursor",
            "no_cursor",
            "no_latest",
            "bool_latest",
            "text_latest",
            "event_not_object",
            "no_id",
            "no_topics",
            "bad_topic",
            "one_topic",
            "i64_id",
        ],
    )
    def test_malformed_answers_raise(self, mangle: object) -> None:
        res = answer([event(10, 1, "GasDeposited", 3)], 10)
        with pytest.raises(RpcMalformedError):
            parse_events(mangle(res), CONTRACT, limit=10)  # type: ignore[operator]

    def test_latest_ledger_as_a_string_is_accepted(self) -> None:
        res = {**answer([], 10), "latestLedger": "10", "oldestLedger": "3"}
        batch = parse_events(res, CONTRACT, limit=10)
        assert batch.latest_ledger == 10 and batch.oldest_ledger == 3


def range_error(oldest: int, latest: int) -> RpcResponseError:
    return RpcResponseError(
        "getEvents", -32600, f"startLedger must be within the ledger range: {oldest} - {latest}"
    )


class TestEventSync:
    def test_a_new_follower_needs_a_full_read(self) -> None:
        sync = EventSync(CONTRACT)
        assert sync.rescan_reason and "first start" in sync.rescan_reason
        with pytest.raises(RuntimeError):
            sync.request()

    def test_after_a_scan_it_starts_at_the_scan_ledger_then_carries_the_cursor(self) -> None:
        sync = EventSync(CONTRACT, limit=50)
        sync.start_at(100)
        assert sync.rescan_reason is None
        assert sync.request()["startLedger"] == 100
        batch = sync.accept(answer([event(100, 1, "TaskRegistered", 9)], 101))
        assert batch.ids == {9}
        assert sync.position == Position(101, window_end(101))
        params = sync.request()
        assert "startLedger" not in params and params["pagination"]["cursor"] == window_end(101)
        # the next answer repeats an event (a client retry, say): deduplicated
        again = sync.accept(
            answer([event(100, 1, "TaskRegistered", 9), event(102, 1, "GasDeposited", 9)], 102)
        )
        assert again.ids == {9} and again.duplicates == 1 and again.events == 1

    def test_only_recent_event_ids_are_remembered(self) -> None:
        sync = EventSync(CONTRACT, recent_ids=2)
        sync.start_at(1)
        evs = [event(5, i, "GasDeposited", i) for i in range(1, 5)]
        sync.accept(answer(evs, 5))
        assert sync.accept(answer(evs[2:], 5)).duplicates == 2
        assert sync.accept(answer(evs[:1], 5)).duplicates == 0  # forgotten: behind the cursor

    def test_a_range_error_below_the_range_drops_the_position(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        reason = sync.fail(range_error(500, 1000))
        assert reason == sync.rescan_reason
        assert "older than the RPC's oldest ledger 500" in reason and "retention 501" in reason
        assert sync.position is None

    def test_a_lagging_node_is_not_a_failure(self) -> None:
        sync = EventSync(CONTRACT, lag_tolerance=10)
        sync.start_at(1005)
        assert sync.fail(range_error(500, 1000)) is None
        assert sync.position == Position(1005) and sync.rescan_reason is None

    def test_far_ahead_of_the_node_is_a_reset_network(self) -> None:
        sync = EventSync(CONTRACT, lag_tolerance=10)
        sync.start_at(5000)
        reason = sync.fail(range_error(1, 20))
        assert reason and "ahead of the RPC's latest ledger 20" in reason

    def test_any_other_failure_drops_the_position_by_default(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        reason = sync.fail(RpcTransportError("getEvents", "timed out after 4 attempts"))
        assert reason == "getEvents failed: getEvents: timed out after 4 attempts"
        assert sync.position is None

    def test_failures_can_be_tolerated_a_few_times_in_a_row(self) -> None:
        sync = EventSync(CONTRACT, rescan_after_failures=3)
        sync.start_at(100)
        err = RpcResponseError("getEvents", -32098, "request queue full")
        assert sync.fail(err) is None and sync.fail(err) is None
        sync.accept(answer([], 101))  # a success resets the count
        assert sync.fail(err) is None and sync.fail(err) is None
        reason = sync.fail(err)
        assert reason and reason.startswith("getEvents failed 3 times in a row")

    def test_a_malformed_answer_is_a_failure(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        with pytest.raises(RpcMalformedError):
            sync.accept({"events": "nope", "cursor": "x", "latestLedger": 3})
        assert sync.rescan_reason and "events is not a list" in sync.rescan_reason

    def test_an_answer_older_than_the_position_start_is_not_trusted(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        sync.accept(answer([], 300, oldest=200))
        assert sync.position is None and "older than the RPC's oldest ledger 200" in str(
            sync.rescan_reason
        )

    def test_resume_within_retention(self) -> None:
        sync = EventSync(CONTRACT)
        pos = Position(900, window_end(900))
        assert sync.resume(pos, oldest_ledger=500, latest_ledger=1000) is None
        assert sync.request()["pagination"]["cursor"] == window_end(900)

    def test_resume_after_a_gap_longer_than_retention(self) -> None:
        sync = EventSync(CONTRACT)
        reason = sync.resume(Position(100, window_end(100)), oldest_ledger=500, latest_ledger=1000)
        assert reason and reason.startswith("restart: the events position (ledger 100)")
        assert sync.position is None

    def test_resume_on_a_network_behind_the_position(self) -> None:
        sync = EventSync(CONTRACT, lag_tolerance=2)
        assert sync.resume(Position(1002), oldest_ledger=1, latest_ledger=1000) is None
        sync2 = EventSync(CONTRACT, lag_tolerance=2)
        reason = sync2.resume(Position(1003), oldest_ledger=1, latest_ledger=1000)
        assert reason and "reset network" in reason

    def test_check_window_drops_a_position_that_fell_out_of_retention(self) -> None:
        sync = EventSync(CONTRACT)
        sync.start_at(100)
        assert sync.check_window(50, 200) is None
        reason = sync.check_window(101, 17_380)
        assert reason and "retention 17280 ledgers" in reason


def test_window_reason_inside_the_range_is_none() -> None:
    assert window_reason(500, 500, 1000) is None
    assert window_reason(1000, 500, 1000) is None
