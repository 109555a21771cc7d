"""The configuration reference in README.md and the commented example config say exactly what
the declarations in sorotask_core/settings.py say: every key, default and meaning."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from sorotask_core.settings import RESTART, SUPERVISOR, WORKER, yaml_text
from supervisor.config import reference

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "examples" / "sorotask.example.yaml"


class TestReadmeTables:
    def test_readme_tables_are_the_rendered_declarations(self) -> None:
        have = reference.current((ROOT / "README.md").read_text(encoding="utf-8"))
        want = reference.render()
        diff = "\n".join(difflib.unified_diff(have.splitlines(), want.splitlines(), lineterm=""))
        assert have == want, (
            "README.md's configuration tables differ from sorotask_core/settings.py; run "
            f"`python -m supervisor.config.reference --write`:\n{diff}"
        )

    def test_every_yaml_setting_has_a_row_with_its_default_and_doc(self) -> None:
        text = reference.render()
        for section in (WORKER, SUPERVISOR, RESTART):
            for s in section.yaml_settings():
                assert f"| `{s.name}` | {s.default_text()} | {s.doc} |" in text

    def test_flag_only_settings_are_not_in_the_yaml_tables(self) -> None:
        text = reference.render()
        assert "`http_client`" not in text


class TestCommentedExample:
    def _values(self) -> dict[tuple[str, str], str]:
        """(block, key) -> value text, for every ``key: value`` line (commented or not) of the
        example, the block being the YAML block it is written in (``worker``,
        ``supervisor.restart``, ...); the first occurrence in a block wins."""
        found: dict[tuple[str, str], str] = {}
        block: list[str] = []
        for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
            opens = re.match(r"^( {0,2})([a-z_]+):\s*(#.*)?$", line)
            if opens:  # a block of the file (top level) or of a block (two spaces in)
                block = [*block[: len(opens.group(1)) // 2], opens.group(2)]
                continue
            m = re.match(r"^(\s*)(#?)\s*([a-z_]+):\s*([^#\s][^#]*?)\s*(#.*)?$", line)
            if m:  # a commented line is in the block open; a set one, in the block its indent says
                where = block if m.group(2) else block[: len(m.group(1)) // 2]
                found.setdefault((".".join(where), m.group(3)), m.group(4).strip('"'))
        return found

    def test_every_setting_is_in_the_example_with_its_default(self) -> None:
        values = self._values()
        wrong = {}
        for section in (WORKER, SUPERVISOR, RESTART):
            for s in section.yaml_settings():
                want = yaml_text(s.default).strip("`")
                if values.get((section.path, s.name)) != want:
                    wrong[f"{section.path}.{s.name}"] = (values.get((section.path, s.name)), want)
        assert not wrong, f"example value != declared default: {wrong}"
