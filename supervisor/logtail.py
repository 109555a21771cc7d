"""``sorotask logs``: tail one shard's log file, following it across size rotation."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import orjson


def last_lines(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of ``path`` (reads backwards in blocks, fine for big files)."""
    if n <= 0:
        return []
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        block = 64 * 1024
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    return lines[-n:]


def pretty(line: str) -> str:
    """A loguru JSON line (``serialize=True``) shown as its text; other lines unchanged."""
    if line.startswith("{"):
        try:
            obj = orjson.loads(line)
            text = obj.get("text")
            if isinstance(text, str):
                return text.rstrip("\n")
        except (orjson.JSONDecodeError, AttributeError):
            pass
    return line


def follow(
    path: Path,
    *,
    start_at_end: bool = True,
    poll_s: float = 0.2,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[str]:
    """Yield lines appended to ``path``; when it is rotated (renamed or truncated), finish the
    old file and continue with the new one from its start."""
    f: IO[bytes] | None = None
    ino = None
    pending = b""

    def open_new(at_end: bool) -> None:
        nonlocal f, ino
        try:
            f = open(path, "rb")  # noqa: SIM115 - kept open across iterations
        except FileNotFoundError:
            f = None
            return
        ino = os.fstat(f.fileno()).st_ino
        if at_end:
            f.seek(0, os.SEEK_END)

    open_new(start_at_end)
    while not should_stop():
        if f is None:
            time.sleep(poll_s)
            open_new(False)
            continue
        chunk = f.read(65536)
        if chunk:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                yield raw.decode("utf-8", errors="replace")
            continue
        try:
            st = os.stat(path)
            rotated = st.st_ino != ino or st.st_size < f.tell()
        except FileNotFoundError:
            rotated = False  # between rename and re-creation: wait
        if rotated:
            rest = f.read()
            pending += rest
            if pending:
                for raw in pending.split(b"\n"):
                    if raw:
                        yield raw.decode("utf-8", errors="replace")
                pending = b""
            f.close()
            open_new(False)
            continue
        time.sleep(poll_s)
    if f is not None:
        f.close()


def tail(path: Path, n: int, do_follow: bool, raw: bool, out: IO[str] = sys.stdout) -> int:
    show = (lambda s: s) if raw else pretty
    if path.exists():
        for line in last_lines(path, n):
            out.write(show(line) + "\n")
        out.flush()
    elif not do_follow:
        return 1
    if do_follow:
        try:
            for line in follow(path, start_at_end=path.exists()):
                out.write(show(line) + "\n")
                out.flush()
        except KeyboardInterrupt:
            return 0
    return 0
