"""Executing one due task from one source account (:class:`Executor`), and landing the
signed transaction (:class:`Submitter`).

Build ``execute(keeper, id)`` with time bounds (from the newest ledger seen, never from a
stale ``getLatestLedger`` answer), simulate, check the whole answer
(:func:`shard_worker.simcheck.check_simulation`); if the task's entry is not in the read-write
footprint (not due at that ledger, or the resolver said no) it is not sent. Otherwise
assemble, sign (the keeper signs the auth entry when a channel account is the source, then
the transaction is simulated again so its resources include the signature check), journal,
``sendTransaction``, then ``getTransaction`` until SUCCESS / FAILED or the ledger close time
passes the transaction's max time. An unknown ``sendTransaction`` status is treated like an
unanswered send: maybe queued, so confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from loguru import logger

from shard_worker import chain, txxdr
from shard_worker.accounts import SourceAccount, SourceAccounts
from shard_worker.context import Events, Identity, Tally
from shard_worker.dryrun import DryRun
from shard_worker.due import Holds
from shard_worker.errors import RpcError, RpcMalformedError
from shard_worker.journal import Journal, JournalEntry
from shard_worker.ledger import Latest, LedgerClock
from shard_worker.pricing import FeeHooks, Pricer
from shard_worker.retry import Backoff
from shard_worker.rpc import RpcClient, as_int, expect_dict
from shard_worker.simcheck import Expected, Refusal, Simulation, check_simulation
from shard_worker.spec import WorkerSpec

__all__ = [
    "TRY_AGAIN_LATER_BACKOFF",
    "TRY_AGAIN_LATER_LIMIT",
    "TX_BAD_SEQ",
    "Executor",
    "Submitter",
]

TX_BAD_SEQ = -5
#: the wait between sends answered TRY_AGAIN_LATER, and how many sends at most
TRY_AGAIN_LATER_BACKOFF = Backoff(0.2, factor=1.5, max_s=1.0, jitter=0.3)
TRY_AGAIN_LATER_LIMIT = 64


def _close_time(res: dict[str, Any], method: str) -> int:
    """``latestLedgerCloseTime`` of a send/getTransaction answer; 0 when missing or garbled
    (the caller then keeps waiting rather than failing on a field it only uses as a clock)."""
    try:
        return as_int(res, "latestLedgerCloseTime", method, 0)
    except RpcMalformedError:
        return 0


class Executor:
    """Executes one task from one source account: builds, simulates and checks, signs, then
    hands the transaction to the :class:`Submitter`. Counts the outcomes decided before
    sending (simulation failed, not sent, execution error)."""

    def __init__(
        self,
        spec: WorkerSpec,
        rpc: RpcClient,
        events: Events,
        *,
        identity: Identity,
        accounts: SourceAccounts,
        submitter: Submitter,
        holds: Holds,
        clock: LedgerClock,
        tally: Tally,
        pricer: Pricer | None = None,
    ) -> None:
        self.spec = spec
        self.rpc = rpc
        self.events = events
        self.pricer = pricer if pricer is not None else Pricer(spec, rpc, events, tally)
        self.identity = identity
        self.accounts = accounts
        self.submitter = submitter
        self.holds = holds
        self.clock = clock
        self.tally = tally
        self.log = logger.bind(shard=spec.name)
        #: a dry run: what it would have executed (nothing is signed or sent)
        self.dry_run: DryRun | None = DryRun(tally, events) if spec.dry_run else None

    # ------------------------------------------------------------------ one execution

    async def execute(self, acc: SourceAccount, task_id: int) -> None:
        """Execute ``task_id`` from ``acc``; an error is counted and reported (level 2),
        never raised, and the task backs off."""
        self.holds.in_flight.add(task_id)
        try:
            await self._execute_with(acc, task_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # level 2: one execution error, never the keeper
            self.tally.cycle.failed += 1
            self.tally.totals["failed"] += 1
            self.log.warning("task {} execution error: {}", task_id, exc)
            self.events.event(
                "failed",
                {"task_id": task_id, "reason": "error", "error": f"{type(exc).__name__}: {exc}"},
            )
            if self.clock.last_read is not None:
                self.holds.back_off(task_id, self.clock.last_read.sequence)
        finally:
            self.holds.in_flight.discard(task_id)

    async def _execute_with(self, acc: SourceAccount, task_id: int) -> None:
        spec = self.spec
        me = self.identity
        if self.dry_run is not None and self.dry_run.seen(task_id):
            return  # reported once; nothing changes on chain in a dry run
        t0 = time.monotonic()
        await self.accounts.ready(acc)
        latest = await self.clock.for_tx()
        max_time = latest.close_time + spec.tx_timeout_s
        tx = chain.build_execute_tx(
            source=acc.public_key,
            sequence=acc.sequence,
            keeper=me.keeper.public_key,
            contract_id=spec.contract_id,
            task_id=task_id,
            base_fee=spec.base_fee,
            max_time=max_time,
        )
        sim = await self.simulate(tx, task_id, acc, latest, recorded=True)
        if sim is None:
            return
        if self.dry_run is not None:  # a real run would send this: report it, send nothing
            fee = self.pricer.verdict(task_id, sim.min_resource_fee).total
            self.dry_run.would_execute(task_id, fee, sim.min_resource_fee, latest.sequence)
            return
        if not acc.is_keeper:
            valid_until = latest.sequence + max(10, spec.tx_timeout_s)
            tx.auth = [
                txxdr.sign_auth_entry(a, me.keeper, valid_until, me.network_id) for a in sim.auth
            ]
            # re-simulate with the signed entry so resources include signature verification
            sim = await self.simulate(tx, task_id, acc, latest, recorded=False)
            if sim is None:
                return
        else:
            tx.auth = sim.auth
        verdict = self.pricer.verdict(task_id, sim.min_resource_fee)
        if not verdict.send:
            self.pricer.skipped(task_id, verdict)
            self.holds.back_off(task_id, latest.sequence)
            return
        self.pricer.apply(task_id, tx, sim.transaction_data, verdict)
        tx_hash = tx.sign(acc.keypair, me.network_id).hex()
        if self.submitter.stopping:  # asked to stop before anything was sent: send nothing
            return
        entry = JournalEntry(
            hash=tx_hash,
            task_id=task_id,
            source=acc.public_key,
            sequence=tx.sequence,
            max_time=max_time,
            recorded_at=time.time(),
        )
        await self.submitter.submit(tx.envelope_b64(), entry, acc, t0)

    # ------------------------------------------------------------------ simulation

    async def simulate(
        self,
        tx: txxdr.InvokeTx,
        task_id: int,
        acc: SourceAccount,
        latest: Latest,
        *,
        recorded: bool,
    ) -> Simulation | None:
        """Simulate ``tx`` and check the answer; None when it must not be sent (the simulation
        failed, or it does not write the task entry: not due, or the resolver said no).
        Raises :class:`RpcMalformedError` for an unusable answer."""
        raw = expect_dict(
            await self.rpc.call("simulateTransaction", {"transaction": tx.envelope_b64()}),
            "simulateTransaction",
        )
        if raw.get("error"):
            self._sim_failed(task_id, str(raw["error"]), latest.sequence)
            return None
        sim = self.check_simulation(raw, task_id, acc, recorded=recorded)
        if not sim.writes_task:
            self._not_sent(task_id, sim.latest_ledger or latest.sequence)
            return None
        return sim

    def expected(self, task_id: int, acc: SourceAccount, *, recorded: bool) -> Expected:
        """What a simulation of ``execute(keeper, task_id)`` from ``acc`` must show."""
        me = self.identity
        return Expected(
            task_id=task_id,
            task_key=me.task_keys.key_bytes(task_id),
            keeper_address=me.keeper_address,
            contract_address=me.contract_address,
            keeper_is_source=acc.is_keeper,
            recorded=recorded,
            base_fee=self.spec.base_fee,
        )

    def check_simulation(
        self, raw: dict[str, Any], task_id: int, acc: SourceAccount, *, recorded: bool
    ) -> Simulation:
        """The checked simulation; an unusable answer is counted (``bad_simulations``, an
        error of ``simulateTransaction``) and raised as :class:`RpcMalformedError`."""
        verdict = check_simulation(raw, self.expected(task_id, acc, recorded=recorded))
        if isinstance(verdict, Refusal):
            self.tally.totals["bad_simulations"] += 1
            self.rpc.note_error("simulateTransaction")
            self.log.warning("task {}: unusable simulation answer: {}", task_id, verdict.why)
            raise RpcMalformedError("simulateTransaction", f"unusable answer: {verdict.why}")
        return verdict

    def _not_sent(self, task_id: int, ledger: int) -> None:
        """The simulation shows the call would not write the task: nothing is sent."""
        self.tally.cycle.not_sent += 1
        self.tally.totals["not_sent_by_simulation"] += 1
        self.holds.back_off(task_id, ledger)
        self.events.event("not_sent", {"task_id": task_id, "reason": "no_write"})

    def _sim_failed(self, task_id: int, error: str, ledger: int) -> None:
        self.tally.cycle.failed += 1
        self.tally.totals["failed"] += 1
        self.holds.back_off(task_id, ledger)
        self.events.event(
            "failed", {"task_id": task_id, "reason": "simulation", "error": error[:500]}
        )


class Submitter:
    """Lands signed transactions: journal, ``sendTransaction``, ``getTransaction`` until a
    final status; counts each outcome once (in the :class:`Tally`) and reports it."""

    def __init__(
        self,
        spec: WorkerSpec,
        rpc: RpcClient,
        events: Events,
        *,
        journal: Journal,
        holds: Holds,
        clock: LedgerClock,
        tally: Tally,
    ) -> None:
        self.spec = spec
        self.rpc = rpc
        self.events = events
        self.journal = journal
        self.holds = holds
        self.clock = clock
        self.tally = tally
        self.log = logger.bind(shard=spec.name)
        #: set once the keeper stops: nothing new is sent
        self.stopping = False
        #: tasks that have (maybe) sent a transaction: a stop waits for them (bounded), while
        #: executions not yet sent are cancelled
        self.sending: set[asyncio.Task[None]] = set()
        #: told of each transaction applied, refused or expired (shard_worker.pricing)
        self.fee_hooks: FeeHooks | None = None

    async def submit(
        self, envelope: str, entry: JournalEntry, acc: SourceAccount, t0: float
    ) -> None:
        """Journal ``entry`` (durably), send ``envelope`` and confirm it; ``t0`` is when the
        execution started (for ``mean_execution_s``)."""
        current = asyncio.current_task()
        if current is not None:
            self.sending.add(current)  # from here on a stop waits for it (bounded)
        self.journal.add(entry)
        if await self.send(envelope, entry, acc):
            await self.confirm(entry, acc, t0)

    async def send(self, envelope: str, entry: JournalEntry, acc: SourceAccount) -> bool:
        """True when the transaction may be queued (confirm it); False when it surely is not."""
        for retry in range(TRY_AGAIN_LATER_LIMIT):
            try:
                res = expect_dict(
                    await self.rpc.call("sendTransaction", {"transaction": envelope}),
                    "sendTransaction",
                )
                status = res.get("status")
            except RpcError as exc:
                # unknown whether it reached the queue: confirm until its time bound passes
                self.log.warning("task {} send uncertain ({}); confirming", entry.task_id, exc)
                acc.sent(entry.sequence, accepted=False)
                return True
            if status in ("PENDING", "DUPLICATE"):
                acc.sent(entry.sequence, accepted=True)
                return True
            if status == "TRY_AGAIN_LATER":
                close = _close_time(res, "sendTransaction")
                if close > entry.max_time or self.stopping:
                    self._tx_error(entry, "TRY_AGAIN_LATER until its time bound")
                    return False
                await TRY_AGAIN_LATER_BACKOFF.wait(retry)
                continue
            if status == "ERROR":
                code, name = -1, "unknown"
                raw = res.get("errorResultXdr")
                if isinstance(raw, str):
                    with contextlib.suppress(Exception):
                        code, name = chain.result_code(raw)
                if code == TX_BAD_SEQ:
                    acc.resync()
                if self.fee_hooks is not None:
                    self.fee_hooks.not_applied(entry, name, raw)
                self._tx_error(entry, f"rejected: {name}")
                return False
            # an unknown or garbled status: the server may well have queued it (the answer
            # was mangled on the way, or a newer server has a new status). Treat it like an
            # unanswered send: the sequence number counts as used (resynced from the chain
            # before the account's next use, after the confirmation), the journal entry
            # stays, and getTransaction says what really happened.
            self.tally.totals["send_status_unknown"] += 1
            self.rpc.note_error("sendTransaction")
            self.log.warning(
                "task {} send answered unknown status {!r}; confirming",
                entry.task_id,
                str(status)[:80],
            )
            acc.sent(entry.sequence, accepted=False)
            return True
        self._tx_error(entry, "TRY_AGAIN_LATER too many times")
        return False

    def _tx_error(self, entry: JournalEntry, reason: str) -> None:
        self.journal.remove(entry.hash)
        self.tally.cycle.tx_errors += 1
        self.tally.totals["tx_errors"] += 1
        self.events.event(
            "tx_error", {"task_id": entry.task_id, "tx_hash": entry.hash, "reason": reason}
        )

    async def confirm(self, entry: JournalEntry, acc: SourceAccount | None, t0: float) -> None:
        """Poll getTransaction until a final status or the time bound has passed; ``acc`` is
        the transaction's source (None for a source no longer configured)."""
        poll = max(0.05, self.spec.confirm_poll_s)
        while True:
            try:
                res = expect_dict(
                    await self.rpc.call("getTransaction", {"hash": entry.hash}), "getTransaction"
                )
                status = res.get("status")
            except RpcError as exc:
                self.log.debug("getTransaction {}: {}", entry.hash, exc)
                await asyncio.sleep(min(2.0, poll * 4))
                continue
            if status == "SUCCESS" or status == "FAILED":
                self._applied(entry, res, t0, success=status == "SUCCESS")
                return
            if status == "NOT_FOUND":
                close = _close_time(res, "getTransaction")
                if close > entry.max_time:
                    if acc is not None:
                        acc.resync()  # its sequence number was not consumed
                    if self.fee_hooks is not None:
                        self.fee_hooks.not_applied(entry, "expired", None)
                    self._tx_error(entry, "not applied before its time bound (expired)")
                    return
            await asyncio.sleep(poll)

    def _applied(
        self, entry: JournalEntry, res: dict[str, Any], t0: float, *, success: bool
    ) -> None:
        """The transaction is in a ledger (its fee charged), SUCCESS or FAILED."""
        fee = 0
        if isinstance(res.get("resultXdr"), str):
            with contextlib.suppress(Exception):
                fee = chain.fee_charged(res["resultXdr"])
        self.journal.remove(entry.hash)
        c = self.tally.cycle
        totals = self.tally.totals
        c.fees += fee
        totals["fees_spent"] += fee
        if self.fee_hooks is not None:
            self.fee_hooks.applied(entry, fee, res.get("ledger"))
        if success:
            c.executed += 1
            c.exec_times.append(time.monotonic() - t0)
            self.tally.lateness.executed(entry.task_id, res.get("ledger"), c.delays)
            totals["executed"] += 1
            self.events.event(
                "executed",
                {
                    "task_id": entry.task_id,
                    "tx_hash": entry.hash,
                    "ledger": res.get("ledger"),
                    "fee": fee,
                    "source": entry.source,
                },
            )
            return
        c.failed += 1
        totals["failed"] += 1
        if self.clock.last_read is not None:
            self.holds.back_off(entry.task_id, self.clock.last_read.sequence)
        self.events.event(
            "failed", {"task_id": entry.task_id, "reason": "tx_failed", "tx_hash": entry.hash}
        )
