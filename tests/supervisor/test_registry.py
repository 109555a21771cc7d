"""supervisor.registry: shard records, the one-writer edit, snapshots for other threads."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from shard_worker.spec import SecretRef, WorkerSpec
from supervisor.config import ShardPlan
from supervisor.registry import Registry, ShardRecord, State, SupervisorFacts

KEY = "G" + "A" * 55


def plan(name: str = "a", first: int = 1, last: int | None = 100, **spec: object) -> ShardPlan:
    ws = WorkerSpec(
        name=name,
        rpc_url="http://127.0.0.1:1",
        network_passphrase="Standalone Network ; February 2017",
        contract_id="C" + "A" * 55,
        secret=SecretRef(env="K"),
        range_first=first,
        range_last=last,
        **spec,  # type: ignore[arg-type]
    )
    return ShardPlan(spec=ws, keeper_public_key=KEY, channel_public_keys=(), host=0)


def facts(**changes: object) -> SupervisorFacts:
    base = SupervisorFacts(
        pid=1,
        started_mono=100.0,
        config_path="/etc/sorotask.yaml",
        host_index=0,
        host_count=1,
        health_max_cycle_age_s=None,
    )
    return dataclasses.replace(base, **changes)


def registry(*names: str) -> Registry:
    return Registry(facts(), [plan(n) for n in names])


class TestRecords:
    def test_a_new_shard_is_stopped_with_empty_totals(self) -> None:
        rec = registry("a")["a"]
        assert (rec.name, rec.state, rec.pid, rec.alive) == ("a", State.STOPPED, None, False)
        assert rec.totals.cycles == 0 and rec.restarts == 0

    def test_a_started_worker_forgets_what_the_previous_one_said(self) -> None:
        rec = ShardRecord(plan())
        rec.hello, rec.fatal, rec.final = {"pid": 1}, {"code": 1}, {"cycles": 3}
        rec.life.add_cycle({"executed": 2})
        rec.totals.add_cycle({"executed": 2})
        rec.rss_bytes, rec.death_at = 5, 10.0
        rec.worker_started(42, 10.25)
        assert (rec.pid, rec.state, rec.spawned_at, rec.last_msg_at) == (
            42,
            State.STARTING,
            10.25,
            10.25,
        )
        assert rec.hello is None and rec.fatal is None and rec.final is None
        assert rec.life.executed == 0 and rec.totals.executed == 2  # totals span restarts
        assert rec.rss_bytes is None and rec.replacement == {"spawn_ms": 250.0}

    def test_first_start_has_no_replacement_timing(self) -> None:
        rec = ShardRecord(plan())
        rec.worker_started(7, 1.0)
        assert rec.replacement == {}

    def test_exit_clears_the_pid_and_keeps_the_code(self) -> None:
        rec = ShardRecord(plan())
        rec.worker_started(7, 1.0)
        rec.worker_exited(-9)
        assert (rec.pid, rec.alive, rec.last_exit_code) == (None, False, -9)


class TestRegistry:
    def test_iterates_in_order_and_reads_by_name(self) -> None:
        reg = registry("a", "b", "c")
        assert [r.name for r in reg] == ["a", "b", "c"] == reg.names()
        assert len(reg) == 3 and "b" in reg and "z" not in reg
        assert reg["b"].plan.name == "b"

    def test_update_and_edit_change_one_record(self) -> None:
        reg = registry("a", "b")
        reg.update("a", state=State.RUNNING, restarts=2)
        with reg.edit("b") as rec:
            rec.totals.add_cycle({"checked": 5})
        assert (reg["a"].state, reg["a"].restarts) == (State.RUNNING, 2)
        assert reg["b"].totals.checked == 5 and reg["b"].state == State.STOPPED

    def test_retired_shards_stay_in_the_overall_total(self) -> None:
        reg = registry("a", "b")
        with reg.edit("a") as rec:
            rec.totals.add_cycle({"executed": 3})
            rec.restarts = 2
        reg.retire("a")
        snap = reg.snapshot()
        assert [s.name for s in snap.shards] == ["b"] and "a" not in reg
        assert snap.retired.executed == 3 and snap.retired_restarts == 2

    def test_added_shards_come_last(self) -> None:
        reg = registry("a")
        reg.add(plan("n"))
        assert reg.names() == ["a", "n"]

    def test_facts_are_replaced_whole(self) -> None:
        reg = registry("a")
        before = reg.snapshot().supervisor
        reg.update_facts(stopping=True, host_count=3)
        after = reg.snapshot().supervisor
        assert (before.stopping, after.stopping, after.host_count) == (False, True, 3)
        with pytest.raises(dataclasses.FrozenInstanceError):
            after.stopping = False  # type: ignore[misc]


class TestSnapshot:
    def test_is_a_frozen_copy_unaffected_by_later_writes(self) -> None:
        reg = registry("a")
        with reg.edit("a") as rec:
            rec.worker_started(9, 1.0)
            rec.totals.add_cycle({"checked": 1, "skipped": {"not_due": 1}})
            rec.replacement["x"] = 1.0
        snap = reg.snapshot()
        with reg.edit("a") as rec:
            rec.totals.add_cycle({"checked": 1, "skipped": {"not_due": 1}})
            rec.replacement["y"] = 2.0
            rec.state = State.RUNNING
        view = snap.shards[0]
        assert view.totals.checked == 1 and view.totals.skipped == {"not_due": 1}
        assert view.replacement == {"x": 1.0} and view.state == State.STARTING
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.pid = 3  # type: ignore[misc]

    def test_keeper_is_the_hello_key_else_the_validated_one(self) -> None:
        reg = registry("a", "b")
        reg.update("a", hello={"keeper_public_key": "G" + "B" * 55})
        a, b = reg.snapshot().shards
        assert a.keeper == "G" + "B" * 55 and b.keeper == KEY

    def test_waits_for_an_edit_in_progress(self) -> None:
        """A reader never sees a half-applied message: snapshot() waits for the edit."""
        reg = registry("a")
        entered, release = threading.Event(), threading.Event()
        seen: list[int] = []

        def writer() -> None:
            with reg.edit("a") as rec:
                rec.totals.add_cycle({"checked": 1})
                entered.set()
                release.wait(5)
                rec.totals.add_cycle({"checked": 1})

        def reader() -> None:
            seen.append(reg.snapshot().shards[0].totals.checked)

        w = threading.Thread(target=writer)
        w.start()
        assert entered.wait(5)
        r = threading.Thread(target=reader)
        r.start()
        time.sleep(0.1)
        assert seen == []  # still waiting for the lock
        release.set()
        w.join(5)
        r.join(5)
        assert seen == [2]
