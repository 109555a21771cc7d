"""Which due task runs next, on which source account; what happens to them at stop.

Due tasks wait in one queue (task ids only: a backlog of thousands costs a few bytes each, not
a coroutine each), replaced by every new ledger's due list, most overdue first.
``max_concurrent_executions`` worker coroutines take a free source account, then the next
queued task, and hand both to the :class:`~shard_worker.executor.Executor`. Once the
transaction is signed the worker is free again: sending it (and settling a lost answer) goes
on beside, holding the account until the transaction is queued (PENDING / DUPLICATE); then the
account is free too and the confirmation runs beside (the task stays in flight until it is
confirmed), so the next executions are prepared while the last ones reach the queue and wait
for their ledger.

At start, transactions left in the journal by an earlier run are resolved first
(:mod:`shard_worker.journalresolve`): their tasks and source accounts are held until then. On
stop, queued executions and those not yet sent are dropped at once (nothing was sent for them;
they are due again next time); transactions already sent get up to ``stop_grace_s`` to reach a
final status, then stay in the journal.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from loguru import logger

from shard_worker.accounts import SourceAccount, SourceAccounts
from shard_worker.context import Events, Tally
from shard_worker.executor import Executor, Submitter
from shard_worker.journal import Journal, JournalEntry
from shard_worker.journalresolve import JournalResolver
from shard_worker.spec import WorkerSpec

__all__ = ["Dispatcher"]


class Dispatcher:
    """The execution queue and the worker coroutines that drain it."""

    def __init__(
        self,
        spec: WorkerSpec,
        executor: Executor,
        submitter: Submitter,
        accounts: SourceAccounts,
        journal: Journal,
        events: Events,
        tally: Tally,
    ) -> None:
        self.spec = spec
        self.executor = executor
        self.submitter = submitter
        self.accounts = accounts
        self.journal = journal
        self.events = events
        self.tally = tally
        self.in_flight = executor.holds.in_flight
        self.log = logger.bind(shard=spec.name)
        #: due task ids waiting for a source account, most overdue first
        self.queue: collections.deque[int] = collections.deque()
        self._work = asyncio.Event()
        #: executor / journal-resolver tasks that have (maybe) sent a transaction
        self._sent_tasks = submitter.sending
        #: executors working on a task (simulating, signing, sending or confirming)
        self._busy: set[asyncio.Task[None]] = set()
        self._exec_tasks: set[asyncio.Task[None]] = set()
        self._first_logged = False
        #: the journal left by an earlier run: its tasks held, each source's envelopes settled
        self.resolver = JournalResolver(
            journal, submitter, accounts, executor.holds, self.log, requeue=self.requeue
        )
        #: tasks queued again at once (:meth:`requeue`)
        self._requeued: set[int] = set()
        self._resolving = False

    @property
    def stopping(self) -> bool:
        return self.submitter.stopping

    def enqueue(self, due: list[int]) -> None:
        """Make ``due`` (most overdue first) the queue, first-come first-served: tasks still
        queued from earlier ledgers keep their place (ahead of newly due ones) if they are
        still due; those no longer due are dropped."""
        if self.stopping:
            return
        old = self.queue
        if old:
            due_set = set(due)
            kept = [t for t in old if t in due_set or t in self._requeued]
            kept_set = set(kept)
            kept.extend(t for t in due if t not in kept_set)
            due = kept
        self.queue = collections.deque(due)
        if due:
            self._work.set()

    def start(self) -> None:
        """Hold what the journal holds (:meth:`resolve_journal`, if not yet), then start the
        worker coroutines."""
        self.resolve_journal()
        for n in range(max(1, self.spec.max_concurrent_executions)):
            task = asyncio.create_task(self._worker(), name=f"{self.spec.name}-executor-{n}")
            self._exec_tasks.add(task)
            task.add_done_callback(self._exec_tasks.discard)

    async def next_task(self) -> int | None:
        """The next queued task not already in flight (waits for one); None once stopping."""
        while not self.stopping:
            queue = self.queue
            while queue:
                task_id = queue.popleft()
                self._requeued.discard(task_id)
                if task_id not in self.in_flight:
                    return task_id
            self._work.clear()
            await self._work.wait()
        return None

    async def _worker(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self.stopping:
            acc = await self.accounts.acquire()
            release = self._releaser(acc)
            handed = False

            try:
                task_id = await self.next_task()
                if task_id is None:
                    return
                self._busy.add(me)
                if not self._first_logged:
                    self._first_logged = True
                    self.log.info("first execution: task {}", task_id)
                # this worker is free once the transaction is signed: its landing goes on
                # beside and releases the account once the transaction is queued (or final);
                # a transaction prepared meanwhile is read again before it is sent when a
                # ledger closed after its simulation (shard_worker.recheck)
                handed = await self.executor.execute(acc, task_id, release)
            finally:
                self._busy.discard(me)
                self._sent_tasks.discard(me)
                if not handed:
                    release()

    def _releaser(self, acc: SourceAccount) -> Callable[[], None]:
        """Returns ``acc`` to the pool when first called (by the worker, or by the
        transaction's landing beside it: each execution has its own)."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.accounts.release(acc)

        return release

    # ------------------------------------------------------------------ the journal

    def hold_journal(self) -> list[JournalEntry]:
        """Load the journal (once) and hold its transactions' tasks in flight until they are
        resolved: before any read may find them due (the first cycle runs beside the
        start-up checks, before :meth:`start`)."""
        return self.resolver.hold()

    def resolve_journal(self) -> None:
        """Once the start-up checks took the source accounts' sequence numbers: resolve the
        journaled transactions (:mod:`shard_worker.journalresolve`; their tasks and source
        accounts held meanwhile) and release the other accounts into the pool."""
        if self._resolving:
            return
        self._resolving = True
        entries = self.hold_journal()
        if self.journal.corrupt_records:
            self.events.event(
                "journal_corrupt",
                {"records": self.journal.corrupt_records, "path": str(self.journal.path)},
            )
        by_source: dict[str, list[JournalEntry]] = {}
        for entry in entries:
            by_source.setdefault(entry.source, []).append(entry)
        for acc in self.accounts.all:
            held = by_source.pop(acc.public_key, None)
            if held is None:
                self.accounts.release(acc)
            else:
                self._track_sent(asyncio.create_task(self.resolver.resolve_source(held, acc)))
        for leftovers in by_source.values():  # a source no longer configured
            self._track_sent(asyncio.create_task(self.resolver.resolve_source(leftovers, None)))
        if entries:
            self.log.info("resolving {} journaled transaction(s) before reuse", len(entries))
            self.events.event(
                "journal_resolving",
                {"count": len(entries), "task_ids": sorted(e.task_id for e in entries)[:50]},
            )

    def requeue(self, task_id: int) -> None:
        """Queue ``task_id`` again at once, first (its journaled transaction never applied):
        kept by :meth:`enqueue` though a read made while it was held missed it."""
        if self.stopping:
            return
        self._requeued.add(task_id)
        self.queue.appendleft(task_id)
        self._work.set()

    def _track_sent(self, task: asyncio.Task[None]) -> None:
        self._exec_tasks.add(task)
        self._sent_tasks.add(task)
        task.add_done_callback(self._exec_tasks.discard)
        task.add_done_callback(self._sent_tasks.discard)

    # ------------------------------------------------------------------ stop

    async def _wait_sent(self, grace_s: float) -> set[asyncio.Task[None]]:
        """Wait up to ``grace_s`` for every transaction maybe sent, also the confirmations a
        landing starts meanwhile (once queued); returns all that were waited for."""
        seen: set[asyncio.Task[None]] = set()
        deadline = time.monotonic() + grace_s
        while True:
            pending = {t for t in self._sent_tasks if not t.done()}
            seen |= pending
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                return seen
            await asyncio.wait(pending, timeout=left)

    async def drain(self) -> None:
        """Stop: drop what was not sent, give sent transactions ``stop_grace_s``."""
        self.submitter.stopping = True
        # the read loop stops polling: confirmations poll getTransaction on their own
        self.submitter.clock.unpace()
        queued = len(self.queue)
        self.queue.clear()
        self._work.set()
        unsent = [t for t in self._exec_tasks if t not in self._sent_tasks]
        # executors idle or simulating: cancel them (a worker between journaling and
        # sending is in ``_sent_tasks`` and waited for)
        preparing = sum(1 for t in unsent if t in self._busy)
        for task in unsent:
            task.cancel()
        if unsent:
            await asyncio.wait(unsent, timeout=2.0)
        dropped = queued + preparing
        sent = await self._wait_sent(max(0.0, self.spec.stop_grace_s))
        still = {t for t in self._sent_tasks if not t.done()}
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=2.0)
        self.tally.totals["dropped_unsent_at_stop"] = dropped
        self.tally.totals["sent_unresolved_at_stop"] = len(still)
        if dropped or sent:
            self.log.info(
                "stop: dropped {} execution(s) not yet sent ({} queued, {} preparing); "
                "waited for {} sent transaction(s)",
                dropped,
                queued,
                preparing,
                len(sent),
            )
        if still:
            self.log.warning(
                "{} sent transaction(s) unresolved at stop; they stay in the journal", len(still)
            )
