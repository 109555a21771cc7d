"""The keeper against a real devnet process: the issue's task mix, faults, stop."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from stellar_sdk import Keypair

from devnet.process import DevnetProcess
from sorotask_core.exitcodes import ExitCode
from tests.support.keeper import Keys, RecordingReporter, make_spec, run_until

#: a due window far longer than any test: each allowed task is due exactly once
LONG = 10**7


def seed_mix(dn: DevnetProcess, keeper: str, scale: float) -> dict[str, list[int]]:
    """The issue's mix; returns task ids by kind."""
    other = Keypair.random().public_key
    plan: list[tuple[str, int, dict[str, Any]]] = [
        ("due", 120, {}),
        ("due_whitelisted_us", 20, {"whitelist": [other, keeper]}),
        ("due_resolver_true", 20, {"resolver": "true"}),
        ("not_due", 100, {"last_run": 2**40}),
        ("no_gas", 60, {"gas_balance": 0}),
        ("whitelisted_other", 60, {"whitelist": [other]}),
        ("resolver_false", 60, {"resolver": "false"}),
        ("target_panics", 40, {"target": "panic"}),
        ("resolver_panics", 20, {"resolver": "panic"}),
    ]
    out: dict[str, list[int]] = {}
    for kind, count, params in plan:
        n = max(2, round(count * scale))
        first, last = dn.seed_tasks(count=n, interval=LONG, **params)
        out[kind] = list(range(first, last + 1))
    return out


ALLOWED = ("due", "due_whitelisted_us", "due_resolver_true")


def check_converged(dn: DevnetProcess, kinds: dict[str, list[int]], rep: RecordingReporter) -> None:
    ids = [i for v in kinds.values() for i in v]
    execs = dn.executions(ids)
    effects = Counter(e["effect"] for e in execs)
    per_task = Counter(e["task_id"] for e in execs)
    allowed = {i for k in ALLOWED for i in kinds[k]}
    assert effects == {"executed": len(allowed)}, effects
    assert set(per_task) == allowed
    assert max(per_task.values()) == 1
    # transient RPC trouble during an execution is reason "error"; the rest are real failures
    failed = {d["task_id"] for d in rep.events_of("failed") if d["reason"] != "error"}
    assert set(kinds["target_panics"]) <= failed
    assert not failed & allowed
    assert not rep.fatals


class TestTaskMix:
    @pytest.mark.parametrize("read_mode", ["events", "ledger_entries"])
    def test_every_due_allowed_task_executed_once_and_nothing_wasted(
        self, devnet: DevnetProcess, keys: Keys, read_mode: str
    ) -> None:
        keeper, ref = keys.new()
        channels = [keys.new()[1] for _ in range(4)]
        kinds = seed_mix(devnet, keeper.public_key, 1.0)
        ids = [i for v in kinds.values() for i in v]
        assert len(ids) == 500
        allowed = [i for k in ALLOWED for i in kinds[k]]
        spec = make_spec(
            devnet,
            ref,
            range_first=min(ids),
            range_last=max(ids),
            channel_secrets=tuple(channels),
            max_concurrent_executions=4,
            read_mode=read_mode,
        )
        rep = RecordingReporter()

        def done() -> bool:
            return len(devnet.executions(allowed)) >= len(allowed)

        code = asyncio.run(run_until(spec, rep, done, limit_s=45, settle=1.0))
        assert code == ExitCode.OK
        check_converged(devnet, kinds, rep)
        read = [c for c in rep.cycles if c.new_ledger and not c.cycle_error]
        last = read[-1]
        if read_mode == "events":
            # one full read at start; afterwards only what came due (never all 500 again)
            full = [c for c in read if c.rescans]
            assert len(full) == 1 and full[0] is read[0]
            assert all(c.checked < 500 for c in read[1:])
            assert last.checked < 500
            last = full[0]
            assert last.skipped.get("not_due", 0) >= len(kinds["not_due"])
        else:
            assert last.skipped.get("not_due", 0) >= len(kinds["not_due"]) + len(allowed)
        assert last.checked == 500
        assert last.skipped.get("no_gas") == len(kinds["no_gas"])
        assert last.skipped.get("not_whitelisted") == len(kinds["whitelisted_other"])
        assert sum(c.not_sent_by_simulation for c in rep.cycles) >= len(kinds["resolver_false"])
        assert rep.goodbyes and rep.goodbyes[0]["executed"] == len(allowed)
        assert len(rep.hellos) == 1 and len(rep.hellos[0][2]) == 4

    def test_converges_under_rpc_faults(self, devnet: DevnetProcess, keys: Keys) -> None:
        keeper, ref = keys.new()
        channels = [keys.new()[1] for _ in range(3)]
        kinds = seed_mix(devnet, keeper.public_key, 0.3)
        ids = [i for v in kinds.values() for i in v]
        allowed = [i for k in ALLOWED for i in kinds[k]]
        spec = make_spec(
            devnet,
            ref,
            range_first=min(ids),
            range_last=max(ids),
            channel_secrets=tuple(channels),
            max_concurrent_executions=3,
            tx_timeout_s=15,
        )
        rep = RecordingReporter()
        devnet.set_faults(
            latency_ms=15,
            jitter_ms=10,
            http_503_rate=0.1,
            drop_rate=0.03,
            error_rate=0.02,
            try_again_later_rate=0.2,
            never_apply_rate=0.1,
        )
        try:
            code = asyncio.run(
                run_until(
                    spec,
                    rep,
                    lambda: len(devnet.executions(allowed)) >= len(allowed),
                    limit_s=40,
                    settle=1.0,
                )
            )
        finally:
            devnet.set_faults()
        assert code == ExitCode.OK
        check_converged(devnet, kinds, rep)
        errors = Counter()
        for c in rep.cycles:
            errors.update(c.rpc_errors)
        assert sum(errors.values()) > 0  # the faults were met, counted, and survived

    def test_single_source_lands_one_execution_per_ledger(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        _, ref = keys.new()
        first, last = devnet.seed_tasks(count=6, interval=LONG)
        spec = make_spec(devnet, ref, range_first=first, range_last=last)
        rep = RecordingReporter()
        ids = list(range(first, last + 1))
        code = asyncio.run(
            run_until(spec, rep, lambda: len(devnet.executions(ids)) >= 6, limit_s=20)
        )
        assert code == ExitCode.OK
        ledgers = Counter(e["ledger"] for e in devnet.executions(ids))
        assert sum(ledgers.values()) == 6 and max(ledgers.values()) == 1


class TestKeeperLifecycle:
    def test_heartbeats_cycles_and_goodbye(self, devnet: DevnetProcess, keys: Keys) -> None:
        _, ref = keys.new()
        first, last = devnet.seed_tasks(count=3, interval=LONG, last_run=2**40)
        spec = make_spec(devnet, ref, range_first=first, range_last=last)
        rep = RecordingReporter()
        code = asyncio.run(run_until(spec, rep, lambda: False, limit_s=2.0))
        assert code == ExitCode.OK
        assert rep.heartbeats >= 3
        assert len(rep.cycles) >= 3
        assert all(c.cycle_error in (None, "interrupted by stop") for c in rep.cycles)
        assert [c.cycle for c in rep.cycles] == list(range(1, len(rep.cycles) + 1))
        assert rep.goodbyes[0]["cycles"] == len(rep.cycles)
        assert sum(c.checked for c in rep.cycles if c.new_ledger) >= 3

    def test_simulate_read_mode_finds_the_same_due_tasks(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        _keeper, ref = keys.new()
        due_first, due_last = devnet.seed_tasks(count=4, interval=LONG)
        devnet.seed_tasks(count=3, interval=LONG, gas_balance=0)
        _, last = devnet.seed_tasks(count=3, interval=LONG, last_run=2**40)
        spec = make_spec(devnet, ref, range_first=due_first, range_last=last, read_mode="simulate")
        rep = RecordingReporter()
        due = list(range(due_first, due_last + 1))
        code = asyncio.run(
            run_until(spec, rep, lambda: len(devnet.executions(due)) >= 4, limit_s=20, settle=0.5)
        )
        assert code == ExitCode.OK
        execs = devnet.executions(list(range(due_first, last + 1)))
        assert sorted(e["task_id"] for e in execs) == due
        assert [c for c in rep.cycles if c.checked][-1].skipped.get("no_gas") == 3
        assert "simulateTransaction" in rep.cycles[0].rpc_calls
