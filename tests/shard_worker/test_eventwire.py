"""getEvents on the wire: requests, answers shaped like stellar-rpc's, topics decoded by hand.
Topics are built with stellar-sdk (an independent encoder)."""

from __future__ import annotations

import base64

import pytest
from stellar_sdk import scval

from shard_worker.errors import RpcMalformedError
from shard_worker.eventwire import (
    EVENT_NAMES,
    cursor_ledger,
    decode_symbol_topic,
    decode_u64_topic,
    events_request,
    parse_events,
    symbol_topic_b64,
)
from tests.support.getevents import (
    CONTRACT,
    OTHER_CONTRACT,
    answer,
    event,
    event_id,
    window_end,
)


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

    def test_the_request_is_what_stellar_sdk_builds_for_the_same_query(self) -> None:
        from stellar_sdk.soroban_rpc import (
            EventFilter,
            EventFilterType,
            GetEventsRequest,
            PaginationOptions,
        )

        sdk = GetEventsRequest(
            startLedger=50,
            filters=[
                EventFilter(
                    type=EventFilterType.CONTRACT,
                    contractIds=[CONTRACT],
                    topics=[[scval.to_symbol(n).to_xdr(), "*"] for n in EVENT_NAMES],
                )
            ],
            pagination=PaginationOptions(limit=300),
        ).model_dump(by_alias=True, exclude_none=True, mode="json")
        assert events_request(CONTRACT, start_ledger=50, limit=300) == sdk

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
    def test_the_test_answers_have_stellar_rpc_shape(self) -> None:
        from stellar_sdk.soroban_rpc import GetEventsResponse

        res = answer([event(10, 1, "TaskRegistered", 7)], latest=11)
        parsed = GetEventsResponse.model_validate(res)
        assert parsed.cursor == window_end(11) and parsed.events[0].id == res["events"][0]["id"]

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
