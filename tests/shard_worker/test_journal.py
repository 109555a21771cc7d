"""The crash-safe in-flight journal file."""

from __future__ import annotations

from pathlib import Path

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
