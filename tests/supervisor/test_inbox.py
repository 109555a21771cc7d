"""supervisor.inbox: the table that applies each worker message to its shard's record."""

from __future__ import annotations

import pytest
from loguru import logger

from shard_worker.spec import SecretRef, WorkerSpec
from supervisor import inbox
from supervisor.config import ShardPlan
from supervisor.messages import FROM_WORKER, Message, ProtocolError
from supervisor.registry import ShardRecord, State

KEY = "G" + "A" * 55
PID = 4242


def record(**fields: object) -> ShardRecord:
    spec = WorkerSpec(
        name="a",
        rpc_url="http://127.0.0.1:1",
        network_passphrase="Standalone Network ; February 2017",
        contract_id="C" + "A" * 55,
        secret=SecretRef(env="K"),
    )
    rec = ShardRecord(ShardPlan(spec=spec, keeper_public_key=KEY, channel_public_keys=(), host=0))
    rec.worker_started(PID, 10.0)
    for k, v in fields.items():
        setattr(rec, k, v)
    return rec


def hello(pid: int = PID, key: str = KEY) -> Message:
    return Message("hello", {"pid": pid, "keeper_public_key": key, "channel_public_keys": []})


def cycle(**stats: object) -> Message:
    return Message("cycle", {"stats": {"shard": "a", "cycle": 1, **stats}})


class TestTable:
    def test_has_one_handler_per_worker_message_type(self) -> None:
        assert set(inbox.HANDLERS) == set(FROM_WORKER)

    def test_dispatches_by_type(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[tuple[str, float]] = []
        for type_ in FROM_WORKER:
            monkeypatch.setitem(
                inbox.HANDLERS, type_, lambda rec, msg, now: calls.append((msg.type, now))
            )
        rec = record()
        for i, type_ in enumerate(FROM_WORKER):
            inbox.dispatch(rec, Message(type_, {}), 20.0 + i)
        assert calls == [(t, 20.0 + i) for i, t in enumerate(FROM_WORKER)]
        assert rec.last_msg_at == 20.0 + len(FROM_WORKER) - 1

    def test_every_message_marks_the_worker_alive(self) -> None:
        rec = record()
        inbox.dispatch(rec, Message("heartbeat", {}), 33.0)
        assert rec.last_msg_at == 33.0


class TestConversationOrder:
    def test_hello_makes_a_starting_shard_running(self) -> None:
        rec = record(death_at=9.5)
        inbox.dispatch(rec, hello(), 10.5)
        assert rec.state == State.RUNNING and rec.hello is not None
        assert rec.replacement["hello_ms"] == pytest.approx(1000.0)

    def test_hello_leaves_a_stopping_shard_stopping(self) -> None:
        rec = record(state=State.STOPPING)
        inbox.dispatch(rec, hello(), 11.0)
        assert rec.state == State.STOPPING

    @pytest.mark.parametrize(
        ("setup", "msg", "match"),
        [
            ([], cycle(), "cycle before hello"),
            ([hello()], hello(), "second hello"),
            ([], hello(pid=1), "hello: pid 1 is not 4242"),
            ([], Message("started", {"pid": 7}), "started: pid 7 is not 4242"),
            ([hello(), Message("goodbye", {"final": {}})], cycle(), "cycle after goodbye"),
            ([hello(), Message("goodbye", {"final": {}})], hello(), "hello after goodbye"),
            (
                [hello(), Message("goodbye", {"final": {}})],
                Message("goodbye", {"final": {}}),
                "goodbye after goodbye",
            ),
        ],
    )
    def test_out_of_order_messages_are_protocol_errors(
        self, setup: list[Message], msg: Message, match: str
    ) -> None:
        rec = record()
        for m in setup:
            inbox.dispatch(rec, m, 11.0)
        with pytest.raises(ProtocolError, match=match):
            inbox.dispatch(rec, msg, 12.0)

    def test_heartbeats_after_goodbye_are_fine(self) -> None:
        rec = record()
        inbox.dispatch(rec, Message("goodbye", {"final": {}}), 11.0)
        inbox.dispatch(rec, Message("heartbeat", {}), 12.0)
        assert rec.last_msg_at == 12.0


class TestWhatMessagesRecord:
    def test_started_times_the_replacement(self) -> None:
        rec = record(death_at=9.0)
        inbox.dispatch(rec, Message("started", {"pid": PID}), 9.05)
        assert rec.replacement["ready_ms"] == pytest.approx(50.0)

    def test_cycles_add_to_the_totals_and_this_process_life(self) -> None:
        rec = record(death_at=9.0)
        inbox.dispatch(rec, hello(), 10.0)
        inbox.dispatch(rec, cycle(checked=4, executed=1), 11.0)
        inbox.dispatch(rec, cycle(checked=4, executed=2), 12.0)
        assert (rec.totals.cycles, rec.totals.checked, rec.life.executed) == (2, 8, 3)
        assert rec.last_cycle == {"shard": "a", "cycle": 1, "checked": 4, "executed": 2}
        assert rec.last_cycle_at == 12.0
        assert rec.replacement["first_cycle_ms"] == pytest.approx(2000.0)  # the first one

    def test_events_are_counted_by_kind(self) -> None:
        rec = record()
        for kind in ("executed", "executed", "failed"):
            inbox.dispatch(rec, Message("event", {"kind": kind, "data": {}}), 11.0)
        assert rec.totals.events == {"executed": 2, "failed": 1}

    def test_goodbye_is_logged_as_key_value_pairs_like_the_task_events(self) -> None:
        lines: list[str] = []
        sink = logger.add(lambda m: lines.append(str(m).rstrip("\n")), format="{message}")
        try:
            rec = record()
            inbox.dispatch(rec, hello(), 10.0)
            final = {"executed": 2, "cycles": 3, "would_execute": [[4, 1]], "in_flight_left": 0}
            inbox.dispatch(rec, Message("goodbye", {"final": final}), 12.0)
        finally:
            logger.remove(sink)
        assert "shard a: goodbye cycles=3 executed=2 in_flight_left=0" in lines

    def test_fatal_is_kept_for_the_exit(self) -> None:
        rec = record()
        inbox.dispatch(rec, Message("fatal", {"code": 78, "message": "bad secret"}), 11.0)
        assert rec.fatal == {"code": 78, "message": "bad secret"}

    def test_goodbye_tops_up_outcomes_confirmed_after_the_last_cycle(self) -> None:
        rec = record()
        inbox.dispatch(rec, hello(), 10.0)
        inbox.dispatch(rec, cycle(executed=2, fees_spent=200, checked=9), 11.0)
        final = {"executed": 5, "fees_spent": 150, "checked": 50, "failed": True, "cycles": 1}
        inbox.dispatch(rec, Message("goodbye", {"final": final}), 12.0)
        t = rec.totals
        assert t.executed == 5  # +3 confirmed while draining
        assert t.fees_spent == 200  # never less than the cycles said
        assert t.checked == 9  # not an outcome
        assert t.failed == 0  # a boolean is not a count
        assert rec.final == final
