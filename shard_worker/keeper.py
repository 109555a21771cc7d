"""The keeper for one shard: poll the shard's tasks each ledger, execute the due ones.

Entry point for the supervisor and the foreground command::

    exit_code = await run_keeper(spec, reporter, stop)

In ``read_mode: events`` (the default) a cycle is :meth:`shard_worker.eventreader.EventReader.cycle`
(events since the last ledger, re-reads of what they name and of what is due, a sweep slice),
paced around the next ledger's expected close. In ``ledger_entries`` and ``simulate`` mode:

Cycle (every ``poll_interval_s``; a cycle whose ledger has not advanced does no reads, since
nothing on chain can have changed):

1. ``getLatestLedger`` (sequence, close time) and the contract's ``Counter``;
2. the shard's ids: ``[range_first, range_last]`` ∩ ``[1, Counter]`` (∩ ``task_ids``);
3. reads: ``getLedgerEntries`` with 200 keys a call, ``max_concurrent_reads`` in flight
   (or ``simulateTransaction`` of ``get_task`` per task in ``read_mode: simulate``); an entry
   whose base64 equals last cycle's is not decoded again;
4. due logic (:mod:`shard_worker.due`), skips counted by reason;
5. due tasks go to the execution pipeline, most overdue first, bounded by
   ``max_concurrent_executions`` and by the source accounts (one pending transaction each);
6. one :class:`CycleStats` per cycle through ``reporter.cycle``, with how late the keeper is
   (:mod:`~shard_worker.lateness`: tasks due now, the oldest overdue, each execution's delay).

The roles, each in its own module: :mod:`~shard_worker.accounts` (source accounts, sequence
numbers), :mod:`~shard_worker.ledger` (the newest ledger seen), :mod:`~shard_worker.reader`
(steps 2-4), :mod:`~shard_worker.dispatch` (step 5: the queue, the workers, stop),
:mod:`~shard_worker.executor` (one execution: simulate, check with
:mod:`~shard_worker.simcheck`, sign; then journal, send, confirm), :mod:`~shard_worker.preflight`
(start-up checks). This module wires them and runs the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from loguru import logger

from shard_worker import chain
from shard_worker.accounts import SourceAccount, SourceAccounts, load_source_accounts
from shard_worker.budget import RequestBudget
from shard_worker.context import Events, Identity, Tally, check_contract_id
from shard_worker.dispatch import Dispatcher
from shard_worker.due import Holds
from shard_worker.errors import FatalConfigError, RpcError
from shard_worker.eventreader import EventReader
from shard_worker.executor import Executor, Submitter
from shard_worker.journal import Journal
from shard_worker.ledger import Latest, LedgerClock
from shard_worker.preflight import preflight
from shard_worker.pricing import FeeHooks, Pricer, fee_config
from shard_worker.reader import Reader
from shard_worker.rpc import RpcClient, rpc_totals
from shard_worker.rpc_pool import PooledRpc, make_rpc
from shard_worker.rpcbudget import BudgetedRpcClient
from shard_worker.sharedreads import pause
from shard_worker.spec import CycleStats, Reporter, WorkerSpec
from sorotask_core.exitcodes import ExitCode

__all__ = ["Keeper", "run_keeper"]

#: the heartbeat interval for a reporter that does not give its own (``heartbeat_s``)
HEARTBEAT_S = 0.5
#: attempts per RPC request (the first and the retries)
RPC_ATTEMPTS = 6
#: the first retry's wait (10, 20, 40 ... ms, jittered): short, a ledger is 5 s; a server's
#: Retry-After and the retry bucket slow retries down when it asks
RPC_BACKOFF_S = 0.01


async def run_keeper(spec: WorkerSpec, reporter: Reporter, stop: asyncio.Event) -> int:
    """Run one shard's keeper until ``stop`` is set; returns an :class:`ExitCode`.

    Never calls ``sys.exit`` and installs no signal handlers.
    """
    log = logger.bind(shard=spec.name)
    events = Events(reporter, log)
    journal = Journal(spec.state_dir, spec.name)
    hb = asyncio.create_task(_heartbeat(events), name=f"{spec.name}-heartbeat")
    try:
        return await _run(spec, events, stop, journal)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an unexpected bug: report and let the supervisor restart
        log.exception("keeper crashed: {}", exc)
        events.event("crash", {"error": f"{type(exc).__name__}: {exc}"})
        return ExitCode.CRASH
    finally:
        hb.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hb


async def _heartbeat(events: Events) -> None:
    """Beat every ``reporter.heartbeat_s`` (a supervisor's pipe reporter says how often its
    supervisor needs a beat), else every :data:`HEARTBEAT_S`."""
    every = getattr(events.reporter, "heartbeat_s", HEARTBEAT_S)
    while True:
        events.safe(events.reporter.heartbeat)
        await asyncio.sleep(every)


def _fatal(events: Events, message: str) -> int:
    events.log.error("fatal: {}", message)
    events.safe(events.reporter.fatal, int(ExitCode.CONFIG), message)
    return ExitCode.CONFIG


async def _run(spec: WorkerSpec, events: Events, stop: asyncio.Event, journal: Journal) -> int:
    try:
        check_contract_id(spec)
        fee_config(spec)
        sources = load_source_accounts(spec)
    except FatalConfigError as exc:
        return _fatal(events, str(exc))
    keeper_key = next(a for a in sources if a.is_keeper).keypair
    events.safe(
        events.reporter.hello,
        os.getpid(),
        keeper_key.public_key,
        [a.public_key for a in sources if not a.is_keeper],
    )
    try:
        rpc = make_rpc(
            spec,
            budget=RequestBudget(spec.max_requests_per_s),
            # a busy RPC answers "try again later" to many requests: six attempts make a read
            # batch or a simulation lost to it rare (0.43^6 < 1 % under issue 16's mix), and
            # the client's retry bucket keeps the retries of all requests bounded
            max_attempts=RPC_ATTEMPTS,
            backoff_base_s=RPC_BACKOFF_S,
            # httpcore scans every pooled connection per request: keep the pool just big enough
            max_connections=spec.max_concurrent_reads + 2 * len(sources) + 2,
            log=events.log,
        )
    except (FatalConfigError, ValueError) as exc:  # an endpoint's header variable, say
        return _fatal(events, str(exc))
    keeper: Keeper | None = None
    try:
        keeper = Keeper(spec, events, stop, rpc, Identity.of(spec, keeper_key), sources, journal)
        keeper.start_warm_up()  # beside the start-up checks
        try:
            if isinstance(rpc, PooledRpc):  # every endpoint on the configured network
                await rpc.check_networks()
            t0 = time.monotonic()
            ready = await preflight(
                rpc,
                spec,
                keeper.accounts,
                events,
                stop,
                events.log,
                keeper.set_ledger_s,
            )
            if ready:
                events.log.info("start-up checks done in {:.0f} ms", 1000 * (time.monotonic() - t0))
            if isinstance(rpc, PooledRpc):
                rpc.fresh_reads_only = False  # lag within max_lag_ledgers is fine from now on
        except FatalConfigError as exc:
            return _fatal(events, str(exc))
        if ready:
            keeper.dispatcher.resolve_journal()  # (it needs no fee statistics)
            await keeper.priced()
            keeper.dispatcher.start()
            await keeper.loop()
        await keeper.dispatcher.drain()
        if keeper.event_reader is not None:
            keeper.event_reader.save()
        events.safe(events.reporter.goodbye, keeper.final())
        return ExitCode.OK
    finally:
        if keeper is not None:
            await keeper.stop_warm_up()
        await rpc.aclose()


class Keeper:
    """One shard's roles, wired, and the cycle loop that drives them."""

    def __init__(
        self,
        spec: WorkerSpec,
        events: Events,
        stop: asyncio.Event,
        rpc: RpcClient | PooledRpc,
        identity: Identity,
        sources: list[SourceAccount],
        journal: Journal,
    ) -> None:
        self.spec = spec
        self.events = events
        self.stop = stop
        self.rpc = rpc
        self.log = events.log
        self.journal = journal
        self.tally = Tally()
        self.holds = Holds()
        self.accounts = SourceAccounts(
            sources,
            rpc,
            min_fee_balance=spec.min_fee_balance,
            balance_refresh_ledgers=spec.balance_refresh_ledgers,
            log=self.log,
            on_transition=lambda t: events.event(
                "source_account",
                {"account": t.public_key, "in_pool": t.in_pool, "reason": t.reason},
            ),
        )
        self.pricer = Pricer(spec, rpc, events, self.tally)
        self.clock = LedgerClock(rpc, self.tally, self.log)
        get_task = None
        if spec.read_mode == "simulate":
            get_task = chain.GetTaskTemplate(
                spec.contract_id, identity.keeper.public_key, spec.network_passphrase
            )
        self.reader = Reader(
            spec,
            rpc,
            events,
            task_keys=identity.task_keys,
            keeper_address=identity.keeper_address,
            holds=self.holds,
            get_task=get_task,
        )
        #: ``read_mode: events``: the event-driven reads (None in the other modes)
        self.event_reader: EventReader | None = None
        if spec.read_mode == "events":
            self.event_reader = EventReader(
                spec, rpc, events, reader=self.reader, holds=self.holds, clock=self.clock
            )
        self.submitter = Submitter(
            spec,
            rpc,
            events,
            journal=journal,
            holds=self.holds,
            clock=self.clock,
            tally=self.tally,
        )
        self.executor = Executor(
            spec,
            rpc,
            events,
            identity=identity,
            accounts=self.accounts,
            submitter=self.submitter,
            holds=self.holds,
            clock=self.clock,
            tally=self.tally,
            pricer=self.pricer,
            # events mode: the rechecks take the read path's call of the ledger
            shared_reads=self.event_reader.batches.shared if self.event_reader else None,
        )
        self.submitter.fee_hooks = FeeHooks(self.pricer, self.tally, self.accounts.charged)
        self.dispatcher = Dispatcher(
            spec, self.executor, self.submitter, self.accounts, journal, events, self.tally
        )
        self._cycle_no = 0
        #: the start's tasks (:meth:`start_warm_up`), until taken
        self._warm: asyncio.Task[None] | None = None
        self._fees: asyncio.Task[None] | None = None
        self._first: asyncio.Task[CycleStats] | None = None
        self._refresh: asyncio.Task[None] | None = None  # (:meth:`_refresh_beside`)

    async def _clock_and_fees(self) -> None:
        """The newest ledger and the fee statistics, together, beside the start-up checks
        (the executors wait for both: :meth:`priced`); a failure is only logged."""
        got = await asyncio.gather(
            self.clock.latest(), self.pricer.refresh(None, hedge=True), return_exceptions=True
        )
        for outcome in got:
            if isinstance(outcome, RpcError):
                self.log.debug("start-up warm-up: {}", outcome)
            elif isinstance(outcome, BaseException):
                raise outcome

    def start_warm_up(self) -> None:
        """Beside the start-up checks, as tasks: :meth:`_clock_and_fees`; in the events read
        mode the saved events position and the Counter (:meth:`EventReader.resume`, its
        failure the first cycle's); and the first cycle, which waits for the resume only: a
        restarted worker's due tasks are queued by the time the executors may start (not with
        several endpoints: their network check and fresh-only reads come first)."""
        name = self.spec.name
        self.dispatcher.hold_journal()  # its tasks are in flight for the first cycle's reads
        self._fees = asyncio.create_task(self._clock_and_fees(), name=f"{name}-fees")
        if self.event_reader is not None:
            self._warm = asyncio.create_task(self.event_reader.resume(), name=f"{name}-resume")
        if not isinstance(self.rpc, PooledRpc):  # a pool's reads wait for its verified endpoints
            self._first = asyncio.create_task(self.run_cycle(), name=f"{name}-cycle-1")

    async def priced(self) -> None:
        """Wait for the start's fee statistics (the first executions are priced at them)."""
        fees, self._fees = self._fees, None
        if fees is not None:
            await fees

    async def stop_warm_up(self) -> None:
        """Cancel what of the start the loop did not take, and the refresh beside."""
        for task in (self._first, self._warm, self._fees, self._refresh):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._warm = self._first = self._fees = self._refresh = None

    async def _warmed(self) -> None:
        """The first cycle waits for the warm-up (its failure is the cycle's)."""
        warm, self._warm = self._warm, None
        if warm is not None:
            await warm

    def set_ledger_s(self, ledger_s: float) -> None:
        """The network's ledger time, measured at start (time-bound checks use it)."""
        self.submitter.ledger_s = ledger_s

    def final(self) -> dict[str, Any]:
        """The ``goodbye`` totals."""
        final: dict[str, Any] = dict(self.tally.totals)
        final["in_flight_left"] = len(self.holds.in_flight)
        final["journal_left"] = len(self.journal)
        final.update(rpc_totals(self.rpc))
        final.update(self.executor.recheck.figures())
        if self.executor.dry_run is not None:
            final.update(self.executor.dry_run.final())
        return final

    async def loop(self) -> None:
        """One cycle every ``poll_interval_s`` until ``stop``; each reported."""
        interval = max(0.05, self.spec.poll_interval_s)
        next_start = time.monotonic()
        while not self.stop.is_set():
            first, self._first = self._first, None
            stats = await (first if first is not None else self.run_cycle())
            self.events.safe(self.events.reporter.cycle, stats)
            self.report_endpoints()
            next_start += interval
            now = time.monotonic()
            if self.event_reader is not None:  # paced around the next ledger's close
                next_start = now + self.event_reader.next_delay()
            next_start = max(next_start, now)  # (events mode: sooner when a recheck asks)
            er = self.event_reader
            await pause(self.stop, next_start - now, er.batches.shared if er else None)

    def report_endpoints(self) -> None:
        """Each endpoint's figures to the reporter, with several (:meth:`PooledRpc.report`)."""
        send = getattr(self.events.reporter, "endpoints", None)
        if isinstance(self.rpc, PooledRpc) and send is not None:
            self.rpc.report(lambda doc: self.events.safe(send, doc))

    async def run_cycle(self) -> CycleStats:
        """One cycle (interrupted by ``stop``); a cycle error (level 3) is reported in the
        stats, never raised."""
        self._cycle_no += 1
        started = time.time()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        stats = CycleStats(
            shard=self.spec.name,
            cycle=self._cycle_no,
            ledger=0,
            ledger_time=0,
            started_at=started,
            duration_s=0.0,
        )
        cycle = asyncio.create_task(self._cycle(stats))
        stopper = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({cycle, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not cycle.done():  # stop requested mid-cycle: reads are not worth finishing
            cycle.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await cycle
            stats.cycle_error = "interrupted by stop"
        else:
            exc = cycle.exception()
            if exc is not None:
                self.tally.totals["cycle_errors"] += 1
                stats.cycle_error = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, RpcError):
                    self.log.opt(exception=exc).error("cycle {} failed", self._cycle_no)
        self._finish_stats(stats)
        stats.duration_s = time.perf_counter() - t0
        stats.cpu_s = time.process_time() - cpu0
        self.tally.totals["cycles"] += 1
        return stats

    def _finish_stats(self, stats: CycleStats) -> None:
        c = self.tally.take_cycle()
        stats.executed = c.executed
        stats.failed = c.failed
        stats.not_sent_by_simulation = c.not_sent
        stats.tx_errors = c.tx_errors
        stats.fees_spent = c.fees
        stats.mean_execution_s = sum(c.exec_times) / len(c.exec_times) if c.exec_times else 0.0
        stats.execution_delay_ledgers = c.delays
        stats.would_execute = c.would_execute
        stats.dry_run_fees = c.dry_run_fees
        stats.due_now = self.tally.lateness.due_now
        stats.oldest_overdue_ledgers = self.tally.lateness.oldest_overdue_ledgers
        stats.in_flight = len(self.holds.in_flight)
        stats.queue_depth = len(self.dispatcher.queue)
        stats.rpc_calls, stats.rpc_errors, stats.rpc_latency_s = self.rpc.drain_counters()
        self.pricer.fill(stats, c)
        self.accounts.fill(stats)
        stats.rpc_failures, stats.rpc_retries = self.rpc.drain_kinds()
        stats.rpc_hedges = self.rpc.drain_hedges()
        stats.send_results = c.sends
        if isinstance(self.rpc, BudgetedRpcClient | PooledRpc):
            stats.budget_waits = self.rpc.drain_waits()
            stats.rpc_bytes = self.rpc.drain_bytes()
        self.tally.totals["read_errors"] += stats.read_errors

    def _refresh_beside(self, ledger: int) -> None:
        """Events mode: :meth:`_fees_and_balances` beside the cycles, one at a time, never
        waited for (a getFeeStats lost to a busy RPC held the next ledgers' due reads)."""
        if self._refresh is None or self._refresh.done():
            name = f"{self.spec.name}-fees-balances"
            self._refresh = asyncio.create_task(self._fees_and_balances(ledger), name=name)

    async def _fees_and_balances(self, ledger: int) -> None:
        """Read again what is due of the source accounts' balances and the fee statistics
        (events mode: beside the cycles; an execution priced meanwhile uses the last ones)."""
        try:
            await self.accounts.refresh_balances(ledger)
        except RpcError as exc:  # the next ledger tries again; the reads go on
            self.log.warning("source account balances not read: {}", exc)
        await self.pricer.refresh(ledger)

    async def _cycle(self, stats: CycleStats) -> None:
        await self._warmed()
        if self.event_reader is not None:
            newest = self.clock.newest or await self.clock.latest()
            self._refresh_beside(newest.sequence)  # not between a close and its due tasks
            found, read_at = await self.event_reader.cycle(stats, self.dispatcher.enqueue)
            if read_at is not None:
                self._note_due(read_at, found.due)
            return
        clock = self.clock
        latest_task = asyncio.create_task(clock.latest())
        counter_task = asyncio.create_task(self.reader.read_counter())
        try:
            latest = await latest_task
            counter = await counter_task
        finally:
            for t in (latest_task, counter_task):
                if not t.done():
                    t.cancel()
        stats.ledger = latest.sequence
        stats.ledger_time = latest.close_time
        last = clock.last_read_sequence
        if latest.sequence == last:
            stats.new_ledger = False
            return
        if latest.sequence < last or clock.is_stale(latest):
            newest = max(last, clock.newest.sequence if clock.newest else -1)
            self.log.warning(
                "RPC reports ledger {} after {}: ignoring the stale answer",
                latest.sequence,
                newest,
            )
            stats.new_ledger = False
            stats.cycle_error = f"ledger went backwards ({newest} -> {latest.sequence})"
            return
        await self._fees_and_balances(latest.sequence)
        found = await self.reader.read(self.reader.task_ids(counter), latest)
        clock.last_read = latest
        found.fill(stats)
        self._note_due(latest, found.due)
        self.dispatcher.enqueue(found.due_ids())

    def _note_due(self, latest: Latest, due: list[tuple[int, int]]) -> None:
        """Tell the lateness figures what a read found due (a queued task stays due now)."""
        queued, in_flight = set(self.dispatcher.queue), self.holds.in_flight
        self.tally.lateness.read_queued(latest.sequence, latest.close_time, due, queued, in_flight)
