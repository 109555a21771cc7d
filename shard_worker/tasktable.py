"""The event reader's table: the compact task state and the due index, and how one answered
``getLedgerEntries`` entry is placed in them.

:class:`TaskTable` keeps, for the shard's ids, the :class:`~shard_worker.taskstate.TaskState`
(what each entry said) and the :class:`~shard_worker.dueindex.DueIndex` (when each task that
this keeper may execute is due next). :meth:`TaskTable.apply` digests one batch answer: an
unchanged entry (same stable hash) costs a hash and a compare; a changed one is decoded once;
each task is then classified as the other read modes do (:meth:`TaskTable.place`) and kept
indexed at its due time while it has gas and this keeper may execute it. A task that is due
stays indexed at its (past) due time, so it is read again next ledger until its ``last_run``
moves (our execution or another keeper's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from shard_worker.due import Holds
from shard_worker.dueindex import DueIndex
from shard_worker.lateness import reported_due
from shard_worker.ledger import Latest
from shard_worker.reader import ReadPass
from shard_worker.taskstate import TaskState, entry_hash
from sorotask_core import contract
from sorotask_core.contract import decode_counter_entry, decode_task_entry_b64
from sorotask_core.xdr import DecodeError

__all__ = ["TaskTable"]

#: reports an undecodable entry: (pass, ids, error)
ErrorReport = Callable[[ReadPass, list[int], str], None]


class TaskTable:
    """The shard's task state and due index (see the module docstring)."""

    def __init__(
        self,
        first: int,
        *,
        task_keys: contract.TaskKeys,
        keeper_address: bytes,
        holds: Holds,
        execute_archived: bool,
        counter_key: str,
        report: ErrorReport,
    ) -> None:
        self.first = first
        self.task_keys = task_keys
        self.keeper_address = keeper_address
        self.holds = holds
        self.execute_archived = execute_archived
        self.counter_key = counter_key
        self.report = report
        self.state = TaskState(first)
        self.index = DueIndex(first)

    def reset(self) -> None:
        """Forget everything (before a full re-read)."""
        self.state = TaskState(self.first)
        self.index = DueIndex(self.first)

    def load(self, state: TaskState) -> None:
        """Take a saved state; the index is rebuilt from it."""
        self.state = state
        self.index = DueIndex(self.first, len(state))
        for task_id in range(state.first, state.last + 1):
            if state.indexable(task_id):
                self.index.set(task_id, state.due(task_id))

    def ensure(self, last_id: int) -> None:
        self.state.ensure(last_id)
        self.index.ensure(self.state.last)

    def reindex(self, task_id: int) -> None:
        """Index ``task_id`` at its cached due time if it may be executed by this keeper."""
        if task_id in self.state and self.state.indexable(task_id):
            self.index.set(task_id, self.state.due(task_id))

    def failed(self, chunk: Sequence[int], rp: ReadPass) -> None:
        """A batch could not be read: counted; its known tasks stay indexed."""
        rp.read_errors += len(chunk)
        rp.checked += len(chunk)
        rp.skip("read_error", len(chunk))
        for task_id in chunk:
            if self.state.known(task_id):
                self.reindex(task_id)

    def apply(
        self, entries: Iterable[Any], chunk: Sequence[int], latest: Latest, rp: ReadPass
    ) -> int | None:
        """Place each answered entry; ids asked but not answered are missing. Returns the
        Counter when the answer held it."""
        state, task_id_of = self.state, self.task_keys.task_id
        asked = set(chunk)
        seen: set[int] = set()
        counter: int | None = None
        for e in entries:
            key = e.get("key") if isinstance(e, dict) else None
            xdr = e.get("xdr") if isinstance(e, dict) else None
            if key == self.counter_key and isinstance(xdr, str):
                try:
                    counter = decode_counter_entry(xdr)
                except DecodeError:
                    rp.read_errors += 1
                continue
            task_id = task_id_of(key) if isinstance(key, str) else None
            if task_id is None or task_id not in asked or not isinstance(xdr, str):
                rp.read_errors += 1
                rp.skip("read_error")
                continue
            seen.add(task_id)
            live = e.get("liveUntilLedgerSeq")
            live = live if type(live) is int else None
            h = entry_hash(xdr)
            if state.same_entry(task_id, h):
                if live is not None:
                    state.set_live_until(task_id, live)
            else:
                try:
                    info = decode_task_entry_b64(xdr)
                except (DecodeError, TypeError) as exc:
                    state.record_error(task_id)
                    self.index.discard(task_id)
                    rp.checked += 1
                    rp.read_errors += 1
                    rp.skip("read_error")
                    self.report(rp, [task_id], f"undecodable entry: {exc}")
                    continue
                rp.decoded += 1
                state.record_info(task_id, info, self.keeper_address, live_until=live, entry_hash=h)
                self.holds.changed(task_id)
            self.place(task_id, latest, rp)
        for task_id in asked - seen:
            state.record_missing(task_id)
            self.index.discard(task_id)
            rp.checked += 1
            rp.skip("missing")
        return counter

    def place(self, task_id: int, latest: Latest, rp: ReadPass) -> None:
        """Classify one freshly read task; keep it indexed at its due time when it may become
        (or stay) executable by this keeper."""
        state = self.state
        rp.checked += 1
        reason = state.skip_reason(
            task_id,
            latest.close_time,
            latest.sequence,
            execute_archived=self.execute_archived,
        )
        if reason == "archived" or (reason is None and state.live_until(task_id) < latest.sequence):
            rp.archived += 1
        if reason is None:
            reason = self.holds.reason(task_id, latest.sequence)
            if reason is None:
                due = reported_due(state.due(task_id), state.interval(task_id), latest.close_time)
                rp.due.append((due, task_id))
        if state.indexable(task_id):
            self.index.set(task_id, state.due(task_id))
        else:
            self.index.discard(task_id)
        if reason is not None:
            rp.skip(reason)
