"""The keeper for one shard: poll the shard's tasks each ledger, execute the due ones.

Entry point for the supervisor and the foreground command::

    exit_code = await run_keeper(spec, reporter, stop)

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
6. one :class:`CycleStats` per cycle through ``reporter.cycle``.

Execution: build ``execute(keeper, id)`` with time bounds (from the newest ledger seen, never
from a stale ``getLatestLedger`` answer), simulate, check the whole simulation answer
(:meth:`Keeper._check_simulation`); if the task's entry is not in the read-write footprint
(not due at that ledger, or the resolver said no) it is not sent. Otherwise assemble, sign
(the keeper signs the auth entry when a channel account is the source), journal,
``sendTransaction``, then ``getTransaction`` until SUCCESS / FAILED or the ledger close time
passes the transaction's max time. An unknown ``sendTransaction`` status
is treated like an unanswered send: maybe queued, so confirmed.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from shard_worker import chain, strict_xdr, txxdr
from shard_worker.due import skip_reason
from shard_worker.errors import FatalConfigError, RpcError, RpcMalformedError
from shard_worker.journal import Journal, JournalEntry
from shard_worker.rpc import RpcClient, as_int, expect_dict, expect_list
from shard_worker.secrets import load_keypair
from shard_worker.spec import CycleStats, Reporter, WorkerSpec
from sorotask_core import contract
from sorotask_core.contract import (
    TaskInfo,
    decode_counter_entry,
    decode_task_entry_b64,
    decode_task_scval_b64,
)
from sorotask_core.exitcodes import ExitCode
from sorotask_core.signing import Signer, network_id
from sorotask_core.xdr import DecodeError, scv_address, scv_u64

__all__ = ["Keeper", "SourceAccount", "run_keeper"]

#: getLedgerEntries accepts at most this many keys a call
MAX_KEYS_PER_CALL = 200
#: read-error events reported per cycle (the rest are only counted)
MAX_READ_ERROR_EVENTS = 20
#: longest pause (ledgers) before re-simulating a task the simulation declined or failed
MAX_BACKOFF_LEDGERS = 8
HEARTBEAT_S = 0.5
TX_BAD_SEQ = -5


@dataclass(slots=True)
class SourceAccount:
    """A transaction source with its locally tracked sequence number."""

    keypair: Signer
    is_keeper: bool
    #: last sequence number used on chain (the next transaction uses ``sequence + 1``)
    sequence: int = 0
    needs_resync: bool = True

    @property
    def public_key(self) -> str:
        return self.keypair.public_key


@dataclass(slots=True)
class _Counters:
    """Execution outcomes finalized since the last cycle report."""

    executed: int = 0
    failed: int = 0
    not_sent: int = 0
    tx_errors: int = 0
    fees: int = 0
    exec_times: list[float] = field(default_factory=list)


def _close_time(res: dict[str, Any], method: str) -> int:
    """``latestLedgerCloseTime`` of a send/getTransaction answer; 0 when missing or garbled
    (the caller then keeps waiting rather than failing on a field it only uses as a clock)."""
    try:
        return as_int(res, "latestLedgerCloseTime", method, 0)
    except RpcMalformedError:
        return 0


class _Latest:
    __slots__ = ("close_time", "sequence")

    def __init__(self, sequence: int, close_time: int) -> None:
        self.sequence = sequence
        self.close_time = close_time

    def older_than(self, other: _Latest | None) -> bool:
        """True when this answer is behind ``other`` (a lagging RPC node)."""
        return other is not None and (
            self.sequence < other.sequence or self.close_time < other.close_time
        )


@dataclass(frozen=True, slots=True)
class _Simulation:
    """A simulation answer that passed :meth:`Keeper._check_simulation`."""

    transaction_data: bytes
    data: strict_xdr.SorobanData
    min_resource_fee: int
    auth: list[bytes]
    latest_ledger: int | None


async def run_keeper(spec: WorkerSpec, reporter: Reporter, stop: asyncio.Event) -> int:
    """Run one shard's keeper until ``stop`` is set; returns an :class:`ExitCode`.

    Never calls ``sys.exit`` and installs no signal handlers.
    """
    return await Keeper(spec, reporter, stop).run()


class Keeper:
    def __init__(self, spec: WorkerSpec, reporter: Reporter, stop: asyncio.Event) -> None:
        self.spec = spec
        self.reporter = reporter
        self.stop = stop
        self.log = logger.bind(shard=spec.name)
        self.rpc: RpcClient | None = None
        self.keeper: Signer | None = None
        self.network_id = network_id(spec.network_passphrase)
        self.keeper_address = b""
        self.accounts: list[SourceAccount] = []
        self._pool: asyncio.Queue[SourceAccount] = asyncio.Queue()
        #: due task ids waiting for a source account, most overdue first
        self._queue: collections.deque[int] = collections.deque()
        self._work = asyncio.Event()
        #: executor / journal-resolver tasks that have (maybe) sent a transaction
        self._sent_tasks: set[asyncio.Task[None]] = set()
        #: executors working on a task (simulating, signing, sending or confirming)
        self._busy: set[asyncio.Task[None]] = set()
        self.journal = Journal(spec.state_dir, spec.name)
        self.task_keys: contract.TaskKeys = None  # type: ignore[assignment]  # set at start
        self._key_to_id: dict[str, int] = {}
        self._chunk_ids: list[int] = []
        self._chunk_keys: list[str] = []  # base64 ledger key of each id in _chunk_ids
        self._chunk_list: list[tuple[list[int], list[str]]] = []
        self._get_task: chain.GetTaskTemplate | None = None
        # per-task caches
        #: hash of each task's last base64 entry: change detection without keeping the
        #: strings (~750 bytes a task); a 64-bit hash collision is the only way to miss a change
        self._xdr: dict[int, int] = {}
        self._info: dict[int, TaskInfo] = {}
        self._backoff: dict[int, tuple[int, int]] = {}  # id -> (until ledger, step)
        #: tasks being executed (or held by a journaled transaction)
        self.in_flight: set[int] = set()
        self._exec_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._counters = _Counters()
        self._cycle_no = 0
        self._last_ledger = -1
        self._latest: _Latest | None = None
        #: the newest ledger any getLatestLedger answer reported: a transaction's time bound
        #: and its auth expiry are never taken from an older one
        self._newest: _Latest | None = None
        self.contract_address = b""
        self.totals: dict[str, int] = {
            "cycles": 0,
            "executed": 0,
            "failed": 0,
            "not_sent_by_simulation": 0,
            "tx_errors": 0,
            "fees_spent": 0,
            "read_errors": 0,
            "cycle_errors": 0,
            "dropped_unsent_at_stop": 0,
            "sent_unresolved_at_stop": 0,
            "stale_ledger_answers": 0,
            "bad_simulations": 0,
            "send_status_unknown": 0,
        }

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        hb = asyncio.create_task(self._heartbeat(), name=f"{self.spec.name}-heartbeat")
        try:
            return await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an unexpected bug: report and let the supervisor restart
            self.log.exception("keeper crashed: {}", exc)
            self._safe(self.reporter.event, "crash", {"error": f"{type(exc).__name__}: {exc}"})
            return ExitCode.CRASH
        finally:
            hb.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hb

    async def _run(self) -> int:
        try:
            self._load_secrets()
        except FatalConfigError as exc:
            return self._fatal(str(exc))
        assert self.keeper is not None
        self._safe(
            self.reporter.hello,
            os.getpid(),
            self.keeper.public_key,
            [a.public_key for a in self.accounts if not a.is_keeper],
        )
        self.rpc = RpcClient(
            self.spec.rpc_url,
            timeout_s=self.spec.rpc_timeout_s,
            transport=self.spec.http_client,
            # httpcore scans every pooled connection per request: keep the pool just big enough
            max_connections=self.spec.max_concurrent_reads + 2 * len(self.accounts) + 2,
        )
        try:
            try:
                ready = await self._preflight()
            except FatalConfigError as exc:
                return self._fatal(str(exc))
            if ready:
                self._resolve_journal()
                self._start_workers()
                await self._loop()
            await self._drain()
            self._safe(self.reporter.goodbye, self._final())
            return ExitCode.OK
        finally:
            await self.rpc.aclose()

    def _fatal(self, message: str) -> int:
        self.log.error("fatal: {}", message)
        self._safe(self.reporter.fatal, int(ExitCode.CONFIG), message)
        return ExitCode.CONFIG

    def _safe(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a reporter must not break the keeper
            self.log.warning("reporter {} failed: {}", getattr(fn, "__name__", fn), exc)

    async def _heartbeat(self) -> None:
        while True:
            self._safe(self.reporter.heartbeat)
            await asyncio.sleep(HEARTBEAT_S)

    def _load_secrets(self) -> None:
        spec = self.spec
        if not contract.is_valid_contract_id(spec.contract_id):
            raise FatalConfigError(
                f"contract id {spec.contract_id!r} is not a valid contract address (C...)"
            )
        self.task_keys = contract.TaskKeys(spec.contract_id)
        self.keeper = load_keypair(spec.secret)
        self.keeper_address = contract.sc_address_bytes(self.keeper.public_key)
        self.contract_address = contract.sc_address_bytes(spec.contract_id)
        accounts = [SourceAccount(self.keeper, True)]
        seen = {self.keeper.public_key}
        for ref in spec.channel_secrets:
            kp = load_keypair(ref)
            if kp.public_key in seen:
                raise FatalConfigError(
                    f"channel account in {ref.describe()} ({kp.public_key}) duplicates the "
                    "keeper or another channel account: give each source its own key"
                )
            seen.add(kp.public_key)
            accounts.append(SourceAccount(kp, False))
        # the keeper's own account is a source too: S source accounts = keeper + S-1 channels,
        # so a shard lands up to S executions per ledger (one pending transaction per source);
        # channels are tried first, the keeper's account takes what they leave
        self.accounts = accounts[1:] + accounts[:1]
        if spec.read_mode == "simulate":
            self._get_task = chain.GetTaskTemplate(
                spec.contract_id, self.keeper.public_key, spec.network_passphrase
            )

    async def _preflight(self) -> bool:
        """Level-4 checks; retries RPC failures until ``stop``. False when stopped first."""
        delay = 0.5
        while not self.stop.is_set():
            try:
                await self._check_config()
                return True
            except RpcError as exc:
                self.log.warning("start-up checks: RPC unavailable ({}); retrying", exc)
                self._safe(self.reporter.event, "rpc_unavailable", {"error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
                delay = min(delay * 2, 5.0)
        return False

    async def _check_config(self) -> None:
        rpc = self._rpc
        spec = self.spec
        net = expect_dict(await rpc.call("getNetwork"), "getNetwork")
        passphrase = net.get("passphrase")
        if not isinstance(passphrase, str):
            raise RpcMalformedError("getNetwork", "passphrase missing")
        if passphrase != spec.network_passphrase:
            raise FatalConfigError(
                f"wrong network: RPC server {spec.rpc_url} serves network {passphrase!r} but "
                f"the shard is configured for {spec.network_passphrase!r}; fix "
                "network_passphrase or rpc_url"
            )
        found = await self._ledger_entries([contract.instance_key_b64(spec.contract_id)])
        if not found:
            raise FatalConfigError(
                f"contract {spec.contract_id} not found on network {passphrase!r} at "
                f"{spec.rpc_url}: check contract_id (is it deployed on this network?)"
            )
        friendbot = net.get("friendbotUrl")
        fb = friendbot if isinstance(friendbot, str) else None
        assert self.keeper is not None
        for acc in self.accounts:
            await self._check_account(acc, fb)

    async def _check_account(self, acc: SourceAccount, friendbot: str | None) -> None:
        role = "keeper" if acc.is_keeper else "channel"
        pub = acc.public_key
        state = await self._load_account(pub)
        if state is None:
            how = f" (e.g. {friendbot.rstrip('/')}?addr={pub})" if friendbot else ""
            raise FatalConfigError(
                f"{role} account {pub} does not exist on network "
                f"{self.spec.network_passphrase!r}: fund it{how} and restart the shard"
            )
        if state.spendable < self.spec.min_fee_balance:
            raise FatalConfigError(
                f"{role} account {pub} cannot pay fees: {state.spendable / 1e7:.7f} XLM above "
                f"its reserve, needs at least {self.spec.min_fee_balance / 1e7:.7f} XLM; "
                "fund it and restart the shard"
            )
        for mine in self.accounts:
            if mine.public_key == pub:
                mine.sequence = state.sequence
                mine.needs_resync = False

    async def _load_account(self, public_key: str) -> chain.AccountState | None:
        entries = await self._ledger_entries([chain.account_key_b64(public_key)])
        if not entries:
            return None
        xdr = entries[0].get("xdr")
        if not isinstance(xdr, str):
            raise RpcMalformedError("getLedgerEntries", "account entry without xdr")
        try:
            return chain.parse_account_entry(xdr)
        except Exception as exc:
            raise RpcMalformedError(
                "getLedgerEntries", f"undecodable account entry: {exc}"
            ) from None

    async def _ledger_entries(self, keys: list[str]) -> list[dict[str, Any]]:
        result = expect_dict(
            await self._rpc.call("getLedgerEntries", {"keys": keys}), "getLedgerEntries"
        )
        entries = result.get("entries") or []
        return [
            e for e in expect_list(entries, "getLedgerEntries", "entries") if isinstance(e, dict)
        ]

    @property
    def _rpc(self) -> RpcClient:
        assert self.rpc is not None
        return self.rpc

    def _final(self) -> dict[str, Any]:
        final: dict[str, Any] = dict(self.totals)
        final["in_flight_left"] = len(self.in_flight)
        final["journal_left"] = len(self.journal)
        final["rpc_calls"] = self._rpc.total_calls if self.rpc else 0
        final["rpc_errors"] = self._rpc.total_errors if self.rpc else 0
        return final

    # ------------------------------------------------------------------ cycles

    async def _loop(self) -> None:
        interval = max(0.05, self.spec.poll_interval_s)
        next_start = time.monotonic()
        while not self.stop.is_set():
            stats = await self._run_cycle()
            if stats is not None:
                self._safe(self.reporter.cycle, stats)
            next_start += interval
            now = time.monotonic()
            if next_start < now:
                next_start = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), next_start - now)

    async def _run_cycle(self) -> CycleStats | None:
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
                self.totals["cycle_errors"] += 1
                stats.cycle_error = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, RpcError):
                    self.log.opt(exception=exc).error("cycle {} failed", self._cycle_no)
        self._finish_stats(stats)
        stats.duration_s = time.perf_counter() - t0
        stats.cpu_s = time.process_time() - cpu0
        self.totals["cycles"] += 1
        return stats

    def _finish_stats(self, stats: CycleStats) -> None:
        c = self._counters
        self._counters = _Counters()
        stats.executed = c.executed
        stats.failed = c.failed
        stats.not_sent_by_simulation = c.not_sent
        stats.tx_errors = c.tx_errors
        stats.fees_spent = c.fees
        stats.mean_execution_s = sum(c.exec_times) / len(c.exec_times) if c.exec_times else 0.0
        stats.in_flight = len(self.in_flight)
        stats.queue_depth = len(self._queue)
        if self.rpc is not None:
            stats.rpc_calls, stats.rpc_errors, stats.rpc_latency_s = self.rpc.drain_counters()
        self.totals["read_errors"] += stats.read_errors

    async def _cycle(self, stats: CycleStats) -> None:
        latest_task = asyncio.create_task(self._latest_ledger())
        counter_task = asyncio.create_task(self._read_counter())
        try:
            latest = await latest_task
            counter = await counter_task
        finally:
            for t in (latest_task, counter_task):
                if not t.done():
                    t.cancel()
        stats.ledger = latest.sequence
        stats.ledger_time = latest.close_time
        if latest.sequence == self._last_ledger:
            stats.new_ledger = False
            return
        if latest.sequence < self._last_ledger or self._is_stale(latest):
            newest = max(self._last_ledger, self._newest.sequence if self._newest else -1)
            self.log.warning(
                "RPC reports ledger {} after {}: ignoring the stale answer",
                latest.sequence,
                newest,
            )
            stats.new_ledger = False
            stats.cycle_error = f"ledger went backwards ({newest} -> {latest.sequence})"
            return
        ids = self._registry(counter)
        if self.spec.read_mode == "simulate":
            due = await self._read_simulate(ids, latest, stats)
        else:
            due = await self._read_ledger_entries(ids, latest, stats)
        self._last_ledger = latest.sequence
        self._latest = latest
        due.sort()
        stats.due = len(due)
        self._enqueue([task_id for _, task_id in due])

    async def _latest_ledger(self) -> _Latest:
        """The RPC's latest ledger as answered (maybe stale: see :meth:`_is_stale`)."""
        res = expect_dict(await self._rpc.call("getLatestLedger"), "getLatestLedger")
        seq = as_int(res, "sequence", "getLatestLedger")
        close_time = as_int(res, "closeTime", "getLatestLedger")
        if seq <= 0 or close_time <= 0:
            raise RpcMalformedError("getLatestLedger", "non-positive sequence or close time")
        latest = _Latest(seq, close_time)
        if not latest.older_than(self._newest):
            self._newest = latest
        return latest

    def _is_stale(self, latest: _Latest) -> bool:
        """True (and counted as a getLatestLedger error) when ``latest`` is behind the newest
        ledger already seen: a lagging node behind a load balancer, say."""
        if not latest.older_than(self._newest):
            return False
        self.totals["stale_ledger_answers"] += 1
        self._rpc.note_error("getLatestLedger")
        return True

    async def _ledger_for_tx(self) -> _Latest:
        """The ledger a transaction's time bound and auth expiry are computed from: the
        RPC's latest, or the newest seen when that answer is stale (a bound from a stale
        ledger may already have passed: the transaction would be rejected txTOO_LATE)."""
        latest = await self._latest_ledger()
        if self._is_stale(latest):
            assert self._newest is not None
            self.log.debug(
                "stale getLatestLedger answer ({} < {}); using the newest seen",
                latest.sequence,
                self._newest.sequence,
            )
            return self._newest
        return latest

    async def _read_counter(self) -> int:
        entries = await self._ledger_entries([contract.counter_key_b64(self.spec.contract_id)])
        if not entries:
            return 0
        xdr = entries[0].get("xdr")
        if not isinstance(xdr, str):
            raise RpcMalformedError("getLedgerEntries", "Counter entry without xdr")
        try:
            return decode_counter_entry(xdr)
        except DecodeError as exc:
            raise RpcMalformedError("getLedgerEntries", f"undecodable Counter: {exc}") from None

    def _registry(self, counter: int) -> list[int]:
        spec = self.spec
        first = max(1, spec.range_first)
        last = counter if spec.range_last is None else min(spec.range_last, counter)
        if spec.task_ids is not None:
            return sorted({i for i in spec.task_ids if first <= i <= last})
        return list(range(first, last + 1))

    def _chunks(self, ids: list[int]) -> list[tuple[list[int], list[str]]]:
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
                self._key_to_id[key] = task_id
                keys.append(key)
            self._chunk_list = [
                (ids[i : i + MAX_KEYS_PER_CALL], keys[i : i + MAX_KEYS_PER_CALL])
                for i in range(0, len(ids), MAX_KEYS_PER_CALL)
            ]
            self._chunk_ids = ids
            self._chunk_keys = keys
        return self._chunk_list

    async def _read_ledger_entries(
        self, ids: list[int], latest: _Latest, stats: CycleStats
    ) -> list[tuple[int, int]]:
        chunks = self._chunks(ids)
        key_to_id = self._key_to_id
        sem = asyncio.Semaphore(max(1, self.spec.max_concurrent_reads))
        due: list[tuple[int, int]] = []
        skipped: dict[str, int] = {}
        counts = [0, 0, 0, 0]  # checked, decoded, read_errors, archived
        error_events = [0]

        async def batch(chunk: list[int], keys: list[str]) -> None:
            async with sem:
                try:
                    result = await self._rpc.call("getLedgerEntries", {"keys": keys})
                    entries = expect_list(
                        expect_dict(result, "getLedgerEntries").get("entries") or [],
                        "getLedgerEntries",
                        "entries",
                    )
                except RpcError as exc:
                    counts[2] += len(chunk)
                    skipped["read_error"] = skipped.get("read_error", 0) + len(chunk)
                    self._read_error_event(error_events, chunk, str(exc))
                    return
            self._classify_entries(
                entries, len(chunk), key_to_id, latest, due, skipped, counts, error_events
            )

        await asyncio.gather(*(batch(c, k) for c, k in chunks))
        stats.checked = counts[0]
        stats.decoded = counts[1]
        stats.read_errors = counts[2]
        stats.archived = counts[3]
        stats.skipped = skipped
        return due

    def _read_error_event(self, sent: list[int], ids: list[int], error: str) -> None:
        if sent[0] < MAX_READ_ERROR_EVENTS:
            sent[0] += 1
            self._safe(
                self.reporter.event,
                "read_error",
                {"task_ids": ids[:10], "count": len(ids), "error": error},
            )

    def _classify_entries(
        self,
        entries: list[Any],
        expected: int,
        key_to_id: dict[str, int],
        latest: _Latest,
        due: list[tuple[int, int]],
        skipped: dict[str, int],
        counts: list[int],
        error_events: list[int],
    ) -> None:
        """The hot loop: change detection, decode-if-changed, due logic. No SDK objects."""
        cache_xdr = self._xdr
        cache_info = self._info
        in_flight = self.in_flight
        backoff = self._backoff
        keeper = self.keeper_address
        now = latest.close_time
        ledger = latest.sequence
        execute_archived = self.spec.execute_archived
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
                    self._read_error_event(error_events, [task_id], f"undecodable entry: {exc}")
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
                            due.append((info.last_run + info.interval, task_id))
                            continue
            skipped[reason] = skipped.get(reason, 0) + 1
        missing = expected - seen
        if missing > 0:
            skipped["missing"] = skipped.get("missing", 0) + missing
        counts[0] += checked + missing
        counts[1] += decoded
        counts[2] += errors
        counts[3] += archived

    async def _read_simulate(
        self, ids: list[int], latest: _Latest, stats: CycleStats
    ) -> list[tuple[int, int]]:
        """The seed's way: ``simulateTransaction`` of ``get_task`` per task."""
        assert self._get_task is not None
        template = self._get_task
        sem = asyncio.Semaphore(max(1, self.spec.max_concurrent_reads))
        due: list[tuple[int, int]] = []
        skipped: dict[str, int] = {}
        counts = [0, 0, 0, 0]
        error_events = [0]

        async def one(task_id: int) -> None:
            async with sem:
                try:
                    res = expect_dict(
                        await self._rpc.call(
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
                    counts[2] += 1
                    counts[0] += 1
                    skipped["read_error"] = skipped.get("read_error", 0) + 1
                    self._read_error_event(error_events, [task_id], str(exc))
                    return
            try:
                self._classify_sim(task_id, xdr, latest, due, skipped, counts)
            except DecodeError as exc:
                counts[0] += 1
                counts[2] += 1
                skipped["read_error"] = skipped.get("read_error", 0) + 1
                self._read_error_event(error_events, [task_id], f"undecodable: {exc}")

        await asyncio.gather(*(one(i) for i in ids))
        stats.checked = counts[0]
        stats.decoded = counts[1]
        stats.read_errors = counts[2]
        stats.skipped = skipped
        return due

    def _classify_sim(
        self,
        task_id: int,
        xdr: str,
        latest: _Latest,
        due: list[tuple[int, int]],
        skipped: dict[str, int],
        counts: list[int],
    ) -> None:
        info = self._info.get(task_id)
        xdr_hash = hash(xdr)
        if info is None or self._xdr.get(task_id) != xdr_hash:
            info = decode_task_scval_b64(xdr)
            if info is None:  # get_task returned None: no such task
                skipped["missing"] = skipped.get("missing", 0) + 1
                counts[0] += 1
                return
            counts[1] += 1
            self._xdr[task_id] = xdr_hash
            self._info[task_id] = info
            self._backoff.pop(task_id, None)
        counts[0] += 1
        reason = skip_reason(info, latest.close_time, self.keeper_address)
        if reason is None:
            if task_id in self.in_flight:
                reason = "in_flight"
            else:
                b = self._backoff.get(task_id)
                if b is not None and b[0] > latest.sequence:
                    reason = "backoff"
                else:
                    due.append((info.last_run + info.interval, task_id))
                    return
        skipped[reason] = skipped.get(reason, 0) + 1

    # ------------------------------------------------------------------ executions
    #
    # Due tasks wait in ``_queue`` (task ids only: a backlog of thousands costs a few bytes
    # each, not a coroutine each), replaced by every new ledger's due list, most overdue
    # first. ``max_concurrent_executions`` worker coroutines take a free source account,
    # then the next queued task, and execute it.

    def _enqueue(self, due: list[int]) -> None:
        """Make ``due`` (most overdue first) the queue, first-come first-served: tasks still
        queued from earlier ledgers keep their place (ahead of newly due ones) if they are
        still due; those no longer due are dropped."""
        if self._stopping:
            return
        old = self._queue
        if old:
            due_set = set(due)
            kept = [t for t in old if t in due_set]
            kept_set = set(kept)
            kept.extend(t for t in due if t not in kept_set)
            due = kept
        self._queue = collections.deque(due)
        if due:
            self._work.set()

    def _start_workers(self) -> None:
        for n in range(max(1, self.spec.max_concurrent_executions)):
            task = asyncio.create_task(self._worker(), name=f"{self.spec.name}-executor-{n}")
            self._exec_tasks.add(task)
            task.add_done_callback(self._exec_tasks.discard)

    async def _next_task(self) -> int | None:
        """The next queued task not already in flight; None once stopping."""
        while not self._stopping:
            queue = self._queue
            while queue:
                task_id = queue.popleft()
                if task_id not in self.in_flight:
                    return task_id
            self._work.clear()
            await self._work.wait()
        return None

    async def _worker(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._stopping:
            acc = await self._pool.get()
            try:
                task_id = await self._next_task()
                if task_id is None:
                    return
                self._busy.add(me)
                await self._execute(acc, task_id)
            finally:
                self._busy.discard(me)
                self._sent_tasks.discard(me)
                self._pool.put_nowait(acc)

    def _set_backoff(self, task_id: int, ledger: int) -> None:
        _, step = self._backoff.get(task_id, (0, 0))
        step = min(MAX_BACKOFF_LEDGERS, max(1, step * 2))
        self._backoff[task_id] = (ledger + step, step)

    async def _execute(self, acc: SourceAccount, task_id: int) -> None:
        self.in_flight.add(task_id)
        try:
            await self._execute_with(acc, task_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # level 2: one execution error, never the keeper
            self._counters.failed += 1
            self.totals["failed"] += 1
            self.log.warning("task {} execution error: {}", task_id, exc)
            self._safe(
                self.reporter.event,
                "failed",
                {"task_id": task_id, "reason": "error", "error": f"{type(exc).__name__}: {exc}"},
            )
            if self._latest is not None:
                self._set_backoff(task_id, self._latest.sequence)
        finally:
            self.in_flight.discard(task_id)

    async def _simulate_execute(
        self,
        tx: txxdr.InvokeTx,
        task_id: int,
        acc: SourceAccount,
        latest: _Latest,
        *,
        recorded: bool,
    ) -> _Simulation | None:
        """Simulate ``tx`` and check the answer; None when it must not be sent (the simulation
        failed, or it does not write the task entry: not due, or the resolver said no)."""
        raw = await self._simulate(tx.envelope_b64())
        if raw.get("error"):
            self._sim_failed(task_id, str(raw["error"]), latest.sequence)
            return None
        sim = self._check_simulation(raw, task_id, acc, recorded=recorded)
        if self.task_keys.key_bytes(task_id) not in sim.data.read_write:
            self._not_sent(task_id, sim.latest_ledger or latest.sequence)
            return None
        return sim

    async def _execute_with(self, acc: SourceAccount, task_id: int) -> None:
        spec = self.spec
        assert self.keeper is not None
        t0 = time.monotonic()
        if acc.needs_resync:
            state = await self._load_account(acc.public_key)
            if state is None:
                raise RpcMalformedError("getLedgerEntries", f"account {acc.public_key} vanished")
            acc.sequence = state.sequence
            acc.needs_resync = False
        latest = await self._ledger_for_tx()
        max_time = latest.close_time + spec.tx_timeout_s
        tx = chain.build_execute_tx(
            source=acc.public_key,
            sequence=acc.sequence,
            keeper=self.keeper.public_key,
            contract_id=spec.contract_id,
            task_id=task_id,
            base_fee=spec.base_fee,
            max_time=max_time,
        )
        sim = await self._simulate_execute(tx, task_id, acc, latest, recorded=True)
        if sim is None:
            return
        if not acc.is_keeper:
            valid_until = latest.sequence + max(10, spec.tx_timeout_s)
            tx.auth = [
                txxdr.sign_auth_entry(a, self.keeper, valid_until, self.network_id)
                for a in sim.auth
            ]
            # re-simulate with the signed entry so resources include signature verification
            sim = await self._simulate_execute(tx, task_id, acc, latest, recorded=False)
            if sim is None:
                return
        else:
            tx.auth = sim.auth
        tx.soroban_data = sim.transaction_data
        tx.fee = spec.base_fee + sim.min_resource_fee
        tx_hash = tx.sign(acc.keypair, self.network_id).hex()
        if self._stopping:  # asked to stop before anything was sent: send nothing new
            return
        entry = JournalEntry(
            hash=tx_hash,
            task_id=task_id,
            source=acc.public_key,
            sequence=tx.sequence,
            max_time=max_time,
            recorded_at=time.time(),
        )
        current = asyncio.current_task()
        if current is not None:
            self._sent_tasks.add(current)  # from here on a stop waits for it (bounded)
        self.journal.add(entry)
        if not await self._send(tx.envelope_b64(), entry, acc):
            return
        await self._confirm(entry, acc, t0)

    def _bad_simulation(self, task_id: int, why: str) -> RpcMalformedError:
        """A simulation answer unfit to build a transaction from: counted as a
        simulateTransaction error; the caller raises it (a level-2 execution error)."""
        self.totals["bad_simulations"] += 1
        self._rpc.note_error("simulateTransaction")
        self.log.warning("task {}: unusable simulation answer: {}", task_id, why)
        return RpcMalformedError("simulateTransaction", f"unusable answer: {why}")

    def _check_simulation(
        self, sim: dict[str, Any], task_id: int, acc: SourceAccount, *, recorded: bool
    ) -> _Simulation:
        """Parse everything of a successful simulation that goes into the transaction,
        strictly, before anything is built from it: ``transactionData`` (a complete
        ``SorobanTransactionData``), ``minResourceFee`` (covers the data's resource fee,
        and the total fee fits a uint32), ``results`` (one result: a well-formed ``SCVal``
        and well-formed ``SorobanAuthorizationEntry``\\ s). Auth entries must authorize
        exactly ``execute(keeper, task_id)`` on our contract for the keeper's address (or the
        source account when the keeper is the source), nothing below it; a recording-mode
        answer (``recorded``) must hold exactly one. Raises an :class:`RpcMalformedError`."""
        bad = self._bad_simulation
        raw_data = sim.get("transactionData")
        if not isinstance(raw_data, str):
            raise bad(task_id, "transactionData missing or not a string")
        try:
            tx_data = binascii.a2b_base64(raw_data, strict_mode=True)
            data = strict_xdr.parse_soroban_data(tx_data)
        except (binascii.Error, ValueError) as exc:  # DecodeError is a ValueError
            raise bad(task_id, f"transactionData: {exc}") from None
        if data.resource_fee < 0:
            raise bad(task_id, f"negative resource fee {data.resource_fee}")
        n_rw = len(data.read_write)
        if len(set(data.archived)) != len(data.archived) or any(i >= n_rw for i in data.archived):
            raise bad(task_id, "archived entry indices outside the read-write footprint")
        try:
            min_fee = as_int(sim, "minResourceFee", "simulateTransaction")
        except RpcMalformedError as exc:
            raise bad(task_id, str(exc)) from None
        if not data.resource_fee <= min_fee <= 0xFFFF_FFFF - self.spec.base_fee:
            raise bad(
                task_id,
                f"minResourceFee {min_fee} below the data's resource fee {data.resource_fee} "
                "or too large for a transaction fee",
            )
        results = sim.get("results")
        if not isinstance(results, list) or len(results) != 1 or not isinstance(results[0], dict):
            raise bad(task_id, "results is not a list of one result object")
        result = results[0]
        try:
            retval = result.get("xdr")
            if not isinstance(retval, str):
                raise ValueError("result xdr is not a string")
            strict_xdr.parse_scval(binascii.a2b_base64(retval, strict_mode=True))
        except (binascii.Error, ValueError) as exc:
            raise bad(task_id, f"result: {exc}") from None
        raw_auth = result.get("auth")
        if raw_auth is None:
            raw_auth = []
        if not isinstance(raw_auth, list):
            raise bad(task_id, "auth is not a list")
        if recorded and len(raw_auth) != 1:
            raise bad(task_id, f"{len(raw_auth)} auth entries, expected the keeper's one")
        want_args = (scv_address(self.keeper_address), scv_u64(task_id))
        auth: list[bytes] = []
        for item in raw_auth:
            try:
                if not isinstance(item, str):
                    raise ValueError("auth entry is not a string")
                entry_bytes = binascii.a2b_base64(item, strict_mode=True)
                entry = strict_xdr.parse_auth_entry(entry_bytes)
            except (binascii.Error, ValueError) as exc:
                raise bad(task_id, f"auth: {exc}") from None
            if (
                entry.function_type != strict_xdr.AUTH_FN_CONTRACT
                or entry.contract != self.contract_address
                or entry.function != b"execute"
                or entry.args != want_args
                or entry.sub_invocations
            ):
                raise bad(task_id, "auth entry authorizes something other than this execute")
            if entry.credentials == strict_xdr.SOROBAN_CREDENTIALS_ADDRESS:
                if entry.address != self.keeper_address:
                    raise bad(task_id, "auth entry is for an address other than the keeper")
            elif not acc.is_keeper:
                raise bad(task_id, "source-account auth entry but the keeper is not the source")
            auth.append(entry_bytes)
        latest = sim.get("latestLedger")
        return _Simulation(
            transaction_data=tx_data,
            data=data,
            min_resource_fee=min_fee,
            auth=auth,
            latest_ledger=latest if type(latest) is int and latest > 0 else None,
        )

    def _not_sent(self, task_id: int, ledger: int) -> None:
        """The simulation shows the call would not write the task: nothing is sent."""
        self._counters.not_sent += 1
        self.totals["not_sent_by_simulation"] += 1
        self._set_backoff(task_id, ledger)
        self._safe(self.reporter.event, "not_sent", {"task_id": task_id, "reason": "no_write"})

    async def _simulate(self, envelope: str) -> dict[str, Any]:
        return expect_dict(
            await self._rpc.call("simulateTransaction", {"transaction": envelope}),
            "simulateTransaction",
        )

    def _sim_failed(self, task_id: int, error: str, ledger: int) -> None:
        self._counters.failed += 1
        self.totals["failed"] += 1
        self._set_backoff(task_id, ledger)
        self._safe(
            self.reporter.event,
            "failed",
            {"task_id": task_id, "reason": "simulation", "error": error[:500]},
        )

    async def _send(self, envelope: str, entry: JournalEntry, acc: SourceAccount) -> bool:
        """True when the transaction may be queued (confirm it); False when it surely is not."""
        delay = 0.2
        for _ in range(64):
            try:
                res = expect_dict(
                    await self._rpc.call("sendTransaction", {"transaction": envelope}),
                    "sendTransaction",
                )
                status = res.get("status")
            except RpcError as exc:
                # unknown whether it reached the queue: confirm until its time bound passes
                self.log.warning("task {} send uncertain ({}); confirming", entry.task_id, exc)
                acc.sequence = entry.sequence
                acc.needs_resync = True
                return True
            if status in ("PENDING", "DUPLICATE"):
                acc.sequence = entry.sequence
                return True
            if status == "TRY_AGAIN_LATER":
                close = _close_time(res, "sendTransaction")
                if close > entry.max_time or self._stopping:
                    self._tx_error(entry, "TRY_AGAIN_LATER until its time bound")
                    return False
                await asyncio.sleep(delay * random.uniform(0.7, 1.3))
                delay = min(delay * 1.5, 1.0)
                continue
            if status == "ERROR":
                code, name = -1, "unknown"
                raw = res.get("errorResultXdr")
                if isinstance(raw, str):
                    with contextlib.suppress(Exception):
                        code, name = chain.result_code(raw)
                if code == TX_BAD_SEQ:
                    acc.needs_resync = True
                self._tx_error(entry, f"rejected: {name}")
                return False
            # an unknown or garbled status: the server may well have queued it (the answer
            # was mangled on the way, or a newer server has a new status). Treat it like an
            # unanswered send: the sequence number counts as used (resynced from the chain
            # before the account's next use, after the confirmation below), the journal
            # entry stays, and getTransaction says what really happened.
            self.totals["send_status_unknown"] += 1
            self._rpc.note_error("sendTransaction")
            self.log.warning(
                "task {} send answered unknown status {!r}; confirming",
                entry.task_id,
                str(status)[:80],
            )
            acc.sequence = entry.sequence
            acc.needs_resync = True
            return True
        self._tx_error(entry, "TRY_AGAIN_LATER too many times")
        return False

    def _tx_error(self, entry: JournalEntry, reason: str) -> None:
        self.journal.remove(entry.hash)
        self._counters.tx_errors += 1
        self.totals["tx_errors"] += 1
        self._safe(
            self.reporter.event,
            "tx_error",
            {"task_id": entry.task_id, "tx_hash": entry.hash, "reason": reason},
        )

    async def _confirm(self, entry: JournalEntry, acc: SourceAccount | None, t0: float) -> None:
        """Poll getTransaction until a final status or the time bound has passed."""
        poll = max(0.05, self.spec.confirm_poll_s)
        while True:
            try:
                res = expect_dict(
                    await self._rpc.call("getTransaction", {"hash": entry.hash}), "getTransaction"
                )
                status = res.get("status")
            except RpcError as exc:
                self.log.debug("getTransaction {}: {}", entry.hash, exc)
                await asyncio.sleep(min(2.0, poll * 4))
                continue
            if status == "SUCCESS":
                fee = 0
                if isinstance(res.get("resultXdr"), str):
                    with contextlib.suppress(Exception):
                        fee = chain.fee_charged(res["resultXdr"])
                self.journal.remove(entry.hash)
                c = self._counters
                c.executed += 1
                c.fees += fee
                c.exec_times.append(time.monotonic() - t0)
                self.totals["executed"] += 1
                self.totals["fees_spent"] += fee
                self._safe(
                    self.reporter.event,
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
            if status == "FAILED":
                fee = 0
                if isinstance(res.get("resultXdr"), str):
                    with contextlib.suppress(Exception):
                        fee = chain.fee_charged(res["resultXdr"])
                self.journal.remove(entry.hash)
                self._counters.failed += 1
                self._counters.fees += fee
                self.totals["failed"] += 1
                self.totals["fees_spent"] += fee
                if self._latest is not None:
                    self._set_backoff(entry.task_id, self._latest.sequence)
                self._safe(
                    self.reporter.event,
                    "failed",
                    {"task_id": entry.task_id, "reason": "tx_failed", "tx_hash": entry.hash},
                )
                return
            if status == "NOT_FOUND":
                close = _close_time(res, "getTransaction")
                if close > entry.max_time:
                    if acc is not None:
                        acc.needs_resync = True  # its sequence number was not consumed
                    self._tx_error(entry, "not applied before its time bound (expired)")
                    return
            await asyncio.sleep(poll)

    def _resolve_journal(self) -> None:
        """Hold the tasks and source accounts of journaled transactions until resolved."""
        entries = self.journal.load()
        if self.journal.corrupt_records:
            self._safe(
                self.reporter.event,
                "journal_corrupt",
                {"records": self.journal.corrupt_records, "path": str(self.journal.path)},
            )
        by_source: dict[str, list[JournalEntry]] = {}
        for entry in entries:
            by_source.setdefault(entry.source, []).append(entry)
            self.in_flight.add(entry.task_id)
        held = set()
        for acc in self.accounts:
            if acc.public_key in by_source:
                held.add(acc.public_key)
                task = asyncio.create_task(self._resolve_source(by_source.pop(acc.public_key), acc))
            else:
                self._pool.put_nowait(acc)
                continue
            self._track_sent(task)
        for leftovers in by_source.values():  # a source no longer configured
            self._track_sent(asyncio.create_task(self._resolve_source(leftovers, None)))
        if entries:
            self.log.info("resolving {} journaled transaction(s) before reuse", len(entries))
            self._safe(
                self.reporter.event,
                "journal_resolving",
                {"count": len(entries), "task_ids": sorted(e.task_id for e in entries)[:50]},
            )

    async def _resolve_source(self, entries: list[JournalEntry], acc: SourceAccount | None) -> None:
        try:
            for entry in sorted(entries, key=lambda e: e.sequence):
                try:
                    await self._confirm(entry, acc, time.monotonic())
                finally:
                    self.in_flight.discard(entry.task_id)
        finally:
            if acc is not None:
                acc.needs_resync = True
                self._pool.put_nowait(acc)

    def _track_sent(self, task: asyncio.Task[None]) -> None:
        self._exec_tasks.add(task)
        self._sent_tasks.add(task)
        task.add_done_callback(self._exec_tasks.discard)
        task.add_done_callback(self._sent_tasks.discard)

    async def _drain(self) -> None:
        """On stop: queued executions and those not yet sent are dropped at once (nothing
        was sent for them; they are due again next time); transactions already sent get up
        to ``stop_grace_s`` to reach a final status, then stay in the journal."""
        self._stopping = True
        queued = len(self._queue)
        self._queue.clear()
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
        sent = set(self._sent_tasks)
        still: set[asyncio.Task[None]] = set()
        if sent:
            _done, still = await asyncio.wait(sent, timeout=max(0.0, self.spec.stop_grace_s))
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=2.0)
        self.totals["dropped_unsent_at_stop"] = dropped
        self.totals["sent_unresolved_at_stop"] = len(still)
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
