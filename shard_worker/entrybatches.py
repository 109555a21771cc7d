"""The events read mode's ``getLedgerEntries`` reads: ids in calls of 200 keys, the Counter in
the first call, sweep positions in the room the last one leaves.

:class:`EntryBatches` reads a list of ids into the :class:`~shard_worker.tasktable.TaskTable`
(``max_concurrent_reads`` calls in flight, each at the budget priority it is given). Extra ids
(the sweep's pending positions, at most :func:`spare_room`) ride in the last call: with due
work every ledger the sweep costs no request of its own. Their finds are kept apart (the
sweep's pass), and a failed call's extra ids are only counted: the sweep reads them later.
Each call is announced to :attr:`EntryBatches.shared` and its answer handed over: the
executor's rechecks of the watched keys it carries take it (:mod:`shard_worker.sharedreads`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from shard_worker.errors import RpcError
from shard_worker.ledger import Latest
from shard_worker.reader import MAX_KEYS_PER_CALL, ReadPass
from shard_worker.rpc import RpcClient, expect_dict, expect_list
from shard_worker.rpcbudget import priority
from shard_worker.sharedreads import SharedReads
from shard_worker.tasktable import TaskTable

__all__ = ["BatchResult", "EntryBatches", "spare_room"]


def spare_room(n: int, *, counter: bool) -> int:
    """Keys left in the last call of a read of ``n`` ids (the Counter, when asked, rides in
    the first call; each call holds :data:`~shard_worker.reader.MAX_KEYS_PER_CALL` keys)."""
    if n <= 0:
        return 0
    step = MAX_KEYS_PER_CALL - (1 if counter else 0)
    calls = -(-n // step)
    last = n - step * (calls - 1)
    return MAX_KEYS_PER_CALL - last - (1 if counter and calls == 1 else 0)


class BatchResult:
    """What a read found besides the table's entries: the Counter (when asked and answered),
    the ids of the calls that failed, and whether the extra ids were read."""

    __slots__ = ("counter", "extra_read", "failed")

    def __init__(self) -> None:
        self.counter: int | None = None
        self.failed: list[int] = []
        self.extra_read = True


class EntryBatches:
    """Reads ids into a :class:`TaskTable` (see the module docstring)."""

    def __init__(
        self,
        rpc: RpcClient,
        *,
        counter_key: str,
        concurrency: int,
        report: Callable[[ReadPass, list[int], str], None],
    ) -> None:
        self.rpc = rpc
        self.counter_key = counter_key
        self.concurrency = max(1, concurrency)
        #: reports a failed call (pass, ids, error)
        self.report = report
        #: the keys of prepared executions: they ride in each call, their rechecks take it
        self.shared = SharedReads()

    async def read(
        self,
        table: TaskTable,
        ids: Sequence[int],
        latest: Latest,
        rp: ReadPass,
        level: int,
        *,
        counter: bool = False,
        extra: Sequence[int] = (),
        extra_rp: ReadPass | None = None,
    ) -> BatchResult:
        """Read ``ids`` (and the Counter, and ``extra`` into ``extra_rp``) into ``table``."""
        out = BatchResult()
        key_b64 = table.task_keys.key_b64
        more_rp = extra_rp if extra_rp is not None else ReadPass()

        async def batch(chunk: Sequence[int], with_counter: bool, more: Sequence[int]) -> None:
            # the keys are built only when the call is made: a full re-read of 125k ids
            # built every call's keys up front (about 20 MB of strings at once)
            keys = [key_b64(i) for i in chunk]
            more_keys = [key_b64(i) for i in more]
            keys.extend(more_keys)
            if with_counter:
                keys.append(self.counter_key)
            shared = self.shared.reading(latest.sequence, keys)
            try:
                with priority(level):
                    result = await self.rpc.call("getLedgerEntries", {"keys": keys})
                del keys
                entries = expect_list(
                    expect_dict(result, "getLedgerEntries").get("entries") or [],
                    "getLedgerEntries",
                    "entries",
                )
            except RpcError as exc:
                SharedReads.failed(shared)
                self.report(rp, list(chunk), str(exc))
                table.failed(chunk, rp)
                out.failed.extend(chunk)
                if more:
                    out.extra_read = False
                    more_rp.read_errors += len(more)
                return
            except BaseException:  # a stop, or a bug: the rechecks waiting read on their own
                SharedReads.failed(shared)
                raise
            SharedReads.answered(shared, entries)
            if more:
                riding = set(more_keys)
                mine: list[Any] = []
                rest: list[Any] = []
                for e in entries:
                    (mine if isinstance(e, dict) and e.get("key") in riding else rest).append(e)
                entries = rest
                table.apply(mine, more, latest, more_rp)
            found = table.apply(entries, chunk, latest, rp)
            if found is not None:
                out.counter = found

        step = MAX_KEYS_PER_CALL - (1 if counter else 0)
        chunks = [ids[i : i + step] for i in range(0, len(ids), step)]
        last = len(chunks) - 1
        todo = iter(range(len(chunks)))

        async def runner() -> None:
            # ``concurrency`` calls in flight, the calls made in order; one coroutine per
            # call in flight, not per call (a full re-read is 625 calls at 125k ids)
            for n in todo:
                await batch(chunks[n], counter and n == 0, extra if n == last else ())

        await asyncio.gather(*(runner() for _ in range(min(self.concurrency, len(chunks)))))
        return out
