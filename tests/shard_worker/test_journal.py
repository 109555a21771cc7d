"""The crash-safe in-flight journal file."""

from __future__ import annotations

from pathlib import Path

import pytest

from shard_worker import journal as journal_module
from shard_worker.journal import Journal, JournalEntry


def entry(n: int) -> JournalEntry:
    return JournalEntry(
        hash=f"{n:064x}", task_id=n, source="G" + "A" * 55, sequence=100 + n, max_time=1000
    )


class TestJournal:
    def test_added_entries_survive_a_reload(self, tmp_path: Path) -> None:
        j = Journal(tmp_path, "shard-a")
        j.add(entry(1))
        j.add(entry(2))
        again = Journal(tmp_path, "shard-a")
        assert sorted(e.task_id for e in again.load()) == [1, 2]

    def test_removed_entries_are_gone_after_reload(self, tmp_path: Path) -> None:
        j = Journal(tmp_path, "s")
        j.add(entry(1))
        j.add(entry(2))
        j.remove(entry(1).hash)
        assert [e.task_id for e in Journal(tmp_path, "s").load()] == [2]

    def test_no_temporary_files_are_left_behind(self, tmp_path: Path) -> None:
        j = Journal(tmp_path, "s")
        for i in range(5):
            j.add(entry(i))
        j.remove(entry(3).hash)
        assert [p.name for p in tmp_path.iterdir()] == ["s.inflight.json"]

    def test_corrupt_file_is_set_aside_not_fatal(self, tmp_path: Path) -> None:
        (tmp_path / "s.inflight.json").write_bytes(b"{not json")
        j = Journal(tmp_path, "s")
        assert j.load() == []
        assert j.corrupt_records == 1
        assert (tmp_path / "s.inflight.corrupt").exists()

    def test_invalid_records_are_skipped_and_counted(self, tmp_path: Path) -> None:
        (tmp_path / "s.inflight.json").write_bytes(
            b'{"entries":[{"hash":"zz","task_id":1},{"hash":"'
            + b"a" * 64
            + b'","task_id":3,"source":"G","sequence":5,"max_time":9}, 7]}'
        )
        j = Journal(tmp_path, "s")
        assert [e.task_id for e in j.load()] == [3]
        assert j.corrupt_records == 2

    def test_memory_only_without_state_dir(self) -> None:
        j = Journal(None, "s")
        j.add(entry(1))
        assert len(j) == 1 and j.path is None

    def test_shard_name_is_sanitised_into_one_file_name(self, tmp_path: Path) -> None:
        j = Journal(tmp_path, "../evil/name")
        j.add(entry(1))
        assert j.path is not None and j.path.parent == tmp_path

    def test_changes_are_lines_appended_after_one_snapshot(self, tmp_path: Path) -> None:
        j = Journal(tmp_path, "s")
        j.add(entry(1))
        j.add(entry(2))
        j.remove(entry(1).hash)
        lines = (tmp_path / "s.inflight.json").read_bytes().splitlines()
        assert len(lines) == 3  # the snapshot with 1, then add 2, remove 1
        assert lines[1].startswith(b'{"add":') and lines[2].startswith(b'{"remove":')
        assert [e.task_id for e in Journal(tmp_path, "s").load()] == [2]

    def test_a_snapshot_replaces_the_lines_once_enough_were_appended(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(journal_module, "COMPACT_AFTER", 4)
        j = Journal(tmp_path, "s")
        for i in range(6):
            j.add(entry(i))
            if i % 2:
                j.remove(entry(i).hash)
        lines = (tmp_path / "s.inflight.json").read_bytes().splitlines()
        assert len(lines) <= 5
        assert sorted(e.task_id for e in Journal(tmp_path, "s").load()) == [0, 2, 4]

    def test_a_torn_last_line_is_dropped_not_counted(self, tmp_path: Path) -> None:
        j = Journal(tmp_path, "s")
        j.add(entry(1))
        j.add(entry(2))
        path = tmp_path / "s.inflight.json"
        path.write_bytes(path.read_bytes()[:-20])  # a power cut inside the last add's line
        again = Journal(tmp_path, "s")
        assert [e.task_id for e in again.load()] == [1]
        assert again.corrupt_records == 0

    def test_a_garbled_change_line_is_counted_and_skipped(self, tmp_path: Path) -> None:
        j = Journal(tmp_path, "s")
        j.add(entry(1))
        path = tmp_path / "s.inflight.json"
        with path.open("ab") as fh:
            fh.write(b"\0\0\0\n" + b'{"remove": 7}\n')
        j.add(entry(2))
        again = Journal(tmp_path, "s")
        assert sorted(e.task_id for e in again.load()) == [1, 2]
        assert again.corrupt_records == 2

    def test_a_loaded_journal_writes_a_snapshot_at_its_first_change(self, tmp_path: Path) -> None:
        j = Journal(tmp_path, "s")
        for i in range(3):
            j.add(entry(i))
        again = Journal(tmp_path, "s")
        again.load()
        again.remove(entry(0).hash)
        lines = (tmp_path / "s.inflight.json").read_bytes().splitlines()
        assert len(lines) == 1
        assert sorted(e.task_id for e in Journal(tmp_path, "s").load()) == [1, 2]
