"""Reading a shard's tasks: which ids, in which batches, which of them are due.

* the shard's ids: ``[range_first, range_last]`` ∩ ``[1, Counter]`` (∩ ``task_ids``);
* ``getLedgerEntries`` with 200 keys a call, ``max_concurrent_reads`` in flight (or
  ``simulateTransaction`` of ``get_task`` per task in ``read_mode: simulate``); each task's
  ledger key is encoded once;
* change detection: an entry whose base64 equals last cycle's is not decoded again;
* classification (:mod:`shard_worker.due`): due tasks with their due time, the others
  counted by skip reason. Nothing here executes anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shard_worker import chain
from shard_worker.context import Events
from shard_worker.due import Holds, skip_reason
from shard_worker.errors import RpcError, RpcMalformedError
from shard_worker.lateness import reported_due
from shard_worker.ledger import Latest
from shard_worker.rpc import RpcClient, expect_dict, expect_list, get_ledger_entries
from shard_worker.spec import CycleStats, WorkerSpec
from sorotask_core import contract
from sorotask_core.contract import (
    TaskInfo,
    decode_counter_entry,
    decode_task_entry_b64,
    decode_task_scval_b64,
)
from sorotask_core.xdr import DecodeError

__all__ = ["MAX_KEYS_PER_CALL", "MAX_READ_ERROR_EVENTS", "ReadPass", "Reader"]

#: getLedgerEntries accepts at most this many keys a call
MAX_KEYS_PER_CALL = 200
#: read-error events reported per cycle (the rest are only counted)
MAX_READ_ERROR_EVENTS = 20


class ReadPass:
    """What one read cycle found: the due tasks as ``(due time, id)``, skips by reason and
    counts (checked, decoded, read errors, archived entries)."""

    __slots__ = ("archived", "checked", "decoded", "due", "error_events", "read_errors", "skipped")

    def __init__(self) -> None:
        self.due: list[tuple[int, int]] = []
        self.skipped: dict[str, int] = {}
        self.checked = 0
        self.decoded = 0
        self.read_errors = 0
        self.archived = 0
        #: read-error events reported so far (at most MAX_READ_ERROR_EVENTS)
        self.error_events = 0

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def due_ids(self) -> list[int]:
        """The due ids, most overdue first (ties by id)."""
        return [task_id for _, task_id in sorted(self.due)]

    def fill(self, stats: CycleStats) -> None:
        stats.checked = self.checked
        stats.decoded = self.decoded
        stats.read_errors = self.read_errors
        stats.archived = self.archived
        stats.skipped = self.skipped
        stats.due = len(self.due)


class Reader:
    """Reads the shard's task entries and classifies them; keeps each task's last entry hash
    and decoded fields so that an unchanged entry costs one hash and one compare."""

    def __init__(
        self,
        spec: WorkerSpec,
        rpc: RpcClient,
        events: Events,
        *,
        task_keys: contract.TaskKeys,
        keeper_address: bytes,
        holds: Holds,
        get_task: chain.GetTaskTemplate | None = None,
    ) -> None:
        if spec.read_mode == "simulate" and get_task is None:
            raise ValueError("read_mode simulate needs the get_task template")
        self.spec = spec
        self.rpc = rpc
        self.events = events
        self.task_keys = task_keys
        self.keeper_address = keeper_address
        self.holds = holds
        self.get_task = get_task
        #: base64 ledger key -> task id, for every id in a read batch so far
        self.key_to_id: dict[str, int] = {}
        self._chunk_ids: list[int] = []
        self._chunk_keys: list[str] = []  # base64 ledger key of each id in _chunk_ids
        self._chunk_list: list[tuple[list[int], list[str]]] = []
        #: hash of each task's last base64 entry: change detection without keeping the
        #: strings (~750 bytes a task); a 64-bit hash collision is the only way to miss a change
        self._xdr: dict[int, int] = {}
        self._info: dict[int, TaskInfo] = {}

    # ------------------------------------------------------------------ which ids

    async def read_counter(self) -> int:
        """The contract's ``Counter`` (the highest task id registered); 0 when absent."""
        key = contract.counter_key_b64(self.spec.contract_id)
        entries = await get_ledger_entries(self.rpc, [key])
        if not entries:
            return 0
        xdr = entries[0].get("xdr")
        if not isinstance(xdr, str):
            raise RpcMalformedError("getLedgerEntries", "Counter entry without xdr")
        try:
            return decode_counter_entry(xdr)
        except DecodeError as exc:
            raise RpcMalformedError("getLedgerEntries", f"undecodable Counter: {exc}") from None

    def task_ids(self, counter: int) -> list[int]:
        """The shard's ids when the Counter is ``counter``, ascending."""
        spec = self.spec
        first = max(1, spec.range_first)
        last = counter if spec.range_last is None else min(spec.range_last, counter)
        if spec.task_ids is not None:
            return sorted({i for i in spec.task_ids if first <= i <= last})
        return list(range(first, last + 1))

    def chunks(self, ids: list[int]) -> list[tuple[list[int], list[str]]]:
        """The read batches (ids, base64 keys), rebuilt only when the id list changes. Each
        key is encoded once: when the list only grew (the Counter rose), the keys already
        built are kept and only the new ids are encoded."""
        old = self._chunk_ids
        if ids != old:
            key_b64 = self.task_keys.key_b64
            n = len(old)
            grew = len(ids) > n and ids[:n] == old
            keys = self._chunk_keys[:] if grew else []
            for task_id in ids[len(keys) :]:
                key = key_b64(task_id)
                self.key_to_id[key] = task_id
                keys.append(key)
            self._chunk_list = [
                (ids[i : i + MAX_KEYS_PER_CALL], keys[i : i + MAX_KEYS_PER_CALL])
                for i in range(0, len(ids), MAX_KEYS_PER_CALL)
            ]
            self._chunk_ids = ids
            self._chunk_keys = keys
        return self._chunk_list

    # ------------------------------------------------------------------ reads

    async def read(self, ids: list[int], latest: Latest) -> ReadPass:
        """Read and classify ``ids`` at ``latest``. RPC failures of a batch are counted as
        read errors of its tasks (level 1), never raised."""
        if self.spec.read_mode == "simulate":
            return await self._read_simulate(ids, latest)
        return await self._read_ledger_entries(ids, latest)

    async def _read_ledger_entries(self, ids: list[int], latest: Latest) -> ReadPass:
        chunks = self.chunks(ids)
        sem = asyncio.Semaphore(max(1, self.spec.max_concurrent_reads))
        rp = ReadPass()

        async def batch(chunk: list[int], keys: list[str]) -> None:
            async with sem:
                try:
                    result = await self.rpc.call("getLedgerEntries", {"keys": keys})
                    entries = expect_list(
                        expect_dict(result, "getLedgerEntries").get("entries") or [],
                        "getLedgerEntries",
                        "entries",
                    )
                except RpcError as exc:
                    rp.read_errors += len(chunk)
                    rp.skip("read_error", len(chunk))
                    self._read_error_event(rp, chunk, str(exc))
                    return
            self.classify_entries(entries, len(chunk), latest, rp)

        await asyncio.gather(*(batch(c, k) for c, k in chunks))
        return rp

    def _read_error_event(self, rp: ReadPass, ids: list[int], error: str) -> None:
        if rp.error_events < MAX_READ_ERROR_EVENTS:
            rp.error_events += 1
            self.events.event(
                "read_error", {"task_ids": ids[:10], "count": len(ids), "error": error}
            )

    def classify_entries(
        self, entries: list[Any], expected: int, latest: Latest, rp: ReadPass
    ) -> None:
        """The hot loop: change detection, decode-if-changed, due logic, for one batch's
        ``getLedgerEntries`` entries (``expected`` keys asked). No SDK objects."""
        cache_xdr = self._xdr
        cache_info = self._info
        key_to_id = self.key_to_id
        in_flight = self.holds.in_flight
        backoff = self.holds.backoff
        keeper = self.keeper_address
        now = latest.close_time
        ledger = latest.sequence
        execute_archived = self.spec.execute_archived
        due = rp.due
        skipped = rp.skipped
        seen = 0
        checked = decoded = errors = archived = 0
        for e in entries:
            try:
                task_id = key_to_id[e["key"]]
                xdr = e["xdr"]
                if type(xdr) is not str:
                    raise TypeError("xdr is not a string")
            except (KeyError, TypeError):
                errors += 1
                skipped["read_error"] = skipped.get("read_error", 0) + 1
                continue
            seen += 1
            checked += 1
            info = cache_info.get(task_id)
            xdr_hash = hash(xdr)
            if info is None or cache_xdr.get(task_id) != xdr_hash:
                try:
                    info = decode_task_entry_b64(xdr)
                except (DecodeError, TypeError) as exc:
                    errors += 1
                    skipped["read_error"] = skipped.get("read_error", 0) + 1
                    cache_info.pop(task_id, None)
                    self._read_error_event(rp, [task_id], f"undecodable entry: {exc}")
                    continue
                decoded += 1
                cache_xdr[task_id] = xdr_hash
                cache_info[task_id] = info
                backoff.pop(task_id, None)
            reason = skip_reason(info, now, keeper)
            if reason is None:
                live = e.get("liveUntilLedgerSeq")
                if type(live) is int and live < ledger:
                    archived += 1
                    if not execute_archived:
                        reason = "archived"
                if reason is None:
                    if task_id in in_flight:
                        reason = "in_flight"
                    else:
                        b = backoff.get(task_id)
                        if b is not None and b[0] > ledger:
                            reason = "backoff"
                        else:
                            due.append((reported_due(info.next_run, info.interval, now), task_id))
                            continue
            skipped[reason] = skipped.get(reason, 0) + 1
        missing = expected - seen
        if missing > 0:
            skipped["missing"] = skipped.get("missing", 0) + missing
        rp.checked += checked + missing
        rp.decoded += decoded
        rp.read_errors += errors
        rp.archived += archived

    async def _read_simulate(self, ids: list[int], latest: Latest) -> ReadPass:
        """The seed's way: ``simulateTransaction`` of ``get_task`` per task."""
        assert self.get_task is not None
        template = self.get_task
        sem = asyncio.Semaphore(max(1, self.spec.max_concurrent_reads))
        rp = ReadPass()

        async def one(task_id: int) -> None:
            async with sem:
                try:
                    res = expect_dict(
                        await self.rpc.call(
                            "simulateTransaction", {"transaction": template.envelope_b64(task_id)}
                        ),
                        "simulateTransaction",
                    )
                    if res.get("error"):
                        raise RpcMalformedError("simulateTransaction", str(res["error"])[:200])
                    results = expect_list(res.get("results"), "simulateTransaction", "results")
                    xdr = expect_dict(results[0], "simulateTransaction")["xdr"]
                    if not isinstance(xdr, str):
                        raise RpcMalformedError("simulateTransaction", "result xdr not a string")
                except (RpcError, IndexError, KeyError) as exc:
                    rp.read_errors += 1
                    rp.checked += 1
                    rp.skip("read_error")
                    self._read_error_event(rp, [task_id], str(exc))
                    return
            try:
                self.classify_simulated(task_id, xdr, latest, rp)
            except DecodeError as exc:
                rp.checked += 1
                rp.read_errors += 1
                rp.skip("read_error")
                self._read_error_event(rp, [task_id], f"undecodable: {exc}")

        await asyncio.gather(*(one(i) for i in ids))
        return rp

    def classify_simulated(self, task_id: int, xdr: str, latest: Latest, rp: ReadPass) -> None:
        """Classify one task from its ``get_task`` result (an ``Option<TaskConfig>`` SCVal).
        Raises :class:`DecodeError` for an undecodable one."""
        info = self._info.get(task_id)
        xdr_hash = hash(xdr)
        if info is None or self._xdr.get(task_id) != xdr_hash:
            info = decode_task_scval_b64(xdr)
            if info is None:  # get_task returned None: no such task
                rp.skip("missing")
                rp.checked += 1
                return
            rp.decoded += 1
            self._xdr[task_id] = xdr_hash
            self._info[task_id] = info
            self.holds.changed(task_id)
        rp.checked += 1
        reason = skip_reason(info, latest.close_time, self.keeper_address)
        if reason is None:
            reason = self.holds.reason(task_id, latest.sequence)
            if reason is None:
                rp.due.append(
                    (reported_due(info.next_run, info.interval, latest.close_time), task_id)
                )
                return
        rp.skip(reason)
