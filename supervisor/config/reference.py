"""The README's configuration reference tables, rendered from the declarations in
:mod:`sorotask_core.settings` (``tests/test_readme_config.py`` fails when they differ).

    python -m supervisor.config.reference            # print the tables
    python -m supervisor.config.reference --write    # replace them in README.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sorotask_core.settings import NETWORK, RESTART, SHARD, SPLIT, SUPERVISOR, WORKER, Key, Section

BEGIN = "<!-- configuration tables: python -m supervisor.config.reference --write -->"
END = "<!-- end of configuration tables -->"
README = Path(__file__).resolve().parents[2] / "README.md"

#: the nested blocks' rows in their parent's table
_BLOCKS = {"restart": RESTART}


def _settings_table(section: Section) -> list[str]:
    caption = f"`{section.path}`" + (f" ({section.doc})" if section.doc else "")
    rows = [caption, "", "| key | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.default_text()} | {s.doc} |" for s in section.yaml_settings()]
    rows += [f"| `{b}` | see below | {_BLOCKS[b].doc} |" for b in section.blocks]
    return rows


def _keys_table(first: str, keys: tuple[Key, ...]) -> list[str]:
    rows = [f"| {first} | meaning |", "|---|---|"]
    rows += [f"| {' / '.join(f'`{n}`' for n in k.names)} | {k.doc} |" for k in keys]
    return rows


def render() -> str:
    """The tables, in README order, between their markers."""
    out = [BEGIN, ""]
    for section in (NETWORK, WORKER, SUPERVISOR, RESTART):
        out += [*_settings_table(section), ""]
    out += ["`shards` (a list), or `split` (generated shards)", ""]
    out += [*_keys_table("key", SHARD), ""]
    out += [*_keys_table("`split` key", SPLIT), ""]
    out.append(END)
    return "\n".join(out)


def current(text: str) -> str:
    """The tables as ``text`` (the README) has them, markers included."""
    start = text.index(BEGIN)
    return text[start : text.index(END, start) + len(END)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m supervisor.config.reference")
    ap.add_argument("--write", action="store_true", help=f"replace the tables in {README}")
    args = ap.parse_args(argv)
    if not args.write:
        print(render())
        return 0
    text = README.read_text(encoding="utf-8")
    README.write_text(text.replace(current(text), render()), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
