"""Crash-safe in-flight journal: which transactions a shard has (maybe) submitted.

Before ``sendTransaction`` the keeper records ``{hash, task_id, source, sequence, max_time,
envelope}`` and removes the record once the transaction reached a final status (SUCCESS,
FAILED, rejected, or its time bound passed without it being applied).

The file is a snapshot line (``{"version": 1, "entries": [...]}``, written atomically:
temporary file, fsync, ``os.replace``, fsync of the directory) followed by change lines, one
JSON object each, appended: ``{"add": {...}}`` (then ``fdatasync``: durable before the send)
and ``{"remove": "<hash>"}`` (not synced: a remove lost to a power cut only leaves a record
that the next start resolves with ``getTransaction``, as it would an unfinished one). After
:data:`COMPACT_AFTER` change lines the next change writes a new snapshot instead. A kill
leaves whole lines (a ``write`` of one line is never half done by a signal); a last line torn
by a power cut belongs to an add whose sync never returned, so its transaction was never sent:
it is dropped. Appending replaced two atomic rewrites an execution (four fsyncs, two renames:
at 1M tasks about a seventh of the workers' CPU, most of it in the kernel).

A restarted worker loads the journal first and resolves each hash with ``getTransaction``
(waiting until the recorded ``max_time`` has passed if the transaction is still unknown)
before it submits anything for those tasks or from those source accounts.
"""

from __future__ import annotations

import contextlib
import os
import re
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from loguru import logger

__all__ = ["Chunk", "Journal", "JournalEntry", "write_atomically"]

#: bytes-like data a file is written from as it is (a task state's arrays: no copy)
Chunk = bytes | bytearray | memoryview | array

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_VERSION = 1
#: change lines appended after a snapshot before the next change writes a new snapshot
COMPACT_AFTER = 200
#: the data of an appended line on disk (where there is no fdatasync: fsync)
_datasync = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    hash: str
    task_id: int
    source: str
    sequence: int
    max_time: int
    #: unix time (local clock) the record was written; informative only
    recorded_at: float = 0.0
    #: the signed envelope (base64): a restarted worker resends it to learn its fate at once
    #: (DUPLICATE / PENDING / applied) instead of waiting for its time bound
    envelope: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _entry_from(obj: object) -> JournalEntry | None:
    if not isinstance(obj, dict):
        return None
    try:
        entry = JournalEntry(
            hash=str(obj["hash"]).lower(),
            task_id=int(obj["task_id"]),
            source=str(obj["source"]),
            sequence=int(obj["sequence"]),
            max_time=int(obj["max_time"]),
            recorded_at=float(obj.get("recorded_at", 0.0)),
            envelope=str(obj.get("envelope", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if not _HASH_RE.match(entry.hash) or entry.task_id < 0:
        return None
    return entry


class Journal:
    """The per-shard journal file ``<state_dir>/<shard>.inflight.json``.

    With ``state_dir`` None the journal lives only in memory (no crash safety).
    """

    def __init__(self, state_dir: str | os.PathLike[str] | None, shard: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", shard) or "shard"
        self.path: Path | None = None
        if state_dir is not None:
            directory = Path(state_dir)
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / f"{safe}.inflight.json"
        self._entries: dict[str, JournalEntry] = {}
        #: records found unreadable while loading (kept out; reported by the caller)
        self.corrupt_records = 0
        #: the file open for appending change lines (None: the next change writes a snapshot)
        self._fd: int | None = None
        #: change lines appended since the snapshot
        self._lines = 0

    def load(self) -> list[JournalEntry]:
        """Read the file (if any). A corrupt file is set aside, never fatal."""
        self._entries = {}
        self.corrupt_records = 0
        self.close()  # the next change writes a snapshot of what is loaded
        if self.path is None or not self.path.exists():
            return []
        try:
            data = self.path.read_bytes()
            head, _, changes = data.partition(b"\n")
            snapshot = orjson.loads(head)
        except (OSError, orjson.JSONDecodeError) as exc:
            aside = self.path.with_suffix(".corrupt")
            logger.warning(
                "in-flight journal {} unreadable ({}); moved to {}", self.path, exc, aside
            )
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            self.corrupt_records = 1
            return []
        records = snapshot.get("entries", []) if isinstance(snapshot, dict) else []
        if not isinstance(records, list):
            records = []
        for rec in records:
            self._take(_entry_from(rec))
        lines = changes.split(b"\n")
        torn = lines.pop()  # b"" after a whole last line; else a line a power cut tore
        for line in lines:
            self._replay(line)
        if torn:  # an add whose sync never returned: its transaction was never sent
            logger.info("in-flight journal {}: a torn last line dropped", self.path)
        return list(self._entries.values())

    def _take(self, entry: JournalEntry | None) -> None:
        if entry is None:
            self.corrupt_records += 1
        else:
            self._entries[entry.hash] = entry

    def _replay(self, line: bytes) -> None:
        """One change line of the file."""
        try:
            change = orjson.loads(line)
        except orjson.JSONDecodeError:
            change = None
        if isinstance(change, dict) and "add" in change:
            self._take(_entry_from(change["add"]))
        elif isinstance(change, dict) and isinstance(change.get("remove"), str):
            self._entries.pop(change["remove"], None)
        else:
            self.corrupt_records += 1

    def entries(self) -> list[JournalEntry]:
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_hash: str) -> bool:
        return tx_hash in self._entries

    def add(self, entry: JournalEntry) -> None:
        """Record a transaction about to be sent; durable when this returns."""
        self._entries[entry.hash] = entry
        # orjson writes the dataclass itself (asdict's deep copies cost 8x as much)
        self._change(b'{"add":' + orjson.dumps(entry) + b"}\n", sync=True)

    def remove(self, tx_hash: str) -> None:
        """Forget a transaction that reached its final status (written, not synced)."""
        if self._entries.pop(tx_hash, None) is not None:
            self._change(b'{"remove":' + orjson.dumps(tx_hash) + b"}\n", sync=False)

    def close(self) -> None:
        """Close the file (the next change writes a snapshot)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _change(self, line: bytes, *, sync: bool) -> None:
        """Append one change line (a snapshot instead when none is open or enough lines
        were appended since); ``sync``: durable when this returns."""
        if self.path is None:
            return
        fd = self._fd
        if fd is None or self._lines >= COMPACT_AFTER:
            self._snapshot()
            return
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                _datasync(fd)
        except OSError:
            self.close()  # (maybe a part of the line written: the next change rewrites all)
            raise
        self._lines += 1

    def _snapshot(self) -> None:
        """Rewrite the file as one snapshot line (atomically, durably) and open it for
        appending."""
        assert self.path is not None
        self.close()
        payload = orjson.dumps({"version": _VERSION, "entries": list(self._entries.values())})
        write_atomically(self.path, payload + b"\n")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._lines = 0


def write_atomically(path: Path, payload: Chunk | Sequence[Chunk]) -> None:
    """Replace ``path`` with ``payload`` (bytes, or parts written one after the other) so
    that a crash leaves the old file or the new one, never a part: a temporary file beside
    it, fsync, rename, then fsync of the directory. The temporary file's name is fixed
    (``.<name>.tmp``: one writer a file, a shard's one worker; a crash's leftover is
    truncated by the next write): ``tempfile.mkstemp``'s random names were a third of a
    write's CPU."""
    directory = path.parent
    tmp = directory / f".{path.name}.tmp"
    parts = payload if isinstance(payload, list | tuple) else (payload,)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            for part in parts:
                view = memoryview(part).cast("B")
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)
