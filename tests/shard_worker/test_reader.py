"""The reader (shard_worker.reader) through its public methods: read batches (200 keys a call,
each key encoded once, the right key per id), the shard's ids, change detection and the
classification into due tasks and skips. Entries built with stellar-sdk; no network."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from stellar_sdk import Keypair, scval

from shard_worker.context import Events
from shard_worker.due import Holds
from shard_worker.errors import RpcTransportError
from shard_worker.ledger import Latest
from shard_worker.reader import MAX_KEYS_PER_CALL, MAX_READ_ERROR_EVENTS, Reader, ReadPass
from shard_worker.spec import CycleStats, SecretRef, WorkerSpec
from sorotask_core import contract
from tests.support.fake_rpc import FakeRpc, NullReporter
from tests.support.ledger_entries import CONTRACT_ID, counter_b64, entry_b64, task_config
from tests.support.reference_contract import encode_task_config, task_ledger_key_b64

KEEPER = Keypair.random().public_key
CREATOR = Keypair.random().public_key
NOW = Latest(1_000, 10_000)


class CountingKeys(contract.TaskKeys):
    def __init__(self, contract_id: str) -> None:
        super().__init__(contract_id)
        self.encoded: list[int] = []

    def key_b64(self, task_id: int) -> str:
        self.encoded.append(task_id)
        return super().key_b64(task_id)


def make_reader(rpc: FakeRpc | None = None, **spec_kw: Any) -> tuple[Reader, CountingKeys]:
    spec = WorkerSpec(
        name="t",
        rpc_url="http://127.0.0.1:1/",
        network_passphrase="p",
        contract_id=CONTRACT_ID,
        secret=SecretRef(env="UNUSED"),
        **spec_kw,
    )
    keys = CountingKeys(CONTRACT_ID)
    reader = Reader(
        spec,
        rpc,  # type: ignore[arg-type]
        Events(NullReporter()),  # type: ignore[arg-type]
        task_keys=keys,
        keeper_address=contract.sc_address_bytes(KEEPER),
        holds=Holds(),
    )
    return reader, keys


def entry(task_id: int, live: int | None = None, **cfg: Any) -> dict[str, Any]:
    """A getLedgerEntries entry object for ``task_id``; due at NOW unless ``cfg`` says."""
    base = {"interval": 60, "last_run": NOW.close_time - 100, "gas_balance": 5_000}
    base["creator"] = CREATOR  # the same fields give the same bytes
    base.update(cfg)
    e: dict[str, Any] = {
        "key": task_ledger_key_b64(CONTRACT_ID, task_id),
        "xdr": entry_b64(task_config(**base), task_id),
    }
    if live is not None:
        e["liveUntilLedgerSeq"] = live
    return e


def classify(reader: Reader, entries: list[Any], expected: int | None = None) -> ReadPass:
    reader.chunks(list(range(1, 51)))  # the ids the keys map to
    rp = ReadPass()
    reader.classify_entries(entries, len(entries) if expected is None else expected, NOW, rp)
    return rp


class TestReadBatches:
    def test_batches_hold_at_most_200_ids_with_their_own_keys(self) -> None:
        reader, _ = make_reader()
        ids = list(range(1, 451))
        chunks = reader.chunks(ids)
        assert [len(c) for c, _ in chunks] == [MAX_KEYS_PER_CALL, MAX_KEYS_PER_CALL, 50]
        assert [i for c, _ in chunks for i in c] == ids
        for c, k in chunks:
            assert k == [task_ledger_key_b64(CONTRACT_ID, i) for i in c]
        assert all(reader.key_to_id[k] == i for c, ks in chunks for i, k in zip(c, ks, strict=True))

    def test_each_key_is_encoded_once_while_the_counter_grows(self) -> None:
        reader, keys = make_reader()
        reader.chunks(list(range(1, 301)))
        reader.chunks(list(range(1, 301)))  # unchanged: nothing encoded
        chunks = reader.chunks(list(range(1, 306)))  # five tasks registered
        assert keys.encoded == list(range(1, 306))
        assert chunks[-1][0] == list(range(201, 306))
        assert chunks[-1][1][-1] == task_ledger_key_b64(CONTRACT_ID, 305)

    def test_a_different_id_list_is_rebuilt_whole(self) -> None:
        reader, keys = make_reader()
        reader.chunks([1, 2, 3])
        chunks = reader.chunks([2, 3, 9])
        assert keys.encoded == [1, 2, 3, 2, 3, 9]
        assert chunks == [([2, 3, 9], [task_ledger_key_b64(CONTRACT_ID, i) for i in (2, 3, 9)])]


class TestTaskIds:
    def test_the_range_is_cut_at_the_counter(self) -> None:
        reader, _ = make_reader(range_first=3, range_last=7)
        assert reader.task_ids(5) == [3, 4, 5]
        assert reader.task_ids(100) == [3, 4, 5, 6, 7]
        assert reader.task_ids(2) == []

    def test_open_ended_and_an_explicit_list(self) -> None:
        reader, _ = make_reader(range_first=0)
        assert reader.task_ids(4) == [1, 2, 3, 4]
        listed, _ = make_reader(range_first=2, range_last=9, task_ids=(9, 1, 4, 4, 12))
        assert listed.task_ids(10) == [4, 9]

    def test_the_counter_is_read_and_decoded(self) -> None:
        rpc = FakeRpc({"getLedgerEntries": [{"entries": [{"xdr": counter_b64(321)}]}]})
        reader, _ = make_reader(rpc)
        assert asyncio.run(reader.read_counter()) == 321
        absent, _ = make_reader(FakeRpc({"getLedgerEntries": [{"entries": None}]}))
        assert asyncio.run(absent.read_counter()) == 0


class TestClassify:
    def test_due_tasks_and_every_skip_reason(self) -> None:
        reader, _ = make_reader()
        other = Keypair.random().public_key
        entries = [
            entry(1),
            entry(2, last_run=NOW.close_time - 30),  # due in 30 s
            entry(3, gas_balance=0),
            entry(4, whitelist=[other]),
            entry(5, whitelist=[other, KEEPER]),
            entry(6),
            entry(7),
        ]
        first = classify(reader, entries)
        assert first.decoded == 7 and first.due_ids() == [1, 5, 6, 7]
        reader.holds.in_flight.add(6)
        reader.holds.back_off(7, NOW.sequence)
        rp = classify(reader, entries, expected=8)  # one key not answered: missing
        assert sorted(rp.due) == [(NOW.close_time - 40, 1), (NOW.close_time - 40, 5)]
        assert rp.skipped == {
            "not_due": 1,
            "no_gas": 1,
            "not_whitelisted": 1,
            "in_flight": 1,
            "backoff": 1,
            "missing": 1,
        }
        assert (rp.checked, rp.decoded, rp.read_errors, rp.archived) == (8, 0, 0, 0)

    def test_a_garbled_entry_object_is_a_read_error(self) -> None:
        reader, _ = make_reader()
        garbled = [
            {"key": task_ledger_key_b64(CONTRACT_ID, 8), "xdr": 5},
            {"key": "not a key of ours", "xdr": entry(9)["xdr"]},
            {"xdr": entry(9)["xdr"]},
        ]
        rp = classify(reader, [*garbled, entry(1)])
        assert rp.read_errors == 3 and rp.skipped["read_error"] == 3
        assert rp.due_ids() == [1]

    def test_most_overdue_first(self) -> None:
        reader, _ = make_reader()
        rp = classify(reader, [entry(1, last_run=9_000), entry(2, last_run=8_000), entry(3)])
        assert rp.due_ids() == [2, 1, 3]

    def test_an_unchanged_entry_is_not_decoded_again(self) -> None:
        reader, _ = make_reader()
        entries = [entry(1), entry(2)]
        assert classify(reader, entries).decoded == 2
        again = classify(reader, [entry(1), entry(2)])
        assert again.decoded == 0 and again.checked == 2 and len(again.due) == 2
        changed = [entries[0], entry(2, gas_balance=7)]
        assert classify(reader, changed).decoded == 1

    def test_a_changed_entry_ends_its_backoff(self) -> None:
        reader, _ = make_reader()
        classify(reader, [entry(1)])
        reader.holds.back_off(1, NOW.sequence)
        assert classify(reader, [entry(1)]).skipped == {"backoff": 1}
        rp = classify(reader, [entry(1, gas_balance=9)])
        assert rp.due_ids() == [1] and 1 not in reader.holds.backoff

    def test_archived_entries_are_counted_and_executed_or_skipped(self) -> None:
        reader, _ = make_reader()
        rp = classify(reader, [entry(1, live=NOW.sequence - 1), entry(2, live=NOW.sequence)])
        assert rp.archived == 1 and rp.due_ids() == [1, 2]
        skipping, _ = make_reader(execute_archived=False)
        rp = classify(skipping, [entry(1, live=NOW.sequence - 1), entry(2, live=NOW.sequence)])
        assert rp.archived == 1 and rp.due_ids() == [2] and rp.skipped == {"archived": 1}

    def test_an_undecodable_entry_is_a_read_error_event(self) -> None:
        reader, _ = make_reader()
        bad = {"key": task_ledger_key_b64(CONTRACT_ID, 3), "xdr": "AAAA"}
        rp = classify(reader, [bad, entry(4)])
        assert rp.read_errors == 1 and rp.skipped == {"read_error": 1} and rp.due_ids() == [4]
        events = reader.events.reporter.events_of("read_error")  # type: ignore[attr-defined]
        assert events[0]["task_ids"] == [3] and "undecodable entry" in events[0]["error"]

    def test_fill_copies_the_counts_into_the_cycle_stats(self) -> None:
        reader, _ = make_reader()
        rp = classify(reader, [entry(1), entry(2, gas_balance=0)])
        stats = CycleStats(shard="t", cycle=1, ledger=0, ledger_time=0, started_at=0, duration_s=0)
        rp.fill(stats)
        got = dataclasses.asdict(stats)
        assert {k: got[k] for k in ("checked", "decoded", "read_errors", "archived", "due")} == {
            "checked": 2,
            "decoded": 2,
            "read_errors": 0,
            "archived": 0,
            "due": 1,
        }
        assert stats.skipped == {"no_gas": 1}


def get_task_result(**cfg: Any) -> str:
    """A ``get_task`` simulation result (``Option<TaskConfig>``), due at NOW by default."""
    base = {"interval": 60, "last_run": NOW.close_time - 100, "gas_balance": 5_000}
    base.update(cfg)
    base["creator"] = CREATOR
    return encode_task_config(task_config(**base)).to_xdr()


class TestClassifySimulated:
    def test_the_seeds_read_mode_classifies_like_the_entries(self) -> None:
        reader, _ = make_reader()
        rp = ReadPass()
        reader.classify_simulated(1, get_task_result(), NOW, rp)
        reader.classify_simulated(2, get_task_result(gas_balance=0), NOW, rp)
        reader.classify_simulated(3, scval.to_void().to_xdr(), NOW, rp)  # no such task
        assert rp.due_ids() == [1]
        assert rp.skipped == {"no_gas": 1, "missing": 1}
        assert (rp.checked, rp.decoded) == (3, 2)

    def test_unchanged_results_are_not_decoded_and_holds_apply(self) -> None:
        reader, _ = make_reader()
        result = get_task_result()
        reader.classify_simulated(1, result, NOW, ReadPass())
        reader.holds.back_off(1, NOW.sequence)
        rp = ReadPass()
        reader.classify_simulated(1, result, NOW, rp)
        assert rp.decoded == 0 and rp.skipped == {"backoff": 1}
        reader.holds.backoff.clear()
        reader.holds.in_flight.add(1)
        rp = ReadPass()
        reader.classify_simulated(1, result, NOW, rp)
        assert rp.skipped == {"in_flight": 1}


class TestRead:
    def test_a_failed_batch_is_counted_as_read_errors_not_raised(self) -> None:
        ok = {"entries": [entry(i) for i in range(201, 211)]}
        rpc = FakeRpc(
            {"getLedgerEntries": [RpcTransportError("getLedgerEntries", "HTTP 503", 503), ok]}
        )
        reader, _ = make_reader(rpc, max_concurrent_reads=1)
        rp = asyncio.run(reader.read(list(range(1, 211)), NOW))
        assert rp.read_errors == 200 and rp.skipped["read_error"] == 200
        assert rp.due_ids() == list(range(201, 211))
        assert rp.checked == 10
        (event,) = reader.events.reporter.events_of("read_error")  # type: ignore[attr-defined]
        assert event["count"] == 200 and event["task_ids"] == list(range(1, 11))

    def test_read_error_events_are_bounded_per_cycle(self) -> None:
        n = MAX_READ_ERROR_EVENTS + 5
        rpc = FakeRpc({"getLedgerEntries": [RpcTransportError("getLedgerEntries", "x")] * n})
        reader, _ = make_reader(rpc)
        rp = asyncio.run(reader.read(list(range(1, n * MAX_KEYS_PER_CALL + 1)), NOW))
        assert rp.read_errors == n * MAX_KEYS_PER_CALL
        events = reader.events.reporter.events_of("read_error")  # type: ignore[attr-defined]
        assert len(events) == MAX_READ_ERROR_EVENTS
