"""docs/architecture.md stays true: its module list names every production module (and no module
that is gone), and every module or class over the size limits has its sentence there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("sorotask_core", "shard_worker", "devnet", "supervisor", "sorotask")
#: issue 10: no production module over ~400 lines, no class over ~300, or a sentence saying why
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 300


def production_modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Every ``.py`` file of the shipped packages, as a path from the repository root."""
    return sorted(
        p.relative_to(root).as_posix() for pkg in packages for p in (root / pkg).rglob("*.py")
    )


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def listed_modules() -> list[str]:
    """The module list: each line ``- `path/to/module.py`: its job``."""
    return re.findall(r"^- `([\w/]+\.py)`: \S", section("Modules"), re.M)


def oversized(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """``path`` of each module over the line limit and ``path:Class`` of each class over its."""
    out = []
    for rel in production_modules(root, packages):
        text = (root / rel).read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            out.append(rel)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                    out.append(f"{rel}:{node.name}")
    return out


class TestModuleList:
    def test_names_every_production_module(self) -> None:
        missing = sorted(set(production_modules()) - set(listed_modules()))
        assert not missing, f"docs/architecture.md's module list lacks {missing}"

    def test_names_no_module_that_is_gone(self) -> None:
        gone = sorted(set(listed_modules()) - set(production_modules()))
        assert not gone, f"docs/architecture.md lists modules that do not exist: {gone}"

    def test_names_each_module_once(self) -> None:
        names = listed_modules()
        assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


class TestSizeLimits:
    def test_every_module_or_class_over_the_limits_says_why(self) -> None:
        text = section("Over the size limits")
        unexplained = [item for item in oversized() if f"`{item}`" not in text]
        assert not unexplained, (
            f"over {MAX_MODULE_LINES} lines (module) or {MAX_CLASS_LINES} (class) with no "
            f"sentence in docs/architecture.md's 'Over the size limits': {unexplained}"
        )

    def test_the_checker_finds_big_modules_and_classes(self, tmp_path: Path) -> None:
        pkg = tmp_path / "pkg"
        (pkg / "sub").mkdir(parents=True)
        (pkg / "small.py").write_text("class Ok:\n" + "    x = 1\n" * 299)  # 300 lines
        (pkg / "sub" / "big.py").write_text(
            "class Big:\n" + "    x = 1\n" * 300 + "\n\nclass Fine:\n    pass\n" + "y = 1\n" * 96
        )  # Big: 301 lines; the module 401
        (pkg / "long.py").write_text("z = 1\n" * 400)  # exactly the limit
        assert oversized(tmp_path, ("pkg",)) == ["pkg/sub/big.py", "pkg/sub/big.py:Big"]
