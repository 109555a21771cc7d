"""The send/confirm window: a keeper killed right after sendTransaction must not lead its
successor to send a second execute for the same task (checked in devnet_executions).

The devnet closes ledgers only when told to, so the killed keeper's transaction stays
pending while the successor starts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devnet.process import DevnetProcess
from shard_worker.journal import Journal
from shard_worker.keeper import run_keeper
from shard_worker.spec import SecretRef
from sorotask_core.exitcodes import ExitCode
from tests.support.devnet import DevnetOptions
from tests.support.keeper import Keys, RecordingReporter, make_spec

LONG = 10**7


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:  # this module's devnet: manual ledger closes
    return DevnetOptions(close_every=3600)


def wait_for(cond: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def start_cli_keeper(
    dn: DevnetProcess, keeper: SecretRef, channel: SecretRef, task_id: int, state: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sorotask.cli",
            "worker",
            "--name",
            "shard-j",
            "--rpc-url",
            dn.info.rpc_url,
            "--network-passphrase",
            dn.info.network_passphrase,
            "--contract-id",
            dn.info.contract_id,
            "--secret-env",
            str(keeper.env),
            "--channel-secret-env",
            str(channel.env),
            "--range",
            f"{task_id}:{task_id}",
            "--poll-interval",
            "0.2",
            "--state-dir",
            str(state),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_after_send(dn: DevnetProcess, proc: subprocess.Popen[bytes], pending_before: int) -> None:
    try:
        sent = wait_for(lambda: dn.stats()["pending"] > pending_before, 20)
        assert sent, "the first keeper never sent its transaction"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


async def successor(dn: DevnetProcess, spec_kw: dict, pending_expected: int) -> RecordingReporter:
    """Start a keeper, let it run its first cycles on the unchanged ledger, then close
    ledgers one by one so the killed keeper's transaction applies."""
    rep = RecordingReporter()
    stop = asyncio.Event()
    task = asyncio.create_task(run_keeper(make_spec(dn, **spec_kw), rep, stop))
    await asyncio.to_thread(wait_for, lambda: bool(rep.cycles), 10)
    await asyncio.sleep(1.0)  # several polls at the same ledger
    assert await asyncio.to_thread(lambda: dn.stats()["pending"]) == pending_expected
    for _ in range(4):
        await asyncio.to_thread(dn.close_ledger)
        await asyncio.sleep(0.6)
    stop.set()
    assert await asyncio.wait_for(task, 15) == ExitCode.OK
    return rep


class TestInFlightJournal:
    def test_successor_resolves_the_journal_instead_of_sending_again(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        _, keeper = keys.new()
        _, chan_a = keys.new()
        _, chan_b = keys.new()
        task_id, _ = devnet.seed_tasks(count=1, interval=LONG)
        pending = devnet.stats()["pending"]
        proc = start_cli_keeper(devnet, keeper, chan_a, task_id, tmp_path)
        kill_after_send(devnet, proc, pending)
        journaled = Journal(tmp_path, "shard-j").load()
        assert [e.task_id for e in journaled] == [task_id]

        rep = asyncio.run(
            successor(
                devnet,
                {
                    "secret": keeper,
                    "channel_secrets": (chan_b,),
                    "range_first": task_id,
                    "range_last": task_id,
                    "state_dir": str(tmp_path),
                    "name": "shard-j",
                },
                pending_expected=pending + 1,
            )
        )
        execs = devnet.executions([task_id])
        assert [e["effect"] for e in execs] == ["executed"]
        assert execs[0]["tx_hash"] == journaled[0].hash
        assert any(c.skipped.get("in_flight") for c in rep.cycles)
        assert Journal(tmp_path, "shard-j").load() == []
        assert rep.goodbyes[0]["executed"] == 1  # the journaled one, confirmed by the successor

    def test_without_the_journal_the_window_wastes_a_transaction(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        """Control: the same kill, a successor with an empty state dir sends a duplicate."""
        _, keeper = keys.new()
        _, chan_a = keys.new()
        _, chan_b = keys.new()
        task_id, _ = devnet.seed_tasks(count=1, interval=LONG)
        pending = devnet.stats()["pending"]
        proc = start_cli_keeper(devnet, keeper, chan_a, task_id, tmp_path / "killed")
        kill_after_send(devnet, proc, pending)
        fresh = tmp_path / "fresh"
        rep = RecordingReporter()

        async def go() -> None:
            stop = asyncio.Event()
            spec = make_spec(
                devnet,
                keeper,
                channel_secrets=(chan_b,),
                range_first=task_id,
                range_last=task_id,
                state_dir=str(fresh),
            )
            task = asyncio.create_task(run_keeper(spec, rep, stop))
            ok = await asyncio.to_thread(
                wait_for, lambda: devnet.stats()["pending"] > pending + 1, 10
            )
            assert ok
            for _ in range(3):
                await asyncio.to_thread(devnet.close_ledger)
                await asyncio.sleep(0.5)
            stop.set()
            await asyncio.wait_for(task, 15)

        asyncio.run(go())
        effects = sorted(e["effect"] for e in devnet.executions([task_id]))
        assert effects == ["executed", "noop_not_due"]

    def test_a_journaled_envelope_that_never_reached_the_queue_is_resent_at_restart(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        # the first keeper journals its transaction, but no send reaches the devnet (every
        # sendTransaction connection dropped before it is carried out); it is killed; its
        # successor resends the journaled envelope (same hash) instead of waiting for the
        # time bound (30 s: six ledgers) with the task and the account held
        _, keeper = keys.new()
        _, chan_a = keys.new()
        task_id, _ = devnet.seed_tasks(count=1, interval=LONG)
        pending = devnet.stats()["pending"]
        devnet.set_faults(per_method={"sendTransaction": {"drop_rate": 1.0}})
        try:
            proc = start_cli_keeper(devnet, keeper, chan_a, task_id, tmp_path)
            try:
                devnet.close_ledger()
                assert wait_for(lambda: bool(Journal(tmp_path, "shard-j").load()), 20)
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        finally:
            devnet.set_faults()
        journaled = Journal(tmp_path, "shard-j").load()
        assert [e.task_id for e in journaled] == [task_id] and journaled[0].envelope
        assert devnet.stats()["pending"] == pending  # nothing reached the queue
        ledger = devnet.stats()["ledger"]

        asyncio.run(
            successor(
                devnet,
                {
                    "secret": keeper,
                    "channel_secrets": (chan_a,),
                    "range_first": task_id,
                    "range_last": task_id,
                    "state_dir": str(tmp_path),
                    "name": "shard-j",
                },
                pending_expected=pending + 1,  # the successor's resend queued it
            )
        )
        execs = devnet.executions([task_id])
        assert [e["effect"] for e in execs] == ["executed"]
        assert execs[0]["tx_hash"] == journaled[0].hash  # the journaled envelope, not a new one
        assert execs[0]["ledger"] == ledger + 1  # the first ledger closed after the restart
        assert Journal(tmp_path, "shard-j").load() == []

    def test_a_journaled_envelope_too_late_to_queue_is_not_waited_out_and_its_task_requeued(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        # as above, but ledgers close before the successor starts until the journaled
        # envelope is too close to its time bound to be queued (core: txTOO_LATE) and not past
        # it: its resend's txTOO_LATE and a NOT_FOUND settle it at once, and the task is
        # queued again at once: a new transaction is queued before any ledger closed and
        # executes it in the first ledger closed after the restart (waiting out the time
        # bound held the task until the second close; waiting for the next ledger's read
        # executed it in the second)
        _, keeper = keys.new()
        _, chan_a = keys.new()
        task_id, _ = devnet.seed_tasks(count=1, interval=LONG)
        pending = devnet.stats()["pending"]
        devnet.set_faults(per_method={"sendTransaction": {"drop_rate": 1.0}})
        try:
            proc = start_cli_keeper(devnet, keeper, chan_a, task_id, tmp_path)
            try:
                devnet.close_ledger()
                assert wait_for(lambda: bool(Journal(tmp_path, "shard-j").load()), 20)
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        finally:
            devnet.set_faults()
        journaled = Journal(tmp_path, "shard-j").load()
        assert [e.task_id for e in journaled] == [task_id]
        for _ in range(5):  # 25 s of ledger time: within two ledgers of its 30 s bound
            devnet.close_ledger()
        ledger = devnet.stats()["ledger"]
        assert devnet.stats()["pending"] == pending

        rep = asyncio.run(
            successor(
                devnet,
                {
                    "secret": keeper,
                    "channel_secrets": (chan_a,),
                    "range_first": task_id,
                    "range_last": task_id,
                    "state_dir": str(tmp_path),
                    "name": "shard-j",
                },
                # the journaled one refused, the task's new one queued at the same ledger
                pending_expected=pending + 1,
            )
        )
        execs = devnet.executions([task_id])
        assert [e["effect"] for e in execs] == ["executed"]
        assert execs[0]["tx_hash"] != journaled[0].hash  # a new one: the journaled never applies
        assert execs[0]["ledger"] == ledger + 1
        expired = [e for e in rep.events_of("tx_error") if e["tx_hash"] == journaled[0].hash]
        assert len(expired) == 1
        assert Journal(tmp_path, "shard-j").load() == []

    def test_an_applied_journaled_envelope_frees_its_account_before_its_confirmation(
        self, devnet: DevnetProcess, keys: Keys, tmp_path: Path
    ) -> None:
        # the killed keeper's transaction applied but was not confirmed; its resend answers
        # txBAD_SEQ (its sequence number is used: it can never apply again). While
        # getTransaction answers nothing, its task stays held but its source account is free
        # (reloaded from the chain): the successor, with that one account, executes another
        # due task. (Held until the confirmation, the account sent nothing.)
        kp_keeper, keeper = keys.new()
        kp_chan, chan_a = keys.new()
        first, second = devnet.seed_tasks(count=2, interval=LONG)
        pending = devnet.stats()["pending"]
        proc = start_cli_keeper(devnet, keeper, chan_a, first, tmp_path)
        kill_after_send(devnet, proc, pending)
        devnet.close_ledger()  # applied, still journaled
        journaled = Journal(tmp_path, "shard-j").load()
        assert [e.task_id for e in journaled] == [first]
        source = {kp_keeper.public_key: keeper, kp_chan.public_key: chan_a}[journaled[0].source]
        assert devnet.stats()["pending"] == pending
        spec = make_spec(
            devnet,
            source,  # the journaled transaction's source, the successor's only account
            range_first=first,
            range_last=second,
            state_dir=str(tmp_path),
            name="shard-j",
            stop_grace_s=1.0,
        )
        rep = RecordingReporter()

        async def go() -> bool:
            stop = asyncio.Event()
            task = asyncio.create_task(run_keeper(spec, rep, stop))
            sent = await asyncio.to_thread(
                wait_for, lambda: devnet.stats()["pending"] > pending, 15
            )
            stop.set()
            await asyncio.wait_for(task, 15)
            return sent

        devnet.set_faults(per_method={"getTransaction": {"drop_rate": 1.0}})
        try:
            sent = asyncio.run(go())
        finally:
            devnet.set_faults()
        assert sent, "the account stayed held until the journaled transaction's confirmation"
        devnet.close_ledger()
        execs = devnet.executions([first, second])
        assert sorted((e["task_id"], e["effect"]) for e in execs) == [
            (first, "executed"),
            (second, "executed"),
        ]
        assert [e["tx_hash"] for e in execs if e["task_id"] == first] == [journaled[0].hash]
