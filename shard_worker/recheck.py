"""A prepared execution whose simulation is older than the newest ledger: is the task still due?

An execution is prepared (simulated, priced) while its source account's previous transaction
waits for its ledger, and is sent once that ledger has closed; a simulation under a busy RPC
may also take longer than a ledger. ``execute`` emits no event, so a ledger closed after the
simulation may hold another keeper's execution of the task, and nothing the keeper follows
says so: sent anyway, ours lands as a no-op that still costs its fee (a wasted transaction).
So before such a transaction is signed, the task's entry is read once more and the due rule
(:func:`shard_worker.due.skip_reason`) applied at the newest ledger: only a task still due is
sent. A simulation of the newest ledger needs no read (a keeper executing in the very ledger
ours lands in is a race no read can see). In the events read mode a prepared task's key rides
in the read path's own ``getLedgerEntries`` call of each ledger until it is sent
(:mod:`shard_worker.sharedreads`): a recheck takes that call's answer when it is of the ledger
needed, and reads on its own only when there is none. Rechecks that read on their own within a
few milliseconds of each other share one call (:class:`EntryBatcher`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from shard_worker.accounts import SourceAccount
from shard_worker.context import Events, Identity, Tally
from shard_worker.due import skip_reason
from shard_worker.errors import RpcMalformedError
from shard_worker.ledger import Latest
from shard_worker.rpc import RpcClient, get_ledger_entries
from shard_worker.sharedreads import SharedReads
from sorotask_core.contract import decode_task_entry_b64
from sorotask_core.xdr import DecodeError

__all__ = ["EntryBatcher", "Recheck", "needs_recheck", "verdict"]

#: how long a read waits for others to share its call
BATCH_WINDOW_S = 0.02
#: keys a getLedgerEntries call carries at most (stellar-rpc's limit)
MAX_KEYS = 200
#: how long a recheck waits for the read path's call of its ledger before reading on its own
#: (woken, the read path polls at once; at most ``poll_interval_s`` too: the executor's)
WAIT_FOR_READ_S = 1.0


def needs_recheck(simulated_at: int, sending_at: int) -> bool:
    """Whether a transaction simulated against ledger ``simulated_at`` is sent when the
    network is at least at ledger ``sending_at`` (the newest seen, or one the source account's
    previous transaction waited for) later than that: ledgers closed in between."""
    return sending_at > simulated_at


def verdict(entries: list[dict[str, Any]], key_b64: str, at: Latest, keeper: bytes) -> str | None:
    """None when the task whose ledger key is ``key_b64`` is still due at ``at`` for the keeper
    ``keeper`` (raw ``SCAddress``), from a ``getLedgerEntries`` answer; else why not
    (``missing``, ``not_due``, ``no_gas``, ``not_whitelisted``). Raises
    :class:`RpcMalformedError` for an entry that does not decode."""
    for e in entries:
        if e.get("key") != key_b64:
            continue
        xdr = e.get("xdr")
        if not isinstance(xdr, str):
            raise RpcMalformedError("getLedgerEntries", "task entry without xdr")
        try:
            info = decode_task_entry_b64(xdr)
        except (DecodeError, TypeError) as exc:
            raise RpcMalformedError("getLedgerEntries", f"undecodable task entry: {exc}") from None
        return skip_reason(info, at.close_time, keeper)
    return "missing"


class EntryBatcher:
    """Reads of ledger entries asked for within ``window_s`` of each other go as one
    ``getLedgerEntries`` call (at most :data:`MAX_KEYS` keys; a full batch goes at once).
    Every reader of a call gets its whole answer, or its error."""

    def __init__(self, rpc: RpcClient, window_s: float = BATCH_WINDOW_S) -> None:
        self.rpc = rpc
        self.window_s = window_s
        self._pending: list[tuple[str, asyncio.Future[list[dict[str, Any]]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task[None]] = set()

    async def read(self, key_b64: str) -> list[dict[str, Any]]:
        """The answer's entries of the call that carried ``key_b64``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._pending.append((key_b64, fut))
        if len(self._pending) >= MAX_KEYS:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_s, self._flush)
        return await fut

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            call = asyncio.create_task(self._call(batch))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _call(self, batch: list[tuple[str, asyncio.Future[list[dict[str, Any]]]]]) -> None:
        keys = list(dict.fromkeys(key for key, _ in batch))
        try:
            entries = await get_ledger_entries(self.rpc, keys)
        except asyncio.CancelledError:  # a stop: every reader is cancelled with it
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as exc:  # every reader gets it (an RpcError, most likely)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(entries)


class Recheck:
    """The executor's last look before signing: is the prepared task still due?"""

    def __init__(
        self,
        rpc: RpcClient,
        events: Events,
        *,
        identity: Identity,
        newest: Callable[[], Latest | None],
        queued_at: Callable[[SourceAccount], int],
        tally: Tally,
        shared: SharedReads | None = None,
    ) -> None:
        self.rpc = rpc
        self.entries = EntryBatcher(rpc)
        #: the read path's calls the rechecks may take (events mode; None: every recheck reads)
        self.shared = shared
        #: rechecks answered by the read path's call / by a call of their own
        self.shared_reads = 0
        self.own_reads = 0
        self.wait_for_read_s = WAIT_FOR_READ_S
        self.events = events
        self.identity = identity
        #: the newest ledger known (the read loop's or an answer's)
        self.newest = newest
        #: the ledger a source account's last transaction was queued at (0: none)
        self.queued_at = queued_at
        self.tally = tally

    def figures(self) -> dict[str, int]:
        """Rechecks answered by the read path's call and by a call of their own."""
        return {"recheck_reads_shared": self.shared_reads, "recheck_reads_own": self.own_reads}

    def prepared(self, task_id: int) -> None:
        """``task_id``'s execution is simulated and waits to be sent: its key rides in the
        read path's calls from now on (see :mod:`shard_worker.sharedreads`)."""
        if self.shared is not None:
            self.shared.watch(task_id, self.identity.task_keys.key_b64(task_id))

    def done(self, task_id: int) -> None:
        """``task_id``'s execution was sent or dropped (idempotent)."""
        if self.shared is not None:
            self.shared.unwatch(self.identity.task_keys.key_b64(task_id))

    async def _read(self, task_id: int, at_least: int) -> tuple[str, list[dict[str, Any]]]:
        """The task's key and its entry as of ledger ``at_least`` or later: from the read
        path's call that carried it when there is one (and it did not fail), else read."""
        key = self.identity.task_keys.key_b64(task_id)
        read = None
        if self.shared is not None:
            read = await self.shared.wait_for(key, at_least, self.wait_for_read_s)
        if read is not None:
            found = await read.answer
            if found is not None:
                self.shared_reads += 1
                entry = found.get(key)
                return key, [entry] if entry is not None else []
        self.own_reads += 1
        return key, await self.entries.read(key)

    async def still_due(self, task_id: int, simulated_at: int, acc: SourceAccount) -> bool:
        """False when a ledger closed after the simulation (the newest seen, or the one that
        holds ``acc``'s previous transaction: queued at a ledger this one waited to close) and
        a fresh read shows the task no longer due (another keeper executed it): not sent,
        counted (``not_sent_stale``), not backed off (its entry moved: the reads see its new
        due time). An RPC failure is raised (the execution fails; unreachable: due again)."""
        try:
            newest = self.newest()
            previous = self.queued_at(acc)
            sending_at = max(
                newest.sequence if newest is not None else 0, previous + 1 if previous else 0
            )
            if newest is None or not needs_recheck(simulated_at, sending_at):
                return True
            key, entries = await self._read(task_id, sending_at)
        finally:
            self.done(task_id)
        why = verdict(entries, key, newest, self.identity.keeper_address)
        if why is None:
            return True
        self.tally.cycle.not_sent += 1
        self.tally.totals["not_sent_stale"] += 1
        self.events.log.info(
            "task {} not sent: {} at ledger {} or later, after its simulation at ledger {}",
            task_id,
            why,
            sending_at,
            simulated_at,
        )
        self.events.event("not_sent", {"task_id": task_id, "reason": "stale", "skip": why})
        return False
