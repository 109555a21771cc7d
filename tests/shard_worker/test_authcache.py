"""Each task's recorded authorization kept across restarts (shard_worker.authcache): the file
in the state dir, its owner, a torn line, its size."""

from __future__ import annotations

from pathlib import Path

from shard_worker.authcache import AuthCache

OWNER = "C-contract G-keeper"


def cache(tmp_path: Path, *, owner: str = OWNER, size: int = 8) -> AuthCache:
    return AuthCache(tmp_path, "shard-1", owner=owner, size=size)


class TestKeptAcrossRestarts:
    def test_a_recording_and_a_drop_survive_a_restart(self, tmp_path: Path) -> None:
        c = cache(tmp_path)
        c.put(7, [b"auth-7a", b"auth-7b"])
        c.put(8, [b"auth-8"])
        c.drop(8)
        again = cache(tmp_path)
        assert again.get(7) == [b"auth-7a", b"auth-7b"]
        assert again.get(8) is None

    def test_another_contract_or_keeper_starts_empty(self, tmp_path: Path) -> None:
        cache(tmp_path).put(7, [b"auth-7"])
        other = cache(tmp_path, owner="C-contract G-another-keeper")
        assert other.get(7) is None
        other.put(9, [b"auth-9"])
        assert cache(tmp_path, owner="C-contract G-another-keeper").get(9) == [b"auth-9"]
        assert cache(tmp_path).get(7) is None  # the file is the other keeper's now

    def test_a_torn_last_line_keeps_what_came_before(self, tmp_path: Path) -> None:
        c = cache(tmp_path)
        c.put(7, [b"auth-7"])
        assert c.path is not None
        with c.path.open("ab") as fh:
            fh.write(b'{"t": 8, "a": ["YXV')  # a kill while appending
        assert cache(tmp_path).get(7) == [b"auth-7"]

    def test_without_a_state_dir_only_in_memory(self) -> None:
        c = AuthCache(None, "shard-1", owner=OWNER)
        c.put(7, [b"auth-7"])
        assert c.get(7) == [b"auth-7"] and c.path is None


class TestSize:
    def test_the_most_recent_are_kept_and_the_file_stays_small(self, tmp_path: Path) -> None:
        c = cache(tmp_path, size=8)
        for task_id in range(100):
            c.put(task_id, [b"x" * 100])
        assert len(c) == 8 and c.get(99) is not None and c.get(91) is None
        assert c.path is not None
        assert len(c.path.read_bytes().splitlines()) <= 1 + 4 * 8
        again = cache(tmp_path, size=8)
        assert sorted(t for t in range(100) if again.get(t) is not None) == list(range(92, 100))
