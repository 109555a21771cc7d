"""The events mode's batched entry reads (shard_worker.entrybatches): 200 keys a call, the
Counter in the first, sweep ids in the last call's spare room, the answers handed to the
executor's rechecks. Scripted fake RPC answers; no network."""

from __future__ import annotations

import asyncio
from typing import Any

from stellar_sdk import Keypair

from shard_worker.due import Holds
from shard_worker.entrybatches import EntryBatches
from shard_worker.errors import RpcTransportError
from shard_worker.ledger import Latest
from shard_worker.reader import ReadPass
from shard_worker.tasktable import TaskTable
from sorotask_core import contract
from tests.support.fake_rpc import FakeRpc
from tests.support.ledger_entries import CONTRACT_ID, counter_b64, entry_b64, task_config

KEYS = contract.TaskKeys(CONTRACT_ID)
COUNTER = contract.counter_key_b64(CONTRACT_ID)
LATEST = Latest(100, 2_000_000)


def table() -> TaskTable:
    t = TaskTable(
        1,
        task_keys=KEYS,
        keeper_address=contract.sc_address_bytes(Keypair.random().public_key),
        holds=Holds(),
        execute_archived=False,
        counter_key=COUNTER,
        report=lambda *_a: None,
    )
    t.ensure(600)
    return t


def answer(ids: list[int], counter: int | None = None) -> dict[str, Any]:
    """Every id found (not due), and the Counter when given."""
    entries = [
        {"key": KEYS.key_b64(i), "xdr": entry_b64(task_config(), i), "liveUntilLedgerSeq": 10**6}
        for i in ids
    ]
    if counter is not None:
        entries.append({"key": COUNTER, "xdr": counter_b64(counter)})
    return {"entries": entries, "latestLedger": LATEST.sequence}


def keys_of(params: dict[str, Any] | None) -> list[str]:
    assert params is not None
    return list(params["keys"])


def test_the_extra_ids_ride_in_the_last_call_and_their_finds_are_kept_apart() -> None:
    ids, extra = list(range(1, 251)), list(range(400, 545))  # 199 + 51 (+ 145 riding)
    rpc = FakeRpc({"getLedgerEntries": [answer(ids[:199], counter=600), answer(ids[199:] + extra)]})
    batches = EntryBatches(rpc, counter_key=COUNTER, concurrency=1, report=lambda *_a: None)  # type: ignore[arg-type]
    rp, swept = ReadPass(), ReadPass()
    got = asyncio.run(
        batches.read(table(), ids, LATEST, rp, 0, counter=True, extra=extra, extra_rp=swept)
    )
    first, last = (keys_of(p) for _, p in rpc.calls)
    assert len(rpc.calls) == 2 and len(first) == 200 and len(last) == 51 + 145
    assert first[-1] == COUNTER and COUNTER not in last
    assert got.counter == 600 and got.failed == [] and got.extra_read
    assert (rp.checked, swept.checked) == (250, 145)


def test_a_failed_call_names_its_ids_and_the_riding_ones_are_not_read() -> None:
    ids, extra = [1, 2, 3], [10, 11]
    rpc = FakeRpc({"getLedgerEntries": [RpcTransportError("getLedgerEntries", "down")]})
    reported: list[list[int]] = []
    batches = EntryBatches(
        rpc,  # type: ignore[arg-type]
        counter_key=COUNTER,
        concurrency=1,
        report=lambda _rp, chunk, _e: reported.append(chunk),
    )
    rp, swept = ReadPass(), ReadPass()
    got = asyncio.run(
        batches.read(table(), ids, LATEST, rp, 0, counter=True, extra=extra, extra_rp=swept)
    )
    assert got.failed == ids and not got.extra_read and got.counter is None
    assert reported == [ids]
    assert rp.read_errors == 3 and swept.read_errors == 2 and swept.checked == 0


def test_a_call_carrying_watched_keys_hands_its_answer_to_the_rechecks() -> None:
    """The executor's rechecks take the call's answer (shard_worker.sharedreads); a failed
    call hands over None (they read on their own)."""
    rpc = FakeRpc(
        {"getLedgerEntries": [answer([1, 2, 5]), RpcTransportError("getLedgerEntries", "down")]}
    )
    batches = EntryBatches(rpc, counter_key=COUNTER, concurrency=1, report=lambda *_a: None)  # type: ignore[arg-type]
    shared = batches.shared
    shared.watch(5, KEYS.key_b64(5))
    shared.watch(300, KEYS.key_b64(300))  # not in this read

    async def go() -> tuple[Any, Any]:
        await batches.read(table(), [1, 2, 5], LATEST, ReadPass(), 0)
        read = shared.lookup(KEYS.key_b64(5), LATEST.sequence)
        assert read is not None and shared.lookup(KEYS.key_b64(300), 0) is None
        first = await read.answer
        await batches.read(table(), [5], Latest(101, 2_000_005), ReadPass(), 0)
        again = shared.lookup(KEYS.key_b64(5), 101)
        assert again is not None
        return first, await again.answer

    first, failed = asyncio.run(go())
    assert list(first) == [KEYS.key_b64(5)] and first[KEYS.key_b64(5)]["xdr"]
    assert failed is None
