"""The events position (and the task state it matches) kept in the state dir across restarts.

A restarted worker within the RPC's retention window resumes from the saved position instead
of re-reading every entry. The position alone is not enough: the per-task state it was taken
with (:meth:`shard_worker.taskstate.TaskState.dump`, ~29 bytes a task) is saved in the same
file, so that the two always match (the state holds every change up to the position). An older
pair is still correct: the events since its position are replayed.

File ``<state_dir>/<shard>.events``: one JSON header line (format, contract, the shard's ids
(:attr:`~shard_worker.spec.WorkerSpec.id_selection`), cursor, ledger, time, payload length and
CRC-32), then the raw state snapshot. Written atomically (temporary
file, fsync, ``os.replace``, fsync of the directory): after a kill the file is the old or the
new one, never torn. Anything unusable (truncated, bad JSON, wrong CRC, another contract, other
ids: a shard whose range or id list changed) means a full re-read with the reason for the log;
a corrupt file is moved aside to ``.corrupt``, never fatal.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from shard_worker.eventsync import Position
from shard_worker.journal import Chunk, write_atomically

__all__ = ["CursorStore", "SavedSync"]

_FORMAT = 1
_MAX_HEADER = 4096


@dataclass(frozen=True, slots=True)
class SavedSync:
    """What a previous run left: its events position, for which contract, when, and the task
    state snapshot matching the position (empty when none was saved)."""

    contract_id: str
    position: Position
    saved_at: float
    state: bytes
    #: the shard's ids it was saved for (None: a file from before they were recorded)
    ids: str | None = None


class CursorStore:
    """The per-shard file ``<state_dir>/<shard>.events``; with ``state_dir`` None nothing is
    kept (every start is a first start). ``ids``: the shard's ids
    (:attr:`~shard_worker.spec.WorkerSpec.id_selection`), saved with the position; a position
    saved for other ids (the shard's range or id list changed: ids it now owns were never
    followed) is not loaded."""

    def __init__(
        self, state_dir: str | os.PathLike[str] | None, shard: str, *, ids: str | None = None
    ) -> None:
        self.ids = ids
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", shard) or "shard"
        self.path: Path | None = None
        if state_dir is not None:
            directory = Path(state_dir)
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / f"{safe}.events"

    # ------------------------------------------------------------------ save

    def save(
        self,
        contract_id: str,
        position: Position,
        state: Chunk | Sequence[Chunk] = b"",
        *,
        now: float | None = None,
    ) -> None:
        """Persist ``position`` (and the matching state snapshot, as bytes or in parts:
        :meth:`~shard_worker.taskstate.TaskState.dump_parts`); durable when this returns."""
        if self.path is None:
            return
        parts = list(state) if isinstance(state, list | tuple) else [state]
        size = crc = 0
        for part in parts:
            size += memoryview(part).nbytes
            crc = zlib.crc32(part, crc)
        header = orjson.dumps(
            {
                "format": _FORMAT,
                "contract_id": contract_id,
                "ids": self.ids,
                "cursor": position.cursor,
                "ledger": position.ledger,
                "saved_at": time.time() if now is None else now,
                "state_bytes": size,
                "state_crc32": crc,
            }
        )
        write_atomically(self.path, [header + b"\n", *parts])

    def clear(self) -> None:
        """Forget the saved position (e.g. the state it matches is known to be wrong)."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    # ------------------------------------------------------------------ load

    def load(self, contract_id: str) -> tuple[SavedSync | None, str | None]:
        """``(saved, None)``, or ``(None, reason)`` when there is nothing usable: the reason
        says why a full re-read is needed. Never raises for a bad file."""
        if self.path is None:
            return None, "no state dir: the events position is not kept across restarts"
        self._remove_leftovers()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, "no saved events position (first start, or the state dir was emptied)"
        except OSError as exc:
            return None, f"saved events position unreadable: {exc}"
        try:
            saved = _parse(data)
        except ValueError as exc:
            aside = self.path.with_suffix(".corrupt")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return None, f"saved events position {self.path} is corrupt ({exc}); moved to {aside}"
        if saved.contract_id != contract_id:
            return None, (
                f"the saved events position is for contract {saved.contract_id}, not {contract_id}"
            )
        if self.ids is not None and saved.ids != self.ids:
            return None, (
                f"the saved events position is for task ids {saved.ids or '(not recorded)'}, "
                f"this shard's are {self.ids}: its range or id list changed"
            )
        return saved, None

    def _remove_leftovers(self) -> None:
        """Temporary files of writes killed before their rename (one worker per shard: any
        left at load time are dead)."""
        assert self.path is not None
        for leftover in self.path.parent.glob(f".{self.path.name}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _parse(data: bytes) -> SavedSync:
    end = data.find(b"\n", 0, _MAX_HEADER)
    if end < 0:
        raise ValueError("no header line")
    try:
        head = orjson.loads(data[:end])
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"header is not JSON: {exc}") from None
    if not isinstance(head, dict) or head.get("format") != _FORMAT:
        raise ValueError("not a format-1 events position file")
    contract_id = head.get("contract_id")
    cursor = head.get("cursor")
    ledger = head.get("ledger")
    saved_at = head.get("saved_at")
    ids = head.get("ids")
    size = head.get("state_bytes")
    crc = head.get("state_crc32")
    if not isinstance(contract_id, str) or not contract_id:
        raise ValueError("no contract id")
    if ids is not None and not isinstance(ids, str):
        raise ValueError("ids is not a string")
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise ValueError("cursor is not a string")
    if type(ledger) is not int or ledger <= 0:
        raise ValueError("ledger is not a positive integer")
    if isinstance(saved_at, bool) or not isinstance(saved_at, (int, float)):
        raise ValueError("saved_at is not a number")
    if type(size) is not int or type(crc) is not int:
        raise ValueError("no state length or checksum")
    state = data[end + 1 :]
    if len(state) != size:
        raise ValueError(f"state has {len(state)} bytes, the header says {size}")
    if zlib.crc32(state) != crc:
        raise ValueError("state checksum mismatch")
    return SavedSync(contract_id, Position(ledger, cursor), float(saved_at), state, ids)
