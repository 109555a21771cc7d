"""Each task's recorded authorization, kept for its next execution from a channel account
(:class:`AuthCache`), in memory and in the state dir.

A channel account's execution of a task needs the keeper's authorization entry: recorded by a
first simulation, signed, then simulated again so the resources include the signature check.
A repeat execution signs the recorded entry again with a fresh nonce and simulates once
(:mod:`shard_worker.executor`). The recorded entries are also appended to
``<state_dir>/<shard>.auth``, so a restarted worker's executions need one simulation too, not
two (a worker restarted under issue 16's mix recorded every task again for a whole interval:
a round trip more an execution, 2.4-2.5 simulations an execution with kills against 2.0
without). A cache only: an entry that no longer fits is refused by the simulation and
recorded again; an unreadable file or line is ignored; nothing is fsynced.

The file: a header line (the version, the contract and the keeper the entries authorize: a
file for others is ignored), then one line per recording (``{"t": id, "a": [base64...]}``) or
dropped entry (``{"t": id}``); rewritten with only the kept entries when it grows past a few
times the cache's size.
"""

from __future__ import annotations

import base64
import collections
import os
import re
from pathlib import Path
from typing import Any

import orjson

from shard_worker.journal import write_atomically

__all__ = ["AUTH_CACHE_SIZE", "AuthCache"]

#: tasks whose recorded authorization is kept (the most recent)
AUTH_CACHE_SIZE = 4096
_VERSION = 1
#: the file is rewritten when its lines outnumber the cache's size this many times
_COMPACT_FACTOR = 4


class AuthCache:
    """Task id -> its recorded (unsigned) authorization entries, the most recent ``size``."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None,
        shard: str,
        *,
        owner: str,
        size: int = AUTH_CACHE_SIZE,
    ) -> None:
        self.size = size
        self._header = orjson.dumps({"v": _VERSION, "owner": owner}) + b"\n"
        self._entries: collections.OrderedDict[int, list[bytes]] = collections.OrderedDict()
        self.path: Path | None = None
        self._lines = 0
        if state_dir is not None:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", shard) or "shard"
            directory = Path(state_dir)
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / f"{safe}.auth"
            self._load()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, task_id: int) -> list[bytes] | None:
        return self._entries.get(task_id)

    def put(self, task_id: int, auth: list[bytes]) -> None:
        """Keep ``task_id``'s recorded entries (the most recent first to stay)."""
        self._keep(task_id, auth)
        self._append({"t": task_id, "a": [base64.b64encode(a).decode() for a in auth]})

    def drop(self, task_id: int) -> None:
        """Forget ``task_id``'s entries (a reuse was refused)."""
        if self._entries.pop(task_id, None) is not None:
            self._append({"t": task_id})

    # ------------------------------------------------------------------ the file

    def _keep(self, task_id: int, auth: list[bytes]) -> None:
        self._entries[task_id] = auth
        self._entries.move_to_end(task_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def _load(self) -> None:
        assert self.path is not None
        try:
            lines = self.path.read_bytes().split(b"\n")
        except OSError:
            lines = []
        if not lines or lines[0] + b"\n" != self._header:
            self._compact()  # none yet, another version, contract or keeper: start empty
            return
        for line in lines[1:]:
            if not line:
                continue
            try:
                rec = orjson.loads(line)
                task_id = int(rec["t"])
                if "a" in rec:
                    self._keep(task_id, [base64.b64decode(a) for a in rec["a"]])
                else:
                    self._entries.pop(task_id, None)
            except (ValueError, KeyError, TypeError):
                break  # a torn last line (a kill while appending): what came before stays
            self._lines += 1
        if self._lines > 2 * len(self._entries) + 16:
            self._compact()

    def _append(self, rec: dict[str, Any]) -> None:
        if self.path is None:
            return
        self._lines += 1
        if self._lines > _COMPACT_FACTOR * self.size:
            self._compact()
            return
        try:
            with self.path.open("ab") as fh:
                fh.write(orjson.dumps(rec) + b"\n")
        except OSError:
            pass  # a cache: the next recording tries again

    def _compact(self) -> None:
        """Rewrite the file with the kept entries only (and the header: a file started)."""
        if self.path is None:
            return
        body = b"".join(
            orjson.dumps({"t": t, "a": [base64.b64encode(a).decode() for a in auth]}) + b"\n"
            for t, auth in self._entries.items()
        )
        try:
            write_atomically(self.path, self._header + body)
        except OSError:
            return
        self._lines = len(self._entries)
