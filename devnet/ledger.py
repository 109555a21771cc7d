"""Ledger state: sequence and close time, the entry store, and closed-ledger history.

Entries are kept as base64 XDR strings keyed by the base64 of their ``LedgerKey``: canonical
XDR is unique, so a getLedgerEntries key is answered with one dict lookup and no decoding.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from stellar_sdk import xdr as sx

from devnet import xdrfast

PROTOCOL_VERSION = 23
BASE_FEE = 100
BASE_RESERVE = 5_000_000
#: persistent entries written by the devnet live this many ledgers (about 4 months at 5 s)
DEFAULT_TTL_LEDGERS = 2_000_000
#: ledgers of history kept (getHealth's ledgerRetentionWindow): one hour of 5 s ledgers, far
#: below stellar-rpc's 120,960 (v28 default) or 17,280 (older default, some providers) so tests
#: can outlive it; ``sorotask devnet --retention-ledgers`` changes it
RETENTION_LEDGERS = 720
FIRST_LEDGER = 1000

_U32 = struct.Struct(">I")


class Entry:
    """One ledger entry: ``LedgerEntryData`` as base64 plus its bookkeeping."""

    __slots__ = ("data_b64", "last_modified", "live_until")

    def __init__(self, data_b64: str, last_modified: int, live_until: int | None) -> None:
        self.data_b64 = data_b64
        self.last_modified = last_modified
        self.live_until = live_until

    def data(self) -> bytes:
        return base64.b64decode(self.data_b64)


@dataclass(slots=True)
class LedgerInfo:
    sequence: int
    close_time: int
    hash_hex: str
    header_b64: str
    meta_b64: str


class LedgerState:
    """The ledger: closed-ledger headers, entries and their TTLs."""

    def __init__(
        self,
        ledger_seconds: int,
        start_time: int | None = None,
        *,
        retention: int = RETENTION_LEDGERS,
        max_lag: int = 0,
    ) -> None:
        self.ledger_seconds = ledger_seconds
        self.entries: dict[str, Entry] = {}
        self.history: OrderedDict[int, LedgerInfo] = OrderedDict()
        self.retention = retention
        #: how many ledgers back entries can be read (:meth:`entry_at`); 0 keeps no undo log
        self.max_lag = max_lag
        #: (ledger of the change, key, the entry before it or None) for the last max_lag ledgers
        self._undo: deque[tuple[int, str, Entry | None]] = deque()
        self._undo_by_key: dict[str, list[tuple[int, Entry | None]]] = {}
        start = int(time.time()) if start_time is None else start_time
        self._prev_hash = b"\x00" * 32
        self.latest = self._make_ledger(FIRST_LEDGER, start)
        self.history[FIRST_LEDGER] = self.latest

    # ledgers -----------------------------------------------------------------------------
    @property
    def sequence(self) -> int:
        return self.latest.sequence

    @property
    def close_time(self) -> int:
        return self.latest.close_time

    @property
    def oldest(self) -> LedgerInfo:
        return next(iter(self.history.values()))

    def next_ledger(self) -> tuple[int, int]:
        """Sequence and close time of the ledger that will close next."""
        return self.sequence + 1, self.close_time + self.ledger_seconds

    def close(self) -> LedgerInfo:
        seq, close_time = self.next_ledger()
        info = self._make_ledger(seq, close_time)
        self.latest = info
        self.history[seq] = info
        while len(self.history) > self.retention:
            self.history.popitem(last=False)
        self._prune_undo()
        return info

    def _make_ledger(self, seq: int, close_time: int) -> LedgerInfo:
        header = sx.LedgerHeader(
            ledger_version=sx.Uint32(PROTOCOL_VERSION),
            previous_ledger_hash=sx.Hash(self._prev_hash),
            scp_value=sx.StellarValue(
                tx_set_hash=sx.Hash(hashlib.sha256(b"txset" + _U32.pack(seq)).digest()),
                close_time=sx.TimePoint(sx.Uint64(close_time)),
                upgrades=[],
                ext=sx.StellarValueExt(v=sx.StellarValueType.STELLAR_VALUE_BASIC),
            ),
            tx_set_result_hash=sx.Hash(b"\x00" * 32),
            bucket_list_hash=sx.Hash(hashlib.sha256(b"bucket" + _U32.pack(seq)).digest()),
            ledger_seq=sx.Uint32(seq),
            total_coins=sx.Int64(1_000_000_000_000_000_000),
            fee_pool=sx.Int64(0),
            inflation_seq=sx.Uint32(0),
            id_pool=sx.Uint64(0),
            base_fee=sx.Uint32(BASE_FEE),
            base_reserve=sx.Uint32(BASE_RESERVE),
            max_tx_set_size=sx.Uint32(1000),
            skip_list=[sx.Hash(b"\x00" * 32)] * 4,
            ext=sx.LedgerHeaderExt(v=0),
        )
        raw = header.to_xdr_bytes()
        digest = hashlib.sha256(raw).digest()
        prev = self._prev_hash
        self._prev_hash = digest
        meta = sx.LedgerCloseMeta(
            v=2,
            v2=sx.LedgerCloseMetaV2(
                ext=sx.LedgerCloseMetaExt(v=0),
                ledger_header=sx.LedgerHeaderHistoryEntry(
                    hash=sx.Hash(digest),
                    header=header,
                    ext=sx.LedgerHeaderHistoryEntryExt(v=0),
                ),
                tx_set=sx.GeneralizedTransactionSet(
                    v=1,
                    v1_tx_set=sx.TransactionSetV1(
                        previous_ledger_hash=sx.Hash(prev),
                        phases=[
                            sx.TransactionPhase(v=0, v0_components=[]),
                            sx.TransactionPhase(v=0, v0_components=[]),
                        ],
                    ),
                ),
                tx_processing=[],
                upgrades_processing=[],
                scp_info=[],
                total_byte_size_of_live_soroban_state=sx.Uint64(0),
                evicted_keys=[],
            ),
        )
        return LedgerInfo(
            seq, close_time, digest.hex(), base64.b64encode(raw).decode(), meta.to_xdr()
        )

    # entries -----------------------------------------------------------------------------
    def get(self, key_b64: str) -> Entry | None:
        return self.entries.get(key_b64)

    def put(
        self,
        key_b64: str,
        data_b64: str,
        *,
        ledger: int | None = None,
        live_until: int | None = None,
        soroban: bool = True,
    ) -> Entry:
        """Create or update an entry. A new Soroban entry gets the default TTL; an update keeps
        the entry's TTL unless ``live_until`` is given."""
        seq = self.sequence if ledger is None else ledger
        old = self.entries.get(key_b64)
        if self.max_lag:
            self._record(key_b64, old)
        if old is not None:
            old.data_b64 = data_b64
            old.last_modified = seq
            if live_until is not None:
                old.live_until = live_until
            return old
        if live_until is None and soroban:
            live_until = seq + DEFAULT_TTL_LEDGERS
        entry = Entry(data_b64, seq, live_until)
        self.entries[key_b64] = entry
        return entry

    def delete(self, key_b64: str) -> None:
        old = self.entries.pop(key_b64, None)
        if self.max_lag and old is not None:
            self._record(key_b64, old)

    def set_live_until(self, key_b64: str, live_until: int) -> None:
        """Change an existing entry's TTL (``devnet_expireEntries``)."""
        entry = self.entries[key_b64]
        if self.max_lag:
            self._record(key_b64, entry)
        entry.live_until = live_until

    # history of entries (lagging replicas) -------------------------------------------------
    def _record(self, key_b64: str, old: Entry | None) -> None:
        """Remember ``old`` as the value before a change that shows in the next ledger."""
        snapshot = None if old is None else Entry(old.data_b64, old.last_modified, old.live_until)
        seq = self.sequence + 1
        self._undo.append((seq, key_b64, snapshot))
        self._undo_by_key.setdefault(key_b64, []).append((seq, snapshot))

    def _prune_undo(self) -> None:
        horizon = self.sequence - self.max_lag
        undo = self._undo
        while undo and undo[0][0] <= horizon:
            _seq, key, _old = undo.popleft()
            changes = self._undo_by_key[key]
            del changes[0]
            if not changes:
                del self._undo_by_key[key]

    def entry_at(self, key_b64: str, seq: int) -> Entry | None:
        """The entry as it was when ledger ``seq`` closed (``seq`` at most ``max_lag`` ledgers
        back; entries written by control methods outside ledger closes, e.g. seeded tasks,
        have no history and show their current value)."""
        for changed_in, old in self._undo_by_key.get(key_b64, ()):
            if changed_in > seq:
                return old
        return self.entries.get(key_b64)


def ledger_entry_b64(entry: Entry) -> str:
    """Full ``LedgerEntry`` base64 (used by stateChanges)."""
    return xdrfast.b64(xdrfast.ledger_entry(entry.last_modified, entry.data()))
