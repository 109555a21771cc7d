"""A send whose answer is lost is settled by resending the same signed envelope (issue 16).

The devnet closes ledgers only when told (``close_every`` one hour), so a queued transaction
stays pending until the test closes a ledger, and the time bound (``tx_timeout_s`` 60: twelve
5 s ledgers) is never what ends the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from sorotask_core.exitcodes import ExitCode
from tests.support.devnet import DevnetOptions
from tests.support.keeper import Keys, RecordingReporter, make_spec


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    return DevnetOptions(close_every=3600)


def sends(rep: RecordingReporter) -> Counter[str]:
    """The named answers to sendTransaction over the run (``send_results``)."""
    total: Counter[str] = Counter()
    with rep.lock:
        for c in rep.cycles:
            total.update(c.send_results)
    return total


def lost_answers(rep: RecordingReporter) -> int:
    """Requests whose answer never came (dropped connections), over the run."""
    with rep.lock:
        return sum(c.rpc_failures.get("transport", 0) for c in rep.cycles)


async def wait_for(check: Any, limit_s: float) -> bool:
    """Poll ``check()`` (in a thread: it may call the devnet) every 50 ms, at most ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return False


def run_case(
    devnet: DevnetProcess, keys: Keys, fault: str, *, queued_before_clearing: bool
) -> tuple[RecordingReporter, int, list[dict[str, Any]], int, int]:
    """One task due; every ``sendTransaction`` answer lost (``fault`` at rate 1) until the
    first send reached the devnet; then a normal network. Returns the reporter, the task id,
    its executions, the ledger of the first send and the exit code."""
    _keeper, ref = keys.new()
    first, _ = devnet.seed_tasks(count=1, interval=3600)
    spec = make_spec(devnet, ref, range_first=first, range_last=first, tx_timeout_s=60)
    rep = RecordingReporter()
    received0 = devnet.stats().get("tx_received", 0)

    async def go() -> tuple[int, int]:
        await asyncio.to_thread(devnet.set_faults, per_method={"sendTransaction": {fault: 1.0}})
        stop = asyncio.Event()
        task = asyncio.create_task(run_keeper(spec, rep, stop))
        try:
            await asyncio.to_thread(devnet.close_ledger)  # the keeper's first cycle reads
            if queued_before_clearing:  # the send was carried out: the answer was lost
                assert await wait_for(lambda: devnet.stats()["pending"] >= 1, 15)
            else:  # the send was not carried out; the keeper has met the lost answers
                assert await wait_for(lambda: sends(rep)["uncertain"] >= 1, 15)
                assert lost_answers(rep) >= 1
                assert devnet.stats()["pending"] == 0
            sent_at = devnet.stats()["ledger"]
            await asyncio.to_thread(devnet.set_faults)
            # the resend settles it in the queue: DUPLICATE (or PENDING if it was not queued)
            assert await wait_for(lambda: sends(rep)["DUPLICATE"] + sends(rep)["PENDING"] >= 1, 15)
            assert devnet.stats()["pending"] == 1
            await asyncio.to_thread(devnet.close_ledger)
            assert await wait_for(lambda: bool(rep.events_of("executed")), 10)
            # more ledgers: nothing else is sent for the task
            for _ in range(3):
                await asyncio.to_thread(devnet.close_ledger)
                await asyncio.sleep(0.3)
        finally:
            await asyncio.to_thread(devnet.set_faults)
            stop.set()
        code = await asyncio.wait_for(task, spec.stop_grace_s + 10)
        return code, sent_at

    code, sent_at = asyncio.run(go())
    received = devnet.stats().get("tx_received", 0) - received0
    assert received >= 0
    return rep, first, devnet.executions([first]), sent_at, code


class TestResend:
    def test_a_lost_answer_to_a_queued_send_is_settled_by_duplicate(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        rep, task_id, executions, sent_at, code = run_case(
            devnet, keys, "drop_answer_rate", queued_before_clearing=True
        )
        assert code == ExitCode.OK
        got = sends(rep)
        # the answer was lost (the client retried, or the keeper resent: the same envelope)
        assert lost_answers(rep) >= 1
        assert got["DUPLICATE"] >= 1  # ... and the same envelope, resent, was known by hash
        assert [e["effect"] for e in executions] == ["executed"]  # once
        executed = rep.events_of("executed")
        assert [e["task_id"] for e in executed] == [task_id]
        assert executed[0]["tx_hash"] == executions[0]["tx_hash"]
        # applied in the first ledger closed after the send, long before its time bound
        assert executions[0]["ledger"] == sent_at + 1
        final = rep.goodbyes[0]
        assert final["journal_left"] == 0 and final["tx_errors"] == 0

    def test_a_send_lost_before_the_queue_is_resent_not_waited_out(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        rep, task_id, executions, sent_at, code = run_case(
            devnet, keys, "drop_rate", queued_before_clearing=False
        )
        assert code == ExitCode.OK
        got = sends(rep)
        assert got["uncertain"] >= 1 and got["resent"] >= 1
        assert got["PENDING"] >= 1  # the resend put it in the queue
        assert [e["effect"] for e in executions] == ["executed"]
        # without the resend the keeper would poll NOT_FOUND until the time bound (12
        # ledgers); here one ledger after the network came back was enough
        assert executions[0]["ledger"] == sent_at + 1
        assert [e["task_id"] for e in rep.events_of("executed")] == [task_id]
        assert rep.goodbyes[0]["journal_left"] == 0
