"""Executing one due task from one source account (:class:`Executor`); the signed transaction
is landed by the :class:`~shard_worker.submitter.Submitter` (re-exported here).

Build ``execute(keeper, id)`` with time bounds (from the newest ledger seen, never from a
stale ``getLatestLedger`` answer; the one the cycle loop saw within the last poll interval
saves a request), simulate, check the whole answer
(:func:`shard_worker.simcheck.check_simulation`); if the task's entry is not in the read-write
footprint (not due at that ledger, or the resolver said no) it is not sent. Otherwise
assemble, sign (the keeper signs the auth entry when a channel account is the source, then
the transaction is simulated again so its resources include the signature check) and hand it
to the submitter (journal, send, settle, confirm). A transaction prepared while its account's
previous one waited for its ledger, or whose simulation outlived a ledger, is sent only if a
fresh read shows the task still due (:mod:`shard_worker.recheck`; in the events read mode that
read is the read path's call of the ledger, :mod:`shard_worker.sharedreads`).

A busy or unreachable RPC (the client's retries spent) is retried here too while the
transaction could still be sent in time; an execution that fails only because of it is
counted failed (``failed_rpc_unavailable``) but the task does not back off: it is due again
next ledger. A real failure (an unusable simulation, the transaction failed on chain, a
simulation error) backs the task off (:class:`~shard_worker.due.Holds`).
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from shard_worker import chain, txxdr
from shard_worker.accounts import SourceAccount, SourceAccounts
from shard_worker.authcache import AuthCache
from shard_worker.context import Events, Identity, Tally
from shard_worker.dryrun import DryRun
from shard_worker.due import Holds
from shard_worker.errors import RpcError, RpcMalformedError
from shard_worker.journal import JournalEntry
from shard_worker.ledger import Latest, LedgerClock
from shard_worker.pricing import Pricer
from shard_worker.recheck import Recheck
from shard_worker.retry import Backoff
from shard_worker.rpc import RpcClient, expect_dict
from shard_worker.sharedreads import SharedReads
from shard_worker.simcheck import Expected, Refusal, Simulation, check_simulation
from shard_worker.spec import WorkerSpec
from shard_worker.strict_xdr import SOROBAN_CREDENTIALS_ADDRESS, parse_auth_entry
from shard_worker.submitter import Submitter
from shard_worker.txsend import TRY_AGAIN_LATER_BACKOFF, TRY_AGAIN_LATER_LIMIT, TX_BAD_SEQ
from sorotask_core.xdr import skip_sc_address

__all__ = [
    "TRY_AGAIN_LATER_BACKOFF",
    "TRY_AGAIN_LATER_LIMIT",
    "TX_BAD_SEQ",
    "Executor",
    "Submitter",
]

#: the wait between simulations of an RPC that stayed busy through the client's retries
SIMULATE_BACKOFF = Backoff(0.05, factor=2.0, max_s=0.5, jitter=0.5)
SIMULATE_RETRY_LIMIT = 20
#: a ledger the cycle loop saw this recently (at most) sets time bounds without a request
FRESH_LEDGER_S = 2.0
#: a tentative simulation showed the task is not due (it was counted as not sent)
DECLINED = object()


def with_nonce(entry: bytes, nonce: int) -> bytes:
    """A ``SorobanAuthorizationEntry`` with address credentials, its nonce replaced (entries
    with source-account credentials are returned as they are). Raises :class:`DecodeError`
    for an entry that does not parse."""
    parse_auth_entry(entry)
    (kind,) = struct.unpack_from(">I", entry, 0)
    if kind != SOROBAN_CREDENTIALS_ADDRESS:
        return entry
    end = skip_sc_address(entry, 4)
    return entry[:end] + struct.pack(">q", nonce) + entry[end + 8 :]


def _retrieved(task: asyncio.Future[None]) -> None:
    """A sequence-number read no one waited for (the execution ended first): its failure is
    not an unretrieved task exception."""
    if not task.cancelled():
        task.exception()


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
        shared_reads: SharedReads | None = None,
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
        #: task id -> the authorization entries its last recording simulation from a channel
        #: account returned (unsigned; kept in the state dir too: a restart reuses them)
        self.auth_cache = AuthCache(
            spec.state_dir,
            spec.name,
            owner=f"{spec.contract_id} {identity.keeper.public_key}",
        )
        #: a prepared transaction whose simulation is older than its send: read again
        self.recheck = Recheck(
            rpc,
            events,
            identity=identity,
            newest=submitter.newest,
            queued_at=submitter.queued_at,
            tally=tally,
            shared=shared_reads,
        )
        self.recheck.wait_for_read_s = min(self.recheck.wait_for_read_s, spec.poll_interval_s)
        #: a dry run: what it would have executed (nothing is signed or sent)
        self.dry_run: DryRun | None = DryRun(tally, events) if spec.dry_run else None

    # ------------------------------------------------------------------ one execution

    async def execute(
        self, acc: SourceAccount, task_id: int, release: Callable[[], None] | None = None
    ) -> bool:
        """Execute ``task_id`` from ``acc``; an error is counted and reported (level 2),
        never raised. The task backs off (ledgers) after a real failure; after an RPC that
        stayed busy or unreachable past the retries it is simply due again. With
        ``release``, the signed transaction is landed beside the executors (True is
        returned: that landing owns ``acc`` and calls ``release`` once the transaction is
        queued or final; the task stays in flight until then)."""
        self.holds.in_flight.add(task_id)
        detached = False
        try:
            detached = await self._execute_with(acc, task_id, release)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # level 2: one execution error, never the keeper
            self._execution_error(task_id, exc)
        finally:
            self.recheck.done(task_id)  # sent (rechecked first) or dropped
            if not detached:
                self.holds.in_flight.discard(task_id)
        return detached

    async def _land(
        self,
        envelope: str,
        entry: JournalEntry,
        acc: SourceAccount,
        t0: float,
        release: Callable[[], None],
        seal: Callable[[], Awaitable[tuple[str, JournalEntry]]],
    ) -> None:
        """A sealed transaction's way to the queue beside the executors (the executor is
        free for the next task meanwhile): ``acc`` is released once it is queued (the
        confirmation goes on beside) or final."""
        detached = False
        try:
            detached = await self.submitter.submit(envelope, entry, acc, t0, release, reseal=seal)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # level 2, as in execute
            self._execution_error(entry.task_id, exc)
        finally:
            if not detached:
                self.holds.in_flight.discard(entry.task_id)
                release()

    def _execution_error(self, task_id: int, exc: Exception) -> None:
        """One execution's error, counted and reported; backed off unless the RPC was only
        busy or unreachable."""
        transient = isinstance(exc, RpcError) and exc.unavailable
        self.tally.cycle.failed += 1
        self.tally.totals["failed"] += 1
        if transient:
            self.tally.totals["failed_rpc_unavailable"] += 1
        self.log.warning("task {} execution error: {}", task_id, exc)
        self.events.event(
            "failed",
            {
                "task_id": task_id,
                "reason": "rpc_unavailable" if transient else "error",
                "error": f"{type(exc).__name__}: {exc}",
            },
        )
        if not transient and self.clock.last_read is not None:
            self.holds.back_off(task_id, self.clock.last_read.sequence)

    async def _execute_with(
        self, acc: SourceAccount, task_id: int, release: Callable[[], None] | None
    ) -> bool:
        if self.dry_run is not None and self.dry_run.seen(task_id):
            return False  # reported once; nothing changes on chain in a dry run
        t0 = time.monotonic()
        # the account's sequence number (when it may be wrong) is read beside the simulation,
        # which checks none: the transaction is signed after it (a round trip less first)
        reading = asyncio.ensure_future(self.accounts.ready(acc))
        try:
            return await self._prepare(acc, task_id, release, t0, reading)
        finally:
            if not reading.done():
                reading.cancel()
            reading.add_done_callback(_retrieved)

    async def _prepare(
        self,
        acc: SourceAccount,
        task_id: int,
        release: Callable[[], None] | None,
        t0: float,
        reading: asyncio.Future[None],
    ) -> bool:
        spec = self.spec
        me = self.identity
        latest = await self._latest_for_tx(FRESH_LEDGER_S)  # (the time bound: at signing)
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
        deadline = max_time - 2 * self.submitter.ledger_s
        if self.dry_run is not None:  # a real run would send this: report it, send nothing
            dry = await self.simulate(tx, task_id, acc, latest, recorded=True, deadline=deadline)
            if isinstance(dry, Simulation):
                fee = self.pricer.verdict(task_id, dry.min_resource_fee).total
                self.dry_run.would_execute(task_id, fee, dry.min_resource_fee, latest.sequence)
            return False
        valid_until = latest.sequence + max(10, spec.tx_timeout_s)
        sim: Simulation | object | None = None
        cached = None if acc.is_keeper else self.auth_cache.get(task_id)
        if cached is not None:
            # the task's authorization as recorded last time, with a fresh nonce, signed:
            # one simulation instead of two (an answer other than a good one: the full path)
            tx.auth = [
                txxdr.sign_auth_entry(
                    with_nonce(a, secrets.randbits(63)), me.keeper, valid_until, me.network_id
                )
                for a in cached
            ]
            sim = await self.simulate(
                tx, task_id, acc, latest, recorded=False, deadline=deadline, tentative=True
            )
            if sim is DECLINED or self.submitter.stopping:
                return False  # not due (counted as not sent)
            if sim is None:
                self.auth_cache.drop(task_id)
        if sim is None:
            tx.auth = []
            sim = await self.simulate(tx, task_id, acc, latest, recorded=True, deadline=deadline)
            if not isinstance(sim, Simulation):
                return False
            if not acc.is_keeper:
                self.auth_cache.put(task_id, sim.auth)
                tx.auth = [
                    txxdr.sign_auth_entry(a, me.keeper, valid_until, me.network_id)
                    for a in sim.auth
                ]
                # re-simulate with the signed entry so resources include signature checks
                sim = await self.simulate(
                    tx, task_id, acc, latest, recorded=False, deadline=deadline
                )
                if not isinstance(sim, Simulation):
                    return False
            else:
                tx.auth = sim.auth
        assert isinstance(sim, Simulation)
        verdict = self.pricer.verdict(task_id, sim.min_resource_fee)
        if not verdict.send:
            self.pricer.skipped(task_id, verdict)
            self.holds.back_off(task_id, latest.sequence)
            return False
        self.pricer.apply(task_id, tx, sim.transaction_data, verdict)
        self.recheck.prepared(task_id)  # its key rides in the read path's calls until sent
        # prepared while the account's previous transaction was confirmed: sign once it is
        # final, with the sequence number that follows it (reloaded if it expired unapplied)
        await reading
        await self.submitter.wait_turn(acc)
        await self.accounts.ready(acc)
        if self.submitter.stopping:  # asked to stop before anything was sent: send nothing
            return False
        if not await self.recheck.still_due(task_id, sim.latest_ledger or latest.sequence, acc):
            return False

        async def seal() -> tuple[str, JournalEntry]:
            """Sequence number, a time bound from the newest ledger (the preparation may
            have taken ledgers), signature: the envelope and its journal entry. Again after
            a txTOO_LATE or txBAD_SEQ refusal (that envelope can never land), then with a
            ledger asked for."""
            await self.accounts.ready(acc)  # reloaded after txBAD_SEQ
            fresh_s = min(FRESH_LEDGER_S, 2 * spec.poll_interval_s)
            newest = await self._latest_for_tx(-1.0 if tx.signatures else fresh_s)
            tx.time_bounds = (0, newest.close_time + spec.tx_timeout_s)
            tx.sequence = acc.sequence + 1
            tx.signatures = []
            tx_hash = tx.sign(acc.keypair, me.network_id).hex()
            entry = JournalEntry(
                hash=tx_hash,
                task_id=task_id,
                source=acc.public_key,
                sequence=tx.sequence,
                max_time=tx.time_bounds[1],
                recorded_at=time.time(),
                envelope=tx.envelope_b64(),
            )
            return entry.envelope, entry

        envelope, entry = await seal()
        if release is None:
            return await self.submitter.submit(envelope, entry, acc, t0, None, reseal=seal)
        self.submitter.beside(
            self._land(envelope, entry, acc, t0, release, seal), f"land-{task_id}"
        )
        return True

    async def _latest_for_tx(self, fresh_s: float) -> Latest:
        """The newest ledger the cycle loop saw, if within the last ``fresh_s`` s (a request
        less under a busy RPC), else asked for. For a time bound: two poll intervals (the
        loop polls at least once a ledger: one ledger behind at most, inside the margin of
        ``tx_timeout_s``; a txTOO_LATE refusal reseals with a ledger asked for)."""
        newest, seen = self.submitter.answers.newest_seen()
        if newest is not None and time.monotonic() - seen <= fresh_s:
            return newest
        return await self.clock.for_tx()

    # ------------------------------------------------------------------ simulation

    async def simulate(
        self,
        tx: txxdr.InvokeTx,
        task_id: int,
        acc: SourceAccount,
        latest: Latest,
        *,
        recorded: bool,
        deadline: float = float("inf"),
        tentative: bool = False,
    ) -> Simulation | object | None:
        """Simulate ``tx`` and check the answer; None when it must not be sent (the simulation
        failed, or it does not write the task entry: not due, or the resolver said no).
        A busy or unreachable RPC is retried (short jittered backoff) until the newest ledger's
        close time reaches ``deadline`` (ledger seconds: the last moment the transaction could
        still pass core's time-bound check). Raises :class:`RpcMalformedError` for an unusable
        answer. ``tentative`` (a reused authorization): an error or an unusable answer is
        None, not counted (the caller falls back to recording the authorization); a call
        that would not write the task is :data:`DECLINED` (counted as not sent)."""
        envelope = tx.envelope_b64()
        for retry in range(SIMULATE_RETRY_LIMIT):
            try:
                raw = expect_dict(
                    await self.rpc.call("simulateTransaction", {"transaction": envelope}),
                    "simulateTransaction",
                )
                break
            except RpcError as exc:
                # busy or unreachable: retried while the transaction could still be sent in
                # time (its max time more than two ledgers past the newest ledger seen)
                newest = self.submitter.newest()
                if (
                    not exc.unavailable
                    or self.submitter.stopping
                    or retry + 1 >= SIMULATE_RETRY_LIMIT
                    or (newest is not None and newest.close_time >= deadline)
                ):
                    raise
                await SIMULATE_BACKOFF.wait(retry)
        if raw.get("error"):
            if tentative:  # maybe only the reused authorization: the caller falls back
                return None
            self._sim_failed(task_id, str(raw["error"]), latest.sequence)
            return None
        if tentative:
            try:
                sim = self.check_simulation(raw, task_id, acc, recorded=recorded)
            except RpcMalformedError:
                return None
        else:
            sim = self.check_simulation(raw, task_id, acc, recorded=recorded)
        if not sim.writes_task:
            self._not_sent(task_id, sim.latest_ledger or latest.sequence)
            return DECLINED if tentative else None
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
