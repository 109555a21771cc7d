"""The saved events position: round trips, atomic replacement, and corrupt files as reasons."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from shard_worker import cursorstore
from shard_worker.cursorstore import CursorStore
from shard_worker.eventsync import Position
from shard_worker.taskstate import TaskState

CONTRACT = "CAAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQC526"
CURSOR = "0000000429496729600-0000000001"


def a_state() -> TaskState:
    state = TaskState(1, 1000)
    for task_id in range(1, 1001, 3):
        state.record(
            task_id,
            interval=60,
            last_run=task_id,
            gas_positive=True,
            allowed=True,
            has_resolver=False,
            live_until=5000,
            entry_hash=task_id * 7,
        )
    return state


class TestRoundTrip:
    def test_position_and_state_come_back(self, tmp_path: Path) -> None:
        store = CursorStore(tmp_path, "shard-0")
        state = a_state()
        store.save(CONTRACT, Position(100, CURSOR), state.dump(), now=1234.5)
        saved, reason = CursorStore(tmp_path, "shard-0").load(CONTRACT)
        assert reason is None and saved is not None
        assert saved.position == Position(100, CURSOR)
        assert saved.contract_id == CONTRACT and saved.saved_at == 1234.5
        back = TaskState.load(saved.state)
        assert back.dump() == state.dump()

    def test_a_state_saved_in_parts_is_the_file_of_its_dump(self, tmp_path: Path) -> None:
        state = a_state()
        CursorStore(tmp_path / "a", "s").save(CONTRACT, Position(9), state.dump(), now=1.0)
        CursorStore(tmp_path / "b", "s").save(CONTRACT, Position(9), state.dump_parts(), now=1.0)
        whole = (tmp_path / "a" / "s.events").read_bytes()
        assert (tmp_path / "b" / "s.events").read_bytes() == whole
        saved, reason = CursorStore(tmp_path / "b", "s").load(CONTRACT)
        assert reason is None and saved is not None
        assert TaskState.load(saved.state).dump() == state.dump()

    def test_a_position_without_cursor_and_state(self, tmp_path: Path) -> None:
        store = CursorStore(tmp_path, "s")
        store.save(CONTRACT, Position(7))
        saved, _ = store.load(CONTRACT)
        assert saved is not None and saved.position == Position(7) and saved.state == b""

    def test_the_newest_save_wins_and_leaves_no_temporary_files(self, tmp_path: Path) -> None:
        store = CursorStore(tmp_path, "s")
        for ledger in range(1, 6):
            store.save(CONTRACT, Position(ledger, CURSOR))
        saved, _ = store.load(CONTRACT)
        assert saved is not None and saved.position.ledger == 5
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.events"]

    def test_shard_names_are_made_file_safe(self, tmp_path: Path) -> None:
        store = CursorStore(tmp_path, "a/b c")
        store.save(CONTRACT, Position(1))
        assert store.path == tmp_path / "a_b_c.events" and store.path.exists()


class TestNothingToResume:
    def test_first_start(self, tmp_path: Path) -> None:
        saved, reason = CursorStore(tmp_path / "new", "s").load(CONTRACT)
        assert saved is None and reason and "first start" in reason

    def test_without_a_state_dir_nothing_is_kept(self) -> None:
        store = CursorStore(None, "s")
        store.save(CONTRACT, Position(3))
        saved, reason = store.load(CONTRACT)
        assert saved is None and reason and "no state dir" in reason

    def test_a_position_for_another_contract(self, tmp_path: Path) -> None:
        store = CursorStore(tmp_path, "s")
        store.save("COTHER", Position(3))
        saved, reason = store.load(CONTRACT)
        assert saved is None and reason and "for contract COTHER" in reason
        assert store.path is not None and store.path.exists()  # not corrupt: kept

    def test_a_position_saved_for_other_ids(self, tmp_path: Path) -> None:
        CursorStore(tmp_path, "s", ids="1-100").save(CONTRACT, Position(3))
        store = CursorStore(tmp_path, "s", ids="1-200")
        saved, reason = store.load(CONTRACT)
        assert saved is None and reason and "for task ids 1-100" in reason
        assert "this shard's are 1-200" in reason
        assert store.path is not None and store.path.exists()  # not corrupt: kept
        saved, reason = CursorStore(tmp_path, "s", ids="1-100").load(CONTRACT)
        assert reason is None and saved is not None and saved.ids == "1-100"

    def test_a_position_saved_before_ids_were_recorded_is_not_resumed(self, tmp_path: Path) -> None:
        store = CursorStore(tmp_path, "s")
        store.save(CONTRACT, Position(3))
        assert store.path is not None
        head, _, rest = store.path.read_bytes().partition(b"\n")
        old = {k: v for k, v in orjson.loads(head).items() if k != "ids"}
        store.path.write_bytes(orjson.dumps(old) + b"\n" + rest)
        saved, reason = CursorStore(tmp_path, "s", ids="1-").load(CONTRACT)
        assert saved is None and reason and "(not recorded)" in reason
        assert store.load(CONTRACT)[0] is not None  # readable: only not this shard's

    def test_clear_forgets(self, tmp_path: Path) -> None:
        store = CursorStore(tmp_path, "s")
        store.save(CONTRACT, Position(3))
        store.clear()
        store.clear()
        assert store.load(CONTRACT)[0] is None


def _good_file(tmp_path: Path) -> bytes:
    store = CursorStore(tmp_path, "s")
    store.save(CONTRACT, Position(100, CURSOR), a_state().dump())
    assert store.path is not None
    return store.path.read_bytes()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b"",
        lambda b: b"garbage without newline",
        lambda b: b[:-1],
        lambda b: b + b"x",
        lambda b: b[:-5] + bytes(5 - 1) + b"\x01",
        lambda b: b"{not json\n" + b.split(b"\n", 1)[1],
        lambda b: b.replace(b'"format":1', b'"format":2', 1),
        lambda b: b.replace(b'"ledger":100', b'"ledger":-1', 1),
        lambda b: b.replace(b'"ledger":100', b'"ledger":"100"', 1),
        lambda b: b.replace(CURSOR.encode(), b"", 1),
        lambda b: b"[1,2]\n",
        lambda b: b"\x00" * 5000,
    ],
    ids=[
        "empty",
        "no_header",
        "truncated_state",
        "trailing",
        "bit_rot",
        "header_not_json",
        "other_format",
        "negative_ledger",
        "ledger_as_text",
        "empty_cursor",
        "header_not_object",
        "zeros",
    ],
)
def test_a_corrupt_file_is_a_reason_never_a_crash(tmp_path: Path, mangle: object) -> None:
    data = mangle(_good_file(tmp_path))  # type: ignore[operator]
    path = tmp_path / "s.events"
    path.write_bytes(data)
    saved, reason = CursorStore(tmp_path, "s").load(CONTRACT)
    assert saved is None
    assert reason and "corrupt" in reason and "moved to" in reason
    assert not path.exists() and (tmp_path / "s.corrupt").read_bytes() == data
    # and the next start is a plain first start
    assert "first start" in str(CursorStore(tmp_path, "s").load(CONTRACT)[1])


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CursorStore(tmp_path, "s")
    store.save(CONTRACT, Position(1, CURSOR))

    def broken_replace(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(cursorstore.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.save(CONTRACT, Position(2, CURSOR))
    monkeypatch.undo()
    saved, _ = store.load(CONTRACT)
    assert saved is not None and saved.position.ledger == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.events"]


_WRITER = """
import sys
from shard_worker.cursorstore import CursorStore
from shard_worker.eventsync import Position
store = CursorStore(sys.argv[1], "s")
state = bytes(range(256)) * 4000  # ~1 MB: a write takes long enough to be killed inside one
ledger = 1
while True:
    store.save(sys.argv[2], Position(ledger, "0000000429496729600-0000000001"), state)
    ledger += 1
    if ledger == 3:
        print("writing", flush=True)
"""


def test_killed_while_writing_leaves_a_whole_file(tmp_path: Path) -> None:
    """SIGKILL a real process in the middle of its saves: the file is the old or the new one."""
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), CONTRACT],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "writing"
            time.sleep(0.05 + 0.07 * attempt)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        saved, reason = CursorStore(tmp_path, "s").load(CONTRACT)
        assert reason is None and saved is not None
        assert saved.position.ledger >= 2 and len(saved.state) == 256 * 4000
        # a write killed before its rename leaves a temporary file: load removes it
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.events"]
