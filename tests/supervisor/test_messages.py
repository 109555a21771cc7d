"""Unit tests of the pipe protocol (supervisor.messages) and the stats aggregation."""

from __future__ import annotations

import orjson
import pytest

from shard_worker.spec import CycleStats
from supervisor import messages
from supervisor.messages import ProtocolError, decode_from_worker, decode_to_worker, encode
from supervisor.stats import ShardTotals, summary, summary_table


def raw(**obj: object) -> bytes:
    return orjson.dumps(obj)


class TestMessageRoundTrip:
    def test_every_worker_message_type_round_trips(self) -> None:
        stats = CycleStats(
            shard="a",
            cycle=1,
            ledger=5,
            ledger_time=10,
            started_at=1.0,
            duration_s=0.1,
            checked=3,
            skipped={"not_due": 2},
        )
        cases = {
            "started": {"pid": 5},
            "hello": {"pid": 5, "keeper_public_key": "G" * 56, "channel_public_keys": []},
            "heartbeat": {},
            "cycle": {"stats": stats.to_dict()},
            "event": {"kind": "executed", "data": {"task_id": 3}},
            "fatal": {"code": 78, "message": "bad secret"},
            "goodbye": {"final": {"cycles": 1}},
        }
        for type_, fields in cases.items():
            msg = decode_from_worker(encode(type_, **fields))
            assert msg.type == type_ and msg.fields == fields

    def test_supervisor_messages_round_trip(self) -> None:
        assert decode_to_worker(encode("stop")).type == "stop"
        m = decode_to_worker(encode("spec", spec={"name": "a"}, entry="m:f"))
        assert m["entry"] == "m:f"


class TestMessageValidation:
    @pytest.mark.parametrize(
        "data",
        [
            b"\x80\x04garbage",
            b"",
            b"[1, 2]",
            b'"hello"',
            b"{not json",
            raw(type="heartbeat"),  # no version
            raw(v=2, type="heartbeat"),  # wrong version
            raw(v="1", type="heartbeat"),
            raw(v=True, type="heartbeat"),
            raw(v=1, type="spec", spec={}, entry="x:y"),  # wrong direction
            raw(v=1, type="nope"),
            raw(v=1, type="hello", pid=1, keeper_public_key="G"),  # missing field
            raw(v=1, type="hello", pid="1", keeper_public_key="G", channel_public_keys=[]),
            raw(v=1, type="hello", pid=True, keeper_public_key="G", channel_public_keys=[]),
            raw(v=1, type="hello", pid=1, keeper_public_key="G", channel_public_keys=[1]),
            raw(v=1, type="heartbeat", extra=1),  # unknown field
            raw(v=1, type="fatal", code=1.5, message="x"),
            raw(v=1, type="cycle", stats={"checked": -1}),
            raw(v=1, type="cycle", stats={"checked": "3"}),
            raw(v=1, type="cycle", stats={"duration_s": "slow"}),
            raw(v=1, type="cycle", stats={"skipped": {"x": "y"}}),
            raw(v=1, type="cycle", stats={"rpc_calls": []}),
            raw(v=1, type="started", pid=0),
        ],
    )
    def test_malformed_worker_message_is_a_protocol_error(self, data: bytes) -> None:
        with pytest.raises(ProtocolError):
            decode_from_worker(data)

    def test_oversized_message_is_rejected_before_parsing(self) -> None:
        big = raw(v=1, type="event", kind="x", data={"blob": "a" * messages.MAX_MESSAGE_BYTES})
        with pytest.raises(ProtocolError, match="exceeds"):
            decode_from_worker(big)
        with pytest.raises(ProtocolError, match="exceeds"):
            encode("event", kind="x", data={"blob": "a" * messages.MAX_MESSAGE_BYTES})

    def test_encoding_an_unknown_type_fails(self) -> None:
        with pytest.raises(ProtocolError):
            encode("pickle")


class TestStatsAggregation:
    def test_cycles_sum_per_shard_and_in_total(self) -> None:
        a, b = ShardTotals(), ShardTotals()
        for i in range(3):
            a.add_cycle(
                {
                    "checked": 10,
                    "due": 2,
                    "executed": 2,
                    "failed": 0,
                    "duration_s": 0.5,
                    "mean_execution_s": 1.0,
                    "skipped": {"not_due": 8},
                    "rpc_calls": {"getLedgerEntries": 1},
                    "ledger": 10 + i,
                }
            )
        b.add_cycle(
            {
                "checked": 5,
                "due": 1,
                "executed": 0,
                "failed": 1,
                "duration_s": 1.5,
                "cycle_error": "boom",
            }
        )
        total = ShardTotals()
        total.add(a)
        total.add(b)
        assert (a.cycles, a.checked, a.due, a.executed) == (3, 30, 6, 6)
        assert a.skipped["not_due"] == 24 and a.last_ledger == 12
        assert a.mean_execution_s == 1.0 and a.mean_cycle_duration_s == 0.5
        assert (total.cycles, total.checked, total.failed, total.cycle_errors) == (4, 35, 1, 1)
        assert total.success_rate == 6 / 7
        doc = summary({"a": (a, 2), "b": (b, 0)})
        assert doc["restarts"] == 2 and doc["executed"] == 6 and doc["shards"]["b"]["failed"] == 1
        table = summary_table(doc)
        assert "TOTAL" in table and table.splitlines()[0].split()[0] == "shard"

    def test_label_names_from_a_worker_are_bounded(self) -> None:
        t = ShardTotals()
        for i in range(500):
            t.add_cycle({"skipped": {f"reason-{i}" * 10: 1}, "rpc_latency_s": {f"m{i}": 0.1}})
        assert len(t.skipped) <= 65 and t.skipped["other"] > 0
        assert all(len(k) <= 64 for k in t.skipped)
        assert len(t.rpc_latency_s) <= 64
