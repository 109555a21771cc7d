"""README.md stays true: its set-up commands match CI, and its configuration reference names
every key of the config schema (and no key the schema does not have)."""

from __future__ import annotations

import re
from pathlib import Path

from supervisor import config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SCHEMA_KEYS = (
    config.NETWORK_KEYS
    | config.WORKER_KEYS
    | config.SUPERVISOR_KEYS
    | config.RESTART_KEYS
    | config.SHARD_KEYS
    | config.SPLIT_KEYS
    | config.CHANNEL_KEYS
)


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _reference_keys() -> set[str]:
    """Keys named in the first column of the configuration reference tables."""
    ref = _section("Configuration reference")
    keys: set[str] = set()
    for line in ref.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            keys.update(re.findall(r"`([a-z_]+)`", first))
    return keys


class TestSetUpCommands:
    def test_gives_exactly_two_one_line_commands(self) -> None:
        blocks = re.findall(r"```sh\n(.*?)```", _section("Set up"), re.S)
        assert len(blocks) == 2
        assert all(len(b.strip().splitlines()) == 1 for b in blocks)
        assert "sorotask run" in blocks[0]
        assert "pytest" in blocks[1]

    def test_ci_runs_the_readme_test_command(self) -> None:
        blocks = re.findall(r"```sh\n(.*?)```", _section("Set up"), re.S)
        ci = (ROOT / ".ci" / "run").read_text()
        assert blocks[1].strip() in ci


class TestConfigurationReference:
    def test_names_every_schema_key(self) -> None:
        missing = SCHEMA_KEYS - _reference_keys()
        assert not missing, f"README's configuration reference lacks {sorted(missing)}"

    def test_names_no_key_the_schema_lacks(self) -> None:
        extra = _reference_keys() - SCHEMA_KEYS - config.TOP_KEYS
        assert not extra, f"README documents keys the schema does not accept: {sorted(extra)}"
