"""Compact per-task state for event-driven sync: what the keeper remembers between reads.

One worker may own 250k tasks; a Python object per task (a ``TaskInfo``, a dict entry, a cached
hash) costs about 0.8 KB, so this keeps each field in its own typed ``array`` indexed by
``task_id - first`` instead (29 bytes a task):

============  ======  ==========================================================================
field         type    meaning
============  ======  ==========================================================================
due           u64     ``last_run + interval`` wrapped to 64 bits, as the contract's release build
                      computes it (no overflow checks): a task is due when ``now >= due``
interval      u64     the task's interval (never changes after register): lets the keeper move
                      ``due`` after its own execution without a re-read
entry hash    i64     a stable 64-bit hash of the entry's base64 XDR (change detection; the same
                      in every process, so a saved snapshot stays valid across restarts)
live until    u32     ``liveUntilLedgerSeq`` of the entry (0 when reported archived, u32 max when
                      the answer had none)
flags         u8      :data:`KNOWN`, :data:`GAS`, :data:`ALLOWED`, :data:`RESOLVER`,
                      :data:`MISSING`, :data:`READ_ERROR`
============  ======  ==========================================================================

The cached due time is never later than the real one: nothing but ``execute`` changes
``last_run`` and it only moves it forward. Whitelist, resolver and interval never change after
register; the gas flag changes only through the deposit and withdraw events.

A snapshot (:meth:`TaskState.dump` / :meth:`TaskState.load`) is the raw arrays behind a small
header; :mod:`shard_worker.cursorstore` keeps it with the events cursor it matches.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from collections.abc import Iterator
from typing import Protocol

from sorotask_core.xdr import U64_MASK, add_u64

__all__ = [
    "ALLOWED",
    "GAS",
    "KNOWN",
    "MISSING",
    "READ_ERROR",
    "RESOLVER",
    "U64_MASK",
    "DecodedTask",
    "TaskState",
    "due_time",
    "entry_hash",
]

_U32_MAX = 0xFFFF_FFFF

#: an entry was read and decoded: the other fields are valid
KNOWN = 1
#: ``gas_balance > 0``
GAS = 2
#: the whitelist is empty or holds this keeper
ALLOWED = 4
#: a resolver is set
RESOLVER = 8
#: the last read found no entry for the id
MISSING = 16
#: the last read returned an entry that could not be decoded
READ_ERROR = 32

_MAGIC = b"STS1"
#: magic, byte order (0 little, 1 big), first id, task count
_HEADER = struct.Struct("<4sBxxxQQ")
#: (array typecode, item size) of each field, in snapshot order
_FIELDS = (("Q", 8), ("Q", 8), ("q", 8), ("I", 4), ("B", 1))


class DecodedTask(Protocol):
    """The decoded fields the state is filled from (``sorotask_core.contract.TaskInfo``)."""

    interval: int
    last_run: int
    gas_balance: int
    whitelist: tuple[bytes, ...]
    has_resolver: bool


def due_time(last_run: int, interval: int) -> int:
    """``last_run + interval`` as the contract computes it: u64 addition that wraps (the
    same :func:`sorotask_core.xdr.add_u64` as ``TaskInfo.next_run``, the ledger-entries
    path's due time)."""
    return add_u64(last_run, interval)


def entry_hash(entry_xdr_b64: str) -> int:
    """A stable signed 64-bit hash of an entry's base64 XDR (blake2b; about 1 us a call).

    Python's ``hash`` of a str is salted per process, so a saved snapshot would see every
    entry as changed after a restart; this one is the same everywhere."""
    digest = hashlib.blake2b(entry_xdr_b64.encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _live_value(live_until: int | None) -> int:
    """``None`` (the answer had no liveUntilLedgerSeq) counts as live, as the keeper's
    ledger-entries read does; anything outside u32 as archived."""
    if live_until is None:
        return _U32_MAX
    return live_until if 0 <= live_until <= _U32_MAX else 0


def _zeros(typecode: str, itemsize: int, n: int) -> array:
    return array(typecode, bytes(itemsize * n))


class TaskState:
    """Per-task state for the ids ``first .. first + len - 1`` (grown by :meth:`ensure`).

    Every accessor takes a task id; an id outside the covered range raises ``IndexError``
    (``KeyError`` would hide the arithmetic; negative slots are refused explicitly).
    """

    __slots__ = ("_due", "_flags", "_hash", "_interval", "_live", "first")

    def __init__(self, first: int, count: int = 0) -> None:
        if first < 0 or count < 0:
            raise ValueError("first and count must be >= 0")
        self.first = first
        self._due = _zeros("Q", 8, count)
        self._interval = _zeros("Q", 8, count)
        self._hash = _zeros("q", 8, count)
        self._live = _zeros("I", 4, count)
        self._flags = _zeros("B", 1, count)

    # ------------------------------------------------------------------ size

    def __len__(self) -> int:
        return len(self._flags)

    @property
    def last(self) -> int:
        """The highest covered id (``first - 1`` when empty)."""
        return self.first + len(self._flags) - 1

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, int) and 0 <= task_id - self.first < len(self._flags)

    def ensure(self, last_id: int) -> int:
        """Cover the ids up to ``last_id`` (new ids start unknown); returns how many were
        added. The arrays grow by exactly what is needed (no over-allocation)."""
        add = last_id - self.last
        if add <= 0:
            return 0
        self._due.frombytes(bytes(8 * add))
        self._interval.frombytes(bytes(8 * add))
        self._hash.frombytes(bytes(8 * add))
        self._live.frombytes(bytes(4 * add))
        self._flags.frombytes(bytes(add))
        return add

    def nbytes(self) -> int:
        """Bytes held by the arrays' items (what a task costs: 29 bytes)."""
        return sum(a.itemsize * len(a) for a in self._arrays())

    def _arrays(self) -> tuple[array, ...]:
        return (self._due, self._interval, self._hash, self._live, self._flags)

    def _slot(self, task_id: int) -> int:
        slot = task_id - self.first
        if slot < 0:
            raise IndexError(f"task {task_id} is below this state's first id {self.first}")
        return slot

    # ------------------------------------------------------------------ updates

    def record(
        self,
        task_id: int,
        *,
        interval: int,
        last_run: int,
        gas_positive: bool,
        allowed: bool,
        has_resolver: bool,
        live_until: int | None,
        entry_hash: int,
    ) -> int:
        """Store a freshly read and decoded entry; returns its due time."""
        slot = self._slot(task_id)
        if not 0 <= interval <= U64_MASK or not 0 <= last_run <= U64_MASK:
            raise ValueError("interval and last_run are u64")
        due = due_time(last_run, interval)
        self._due[slot] = due
        self._interval[slot] = interval
        self._hash[slot] = entry_hash
        self._live[slot] = _live_value(live_until)
        self._flags[slot] = (
            KNOWN
            | (GAS if gas_positive else 0)
            | (ALLOWED if allowed else 0)
            | (RESOLVER if has_resolver else 0)
        )
        return due

    def record_info(
        self,
        task_id: int,
        info: DecodedTask,
        keeper_address: bytes,
        *,
        live_until: int | None,
        entry_hash: int,
    ) -> int:
        """:meth:`record` from a decoded ``TaskInfo``; ``keeper_address`` is this keeper's raw
        ``SCAddress`` XDR (the whitelist holds raw addresses too)."""
        return self.record(
            task_id,
            interval=info.interval,
            last_run=info.last_run,
            gas_positive=info.gas_balance > 0,
            allowed=not info.whitelist or keeper_address in info.whitelist,
            has_resolver=info.has_resolver,
            live_until=live_until,
            entry_hash=entry_hash,
        )

    def record_missing(self, task_id: int) -> None:
        """The id was read and has no entry (not registered yet, or gone)."""
        slot = self._slot(task_id)
        self._flags[slot] = MISSING
        self._hash[slot] = 0
        self._live[slot] = 0

    def record_error(self, task_id: int) -> None:
        """The entry could not be decoded: forget what was known so it is never acted on."""
        slot = self._slot(task_id)
        self._flags[slot] = READ_ERROR
        self._hash[slot] = 0

    def set_live_until(self, task_id: int, live_until: int) -> None:
        """An unchanged entry's TTL may still move (extension emits no event)."""
        self._live[self._slot(task_id)] = _live_value(live_until)

    def executed(self, task_id: int, close_time: int) -> int:
        """Our own execution applied in a ledger closing at ``close_time`` (the contract sets
        ``last_run`` to it); returns the new due time. The entry hash is cleared: the entry
        changed, the next read decodes it again."""
        slot = self._slot(task_id)
        if not self._flags[slot] & KNOWN:
            raise ValueError(f"task {task_id} is not known")
        due = due_time(close_time, self._interval[slot])
        self._due[slot] = due
        self._hash[slot] = 0
        return due

    def set_gas(self, task_id: int, positive: bool) -> None:
        slot = self._slot(task_id)
        f = self._flags[slot]
        self._flags[slot] = (f | GAS) if positive else (f & ~GAS)

    # ------------------------------------------------------------------ reads

    def flags(self, task_id: int) -> int:
        return self._flags[self._slot(task_id)]

    def known(self, task_id: int) -> bool:
        return bool(self._flags[self._slot(task_id)] & KNOWN)

    def due(self, task_id: int) -> int:
        """The cached due time (meaningful only for a known task)."""
        return self._due[self._slot(task_id)]

    def interval(self, task_id: int) -> int:
        return self._interval[self._slot(task_id)]

    def live_until(self, task_id: int) -> int:
        return self._live[self._slot(task_id)]

    def same_entry(self, task_id: int, entry_hash: int) -> bool:
        """True when the task is known and its entry hashes to ``entry_hash``: no decode
        needed (a 64-bit collision is the only way to miss a change)."""
        slot = self._slot(task_id)
        return bool(self._flags[slot] & KNOWN) and self._hash[slot] == entry_hash

    def indexable(self, task_id: int) -> bool:
        """Worth a place in the due index: known, with gas, and this keeper may execute it.
        (A task without gas comes back through a GasDeposited event; the whitelist never
        changes.)"""
        f = self._flags[self._slot(task_id)]
        return f & (KNOWN | GAS | ALLOWED) == KNOWN | GAS | ALLOWED

    def skip_reason(
        self, task_id: int, ledger_time: int, ledger_seq: int, *, execute_archived: bool = False
    ) -> str | None:
        """None when the cached state says the task is due for this keeper at ``ledger_time``
        in ledger ``ledger_seq``; else the reason, in the order ``due.skip_reason`` checks
        (``no_gas``, ``not_due``, ``not_whitelisted``), then ``archived``; ``missing`` and
        ``read_error`` for ids without a decoded entry."""
        slot = self._slot(task_id)
        f = self._flags[slot]
        if not f & KNOWN:
            return "read_error" if f & READ_ERROR else "missing"
        if not f & GAS:
            return "no_gas"
        if ledger_time < self._due[slot]:
            return "not_due"
        if not f & ALLOWED:
            return "not_whitelisted"
        if not execute_archived and self._live[slot] < ledger_seq:
            return "archived"
        return None

    def ids_with(self, mask: int, value: int | None = None) -> Iterator[int]:
        """Ids whose ``flags & mask == value`` (``value`` defaults to ``mask``)."""
        want = mask if value is None else value
        first = self.first
        for slot, f in enumerate(self._flags):
            if f & mask == want:
                yield first + slot

    # ------------------------------------------------------------------ snapshot

    def dump(self) -> bytes:
        """The state as bytes: a 24-byte header, then each field's raw array."""
        return b"".join(self.dump_parts())

    def dump_parts(self) -> list[bytes | array]:
        """:meth:`dump`'s bytes in parts, the arrays themselves (no copy: written out and
        checksummed as they are; 3.6 MB at 125k tasks, and every copy of that size was new
        memory to fault in). Not valid past a change of the state."""
        order = 0 if sys.byteorder == "little" else 1
        return [_HEADER.pack(_MAGIC, order, self.first, len(self)), *self._arrays()]

    @classmethod
    def load(cls, data: bytes) -> TaskState:
        """A state back from :meth:`dump`; ``ValueError`` for anything else."""
        if len(data) < _HEADER.size:
            raise ValueError("task state snapshot is truncated (no header)")
        magic, order, first, count = _HEADER.unpack_from(data, 0)
        if magic != _MAGIC or order not in (0, 1):
            raise ValueError("not a task state snapshot")
        need = _HEADER.size + count * sum(size for _, size in _FIELDS)
        if len(data) != need:
            raise ValueError(f"task state snapshot has {len(data)} bytes, expected {need}")
        state = cls(first)
        off = _HEADER.size
        swap = order != (0 if sys.byteorder == "little" else 1)
        arrays: list[array] = []
        for typecode, size in _FIELDS:
            a = array(typecode)
            a.frombytes(data[off : off + size * count])
            if swap:
                a.byteswap()
            arrays.append(a)
            off += size * count
        state._due, state._interval, state._hash, state._live, state._flags = arrays
        for f in state._flags:
            if f & ~(KNOWN | GAS | ALLOWED | RESOLVER | MISSING | READ_ERROR):
                raise ValueError("task state snapshot holds unknown flags")
        return state
