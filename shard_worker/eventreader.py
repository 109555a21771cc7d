"""``read_mode: events``: read everything once, then only what changed or came due.

Each cycle (paced by :class:`~shard_worker.pacer.LedgerPacer`):

1. no events position (first start, lost position): a full re-read of the shard's entries
   fills the compact :class:`~shard_worker.taskstate.TaskState` and the
   :class:`~shard_worker.dueindex.DueIndex`; the reason is logged and reported (``rescan``);
2. else one ``getEvents`` call (more only when a page is full): its ``latestLedger`` and
   ``latestLedgerCloseTime`` are the poll for a new ledger, its events name the tasks
   registered, deposited to or withdrawn from;
3. on a new ledger, one read (``getLedgerEntries``, 200 keys a call) of the ids the events
   named, the ids whose cached due time has come (a task another keeper executed then reads
   as not due), the Counter and prepared executions' tasks (for their rechecks:
   :mod:`~shard_worker.sharedreads`); due tasks are classified and handed to the executor;
4. then a slice of the background sweep (:class:`~shard_worker.sweep.SweepPlan`);
5. the position and the state it matches are saved in the state dir
   (:class:`~shard_worker.cursorstore.CursorStore`) every ``SAVE_EVERY_S`` and at stop, so that
   a restart within the RPC's retention resumes without a full re-read.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from shard_worker.budget import DUE, LEDGER, RESCAN, SWEEP
from shard_worker.context import Events
from shard_worker.cursorstore import CursorStore
from shard_worker.due import Holds
from shard_worker.dueindex import DueIndex
from shard_worker.entrybatches import EntryBatches, spare_room
from shard_worker.errors import RpcError, RpcMalformedError
from shard_worker.eventsync import EventSync
from shard_worker.ledger import Latest, LedgerClock
from shard_worker.pacer import LedgerPacer
from shard_worker.reader import MAX_KEYS_PER_CALL, Reader, ReadPass
from shard_worker.rpc import RpcClient
from shard_worker.rpcbudget import priority
from shard_worker.spec import CycleStats, WorkerSpec
from shard_worker.sweep import SweepPlan
from shard_worker.taskstate import TaskState
from shard_worker.tasktable import TaskTable
from sorotask_core import contract

__all__ = ["SAVE_EVERY_S", "EventReader"]

#: how often the events position and the task state are saved (and at stop)
SAVE_EVERY_S = 30.0
#: getEvents pages followed in one cycle before the rest waits for the next
MAX_PAGES = 20
#: consecutive getEvents failures before a full re-read
RESCAN_AFTER_FAILURES = 3
#: rescan reasons of a first start (logged at INFO; every other reason is a WARNING)
_FIRST_START = ("no events position yet", "no saved events position", "no state dir")


class EventReader:
    """One shard's event-driven reads (see the module docstring)."""

    def __init__(
        self,
        spec: WorkerSpec,
        rpc: RpcClient,
        events: Events,
        *,
        reader: Reader,
        holds: Holds,
        clock: LedgerClock,
    ) -> None:
        self.spec = spec
        self.rpc = rpc
        self.events = events
        self.log = events.log
        self.reader = reader
        self.task_keys: contract.TaskKeys = reader.task_keys
        self.holds = holds
        self.clock = clock
        clock.paced = True  # each new ledger seen soon after its close (see LedgerPacer)
        self.first = max(1, spec.range_first)
        self.only = frozenset(spec.task_ids) if spec.task_ids is not None else None
        self._counter_key = contract.counter_key_b64(spec.contract_id)
        self.table = TaskTable(
            self.first,
            task_keys=self.task_keys,
            keeper_address=reader.keeper_address,
            holds=holds,
            execute_archived=spec.execute_archived,
            counter_key=self._counter_key,
            report=reader._read_error_event,
        )
        self.batches = EntryBatches(
            rpc,
            counter_key=self._counter_key,
            concurrency=spec.max_concurrent_reads,
            report=reader._read_error_event,
        )
        self.sync = EventSync(spec.contract_id, rescan_after_failures=RESCAN_AFTER_FAILURES)
        self.sweep = SweepPlan(spec.sweep_every_ledgers, batch=MAX_KEYS_PER_CALL)
        self.pacer = LedgerPacer(min(1.0, spec.poll_interval_s))
        self.store = CursorStore(spec.state_dir, spec.name, ids=spec.id_selection)
        self.counter = 0
        #: ids named by events whose re-read failed: read again next ledger
        self.pending: set[int] = set()
        self.last: Latest | None = None
        self._saved_at = 0.0
        self._resumed = False

    @property
    def state(self) -> TaskState:
        """The compact per-task state (replaced by a full re-read)."""
        return self.table.state

    @property
    def index(self) -> DueIndex:
        """The due index (replaced by a full re-read)."""
        return self.table.index

    # ------------------------------------------------------------------ ids

    def ids(self) -> Sequence[int]:
        """The shard's ids at the current Counter, ascending (a range when no id list)."""
        spec = self.spec
        last = self.counter if spec.range_last is None else min(spec.range_last, self.counter)
        if self.only is not None:
            return sorted(i for i in self.only if self.first <= i <= last)
        return range(self.first, last + 1)

    def owns(self, task_id: int) -> bool:
        spec = self.spec
        if task_id < self.first or (spec.range_last is not None and task_id > spec.range_last):
            return False
        return self.only is None or task_id in self.only

    def _set_counter(self, counter: int) -> list[int]:
        """The Counter is ``counter``: returns the shard's ids that are new."""
        if counter <= self.counter:
            return []
        old, self.counter = self.counter, counter
        ids = self.ids()
        self.table.ensure(max(self.first - 1, ids[-1] if len(ids) else self.first - 1))
        self.sweep.set_count(len(ids))
        return list(ids[bisect_right(ids, old) :])  # (not a scan: 125k ids a registration)

    # ------------------------------------------------------------------ start

    async def resume(self) -> None:
        """Load a saved position and state (once, at the first cycle): a restart within the
        RPC's retention then needs no full re-read. No request (the Counter is the saved
        state's: registrations since come with the events, their ids read as new)."""
        self._resumed = True
        saved, why = self.store.load(self.spec.contract_id)
        if saved is None:
            self.sync.rescan_reason = why or self.sync.rescan_reason
            return
        try:
            state = TaskState.load(saved.state)
        except ValueError as exc:
            self.sync.rescan_reason = f"saved task state unusable: {exc}"
            return
        # (its first id is this shard's: the store loads only a position saved for its ids)
        self.table.load(state)
        # the RPC's range is checked by the first getEvents call (-32600 below its oldest)
        self.sync.resume(saved.position, oldest_ledger=1, latest_ledger=saved.position.ledger)
        self.counter = 0
        self._set_counter(state.last)
        self.sweep.start(saved.position.ledger, len(self.ids()))
        self.log.info(
            "resuming events from ledger {} ({} task states loaded, no full re-read)",
            saved.position.ledger,
            len(state),
        )

    def save(self) -> None:
        """Persist the position with the state it matches (not while re-reads are owed)."""
        pos = self.sync.position
        if pos is None or self.pending or self.spec.state_dir is None:
            return
        try:
            self.store.save(self.spec.contract_id, pos, self.table.state.dump_parts())
            self._saved_at = time.monotonic()
        except OSError as exc:
            self.log.warning("could not save the events position: {}", exc)

    def next_delay(self) -> float:
        return self.pacer.delay(time.monotonic())

    # ------------------------------------------------------------------ the cycle

    async def cycle(
        self, stats: CycleStats, enqueue: Callable[[list[int]], None]
    ) -> tuple[ReadPass, Latest | None]:
        """One poll: follow the events; on a new ledger read what they name and what is due,
        enqueue the due tasks, sweep a little. Returns the reads' finds and their ledger."""
        if not self._resumed:
            await self.resume()
        rp = ReadPass()
        try:
            if self.sync.rescan_reason is not None:
                return rp, await self._rescan(stats, rp, enqueue)
            latest, named = await self._follow(stats)
            if self.sync.rescan_reason is not None:
                return rp, await self._rescan(stats, rp, enqueue)
            if latest is None:
                return rp, None
            stats.ledger, stats.ledger_time = latest.sequence, latest.close_time
            if self.last is not None and latest.sequence <= self.last.sequence:
                stats.new_ledger = False
                self.pending |= named
                if not self.pending:
                    return rp, None
            self.last = self.clock.last_read = latest
            await self._read_changed(named, latest, rp, enqueue, stats)
            await self._sweep(latest, rp, stats)
            if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
                self.save()
            return rp, latest
        finally:
            rp.fill(stats)

    async def _rescan(
        self, stats: CycleStats, rp: ReadPass, enqueue: Callable[[list[int]], None]
    ) -> Latest:
        reason = self.sync.rescan_reason
        with priority(RESCAN):
            asked_at = time.monotonic()
            latest = await self.clock.latest()
            counter = await self.reader.read_counter()
        self.counter = 0
        self.pending.clear()
        self.table.reset()
        self._set_counter(counter)
        ids = self.ids()
        first = reason is None or reason.startswith(_FIRST_START)
        level = "INFO" if first else "WARNING"
        self.log.log(level, "full re-read of {} task entries: {}", len(ids), reason)
        self.events.event("rescan", {"reason": reason, "tasks": len(ids)})
        stats.rescans += 1
        stats.ledger, stats.ledger_time = latest.sequence, latest.close_time
        await self._read(ids, latest, rp, RESCAN)
        self.sync.start_at(latest.sequence)
        self.sweep.start(latest.sequence, len(ids))
        self.pacer.observe(latest.sequence, asked_at)
        self.last = self.clock.last_read = latest
        enqueue(rp.due_ids())
        self.save()
        return latest

    async def _follow(self, stats: CycleStats) -> tuple[Latest | None, set[int]]:
        """getEvents from the position; returns the latest ledger it reported (None when the
        call failed and no other answer was had) and the shard's ids the events named."""
        named: set[int] = set()
        latest: Latest | None = None
        asked_at = time.monotonic()  # the poll's time (not its answer's: see pacer)
        with priority(LEDGER):
            for _ in range(MAX_PAGES):
                params = self.sync.request()
                try:
                    result = await self.rpc.call("getEvents", params)
                except RpcError as exc:
                    self.sync.fail(exc)
                    return await self._events_failed(exc), named
                try:
                    batch = self.sync.accept(result)
                except RpcMalformedError as exc:  # counted as a failure by accept
                    return await self._events_failed(exc), named
                if self.sync.rescan_reason is not None:
                    return None, named
                stats.events_seen += batch.events
                named.update(i for i in batch.ids if self.owns(i))
                if batch.max_registered is not None and batch.max_registered > self.counter:
                    self.pending.update(self._set_counter(batch.max_registered))
                latest = await self._latest_of(result, batch.latest_ledger)
                if not batch.more:
                    break
        if latest is not None:
            self.pacer.observe(latest.sequence, asked_at)
        return latest, named

    async def _events_failed(self, exc: RpcError) -> Latest | None:
        """A getEvents call failed: unless that lost the position, go on with due work at
        the latest ledger (the events are asked again next time)."""
        if self.sync.rescan_reason is not None:
            return None
        self.log.warning("getEvents failed ({} in a row): {}", self.sync.failures, exc)
        asked_at = time.monotonic()
        latest = await self._latest_fallback()
        self.pacer.observe(latest.sequence, asked_at)
        return latest

    async def _latest_of(self, result: Any, sequence: int) -> Latest:
        close = result.get("latestLedgerCloseTime") if isinstance(result, dict) else None
        try:
            close_time = int(close) if close is not None else 0
        except (TypeError, ValueError):
            close_time = 0
        if close_time <= 0:  # an RPC without it: one getLatestLedger
            return await self._latest_fallback()
        latest = Latest(sequence, close_time)
        if self.clock.is_stale(latest):  # a lagging node (counted): nothing newer
            assert self.clock.newest is not None
            return self.clock.newest
        self.clock.note(latest)  # newest, when seen, and wakes wait_newer
        return latest

    async def _latest_fallback(self) -> Latest:
        latest = await self.clock.latest()
        if self.clock.is_stale(latest):
            assert self.clock.newest is not None
            return self.clock.newest
        return latest

    async def _read_changed(
        self,
        named: set[int],
        latest: Latest,
        rp: ReadPass,
        enqueue: Callable[[list[int]], None],
        stats: CycleStats,
    ) -> None:
        """Read what the events named, what is due (not held) and the Counter, with the
        sweep's pending positions in the call's spare room; enqueue."""
        seq = latest.sequence
        todo = named | self.pending | set(self.batches.shared.watched_ids())  # + rechecks'
        self.pending = set()
        held: list[int] = []
        for task_id in self.table.index.pop_due(latest.close_time):
            reason = self.holds.reason(task_id, seq)
            if reason is None or task_id in todo:
                todo.add(task_id)
            else:
                held.append(task_id)
                rp.checked += 1
                rp.skip(reason)
        for task_id in held:  # looked at again next ledger
            self.table.reindex(task_id)
        if todo:
            span = self.sweep.spare(seq, spare_room(len(todo), counter=True))
            ids = self.ids() if span else ()
            extra = [ids[p] for p in span if ids[p] not in todo]
            swept = ReadPass()
            got = await self.batches.read(
                self.table, sorted(todo), latest, rp, DUE, counter=True, extra=extra, extra_rp=swept
            )
            self.pending.update(got.failed)
            if span and got.extra_read:
                self._swept(span, swept, rp, stats)
            new = self._set_counter(got.counter) if got.counter is not None else []
            if new:
                await self._read(new, latest, rp, DUE)
        enqueue(rp.due_ids())

    async def _sweep(self, latest: Latest, rp: ReadPass, stats: CycleStats) -> None:
        """A slice of the background sweep, after the due work (sweep priority): whole
        batches that did not fit in the due reads' spare room."""
        span = self.sweep.next_slice(latest.sequence, max_items=4 * MAX_KEYS_PER_CALL)
        if not span:
            return
        ids = self.ids()
        sweep = ReadPass()
        failed = await self._read([ids[p] for p in span], latest, sweep, SWEEP)
        if failed is None:
            return
        self._swept(span, sweep, rp, stats)

    def _swept(self, span: range, sweep: ReadPass, rp: ReadPass, stats: CycleStats) -> None:
        """The sweep positions ``span`` were read (their finds in ``sweep``)."""
        self.sweep.done(span.stop)
        stats.sweep_reads += len(span)
        # a task the sweep finds due stays indexed at its due time: the next ledger's due
        # pass enqueues it (one queue update a ledger: the dispatcher replaces its queue)
        rp.decoded += sweep.decoded
        rp.read_errors += sweep.read_errors
        rp.archived += sweep.archived

    # ------------------------------------------------------------------ reads

    async def _read(
        self,
        ids: Sequence[int],
        latest: Latest,
        rp: ReadPass,
        level: int,
        *,
        counter: bool = False,
        extra: Sequence[int] = (),
        extra_rp: ReadPass | None = None,
    ) -> list[int] | None:
        """Read ``ids`` into the table (see :class:`EntryBatches`). Returns the shard's new ids
        the Counter revealed; None when a call failed (its ids are read again next ledger;
        known due ones stay indexed)."""
        got = await self.batches.read(
            self.table, ids, latest, rp, level, counter=counter, extra=extra, extra_rp=extra_rp
        )
        self.pending.update(got.failed)
        new = self._set_counter(got.counter) if got.counter is not None else []
        return None if got.failed else new
