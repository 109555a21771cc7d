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
    def _values(self) -> dict[str, str]:
        """key -> value text, for every ``key: value`` line (commented or not) of the example;
        the first occurrence wins."""
        found: dict[str, str] = {}
        for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^\s*#?\s*([a-z_]+):\s*([^#\s][^#]*?)\s*(#.*)?$", line)
            if m:
                found.setdefault(m.group(1), m.group(2).strip('"'))
        return found

    def test_every_setting_is_in_the_example_with_its_default(self) -> None:
        values = self._values()
        wrong = {}
        for section in (WORKER, SUPERVISOR, RESTART):
            for s in section.yaml_settings():
                want = yaml_text(s.default).strip("`")
                if values.get(s.name) != want:
                    wrong[f"{section.path}.{s.name}"] = (values.get(s.name), want)
        assert not wrong, f"example value != declared default: {wrong}"
