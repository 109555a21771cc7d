"""The import layers (issue 10), read from the source with ``ast``: nothing here is imported.

Layers, bottom up: ``sorotask_core`` (imports nothing of ours, never stellar-sdk or pydantic);
``shard_worker`` and ``devnet`` (on the core only); ``supervisor`` (core and worker); ``sorotask``
(the command line and the tools, on everything). Every import counts, also one inside a
function or under ``TYPE_CHECKING``: a lazy import or a type is still an arrow between two
modules (issue 10 counts them). Each failure names the modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sorotask_core", "shard_worker", "devnet", "supervisor", "sorotask")
#: our top-level packages, including the tests (production code never imports them)
OURS = (*PACKAGES, "tests")

#: package -> the packages of ours it may import
MAY_IMPORT = {
    "sorotask_core": {"sorotask_core"},
    "shard_worker": {"sorotask_core", "shard_worker"},
    "devnet": {"sorotask_core", "devnet"},
    "supervisor": {"sorotask_core", "shard_worker", "supervisor"},
    "sorotask": set(PACKAGES),
}
#: package -> third-party packages it never imports (stellar-sdk costs ~50 MB of RSS, pydantic
#: 19 MiB: neither belongs in the worker process)
NEVER_IMPORTS = {
    "sorotask_core": {"stellar_sdk", "pydantic"},
    "shard_worker": {"stellar_sdk", "pydantic"},
}
#: arrows the rules allow by name, each with its reason
ALLOWED: dict[tuple[str, str], str] = {}
#: what the worker process imports first (supervisor.worker_process.PRELOAD, and
#: ``sorotask worker`` which runs one keeper in the foreground)
WORKER_ROOTS = ("supervisor.worker_process", "shard_worker.keeper", "shard_worker.cli")


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str  # a module of ours, or the top-level name of anything else
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            modules[_module_name(path)] = path
    return modules


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def arrows_of(module: str, path: Path, known: Iterable[str]) -> list[Arrow]:
    """Every import in ``module``: a module of ours by its dotted name, else its top level."""
    known = set(known)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[Arrow] = []

    def add(target: str, line: int) -> None:
        top = target.split(".")[0]
        if top in OURS:
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]  # a name inside a module
            out.append(Arrow(module, target, line))
        else:
            out.append(Arrow(module, top, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base, node.lineno)
    return [a for a in out if a.target != module]


def import_graph() -> tuple[dict[str, Path], list[Arrow]]:
    modules = discover()
    arrows = [a for m, p in modules.items() for a in arrows_of(m, p, modules)]
    return modules, arrows


def _circles(nodes: Iterable[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _cycle_path(component: list[str], edges: dict[str, set[str]]) -> str:
    """One concrete circle through the component's first module, for the failure message."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    node = start
    for _ in range(len(component) + 1):
        nexts = sorted(edges.get(node, set()) & members)
        if start in nexts and len(path) > 1:
            return " -> ".join([*path, start])
        fresh = [n for n in nexts if n not in seen]
        if not fresh:
            break
        node = fresh[0]
        path.append(node)
        seen.add(node)
    return " <-> ".join(component)


def _package(module: str) -> str:
    return module.split(".")[0]


def layer_violations(arrows: Iterable[Arrow]) -> dict[tuple[str, str], str]:
    """(importer, imported) -> the rule it breaks."""
    broken = {}
    for a in arrows:
        src, dst = _package(a.source), _package(a.target)
        if (a.source, a.target) in ALLOWED:
            continue
        if dst in OURS:
            if dst not in MAY_IMPORT[src]:
                broken.setdefault(
                    (a.source, a.target),
                    f"{a.source} (line {a.line}) imports {a.target}: {src} -> {dst}",
                )
        elif a.target in NEVER_IMPORTS.get(src, ()):
            broken.setdefault(
                (a.source, a.target), f"{a.source} (line {a.line}) imports {a.target}"
            )
    return broken


# ---------------------------------------------------------------- the tests


class TestImportLayers:
    def test_every_package_is_found(self) -> None:
        modules = discover()
        for package in PACKAGES:
            assert package in modules, package
        assert len(modules) > 50

    def test_no_import_circle(self) -> None:
        modules, arrows = import_graph()
        edges: dict[str, set[str]] = {}
        for a in arrows:
            if a.target in modules:
                edges.setdefault(a.source, set()).add(a.target)
        circles = _circles(modules, edges)
        assert not circles, "import circles:\n" + "\n".join(_cycle_path(c, edges) for c in circles)

    def test_each_package_imports_only_the_layers_below(self) -> None:
        _, arrows = import_graph()
        broken = layer_violations(arrows)
        assert not broken, "layer rules broken:\n" + "\n".join(broken.values())

    def test_every_exception_is_still_needed(self) -> None:
        _, arrows = import_graph()
        present = {(a.source, a.target) for a in arrows}
        gone = [pair for pair in ALLOWED if pair not in present]
        assert not gone, "no longer needed, remove the entry: " + ", ".join(
            " -> ".join(pair) for pair in gone
        )

    def test_the_worker_process_never_imports_stellar_sdk_or_pydantic(self) -> None:
        """Everything the worker process may import (its roots, every import they reach, and
        the packages around them) is free of stellar-sdk and pydantic."""
        modules, arrows = import_graph()
        out: dict[str, list[Arrow]] = {}
        for a in arrows:
            out.setdefault(a.source, []).append(a)
        reached: dict[str, str] = {}  # module -> how it was reached
        todo = [(root, root) for root in WORKER_ROOTS]
        while todo:
            module, via = todo.pop()
            if module in reached:
                continue
            reached[module] = via
            parent = module.rsplit(".", 1)[0] if "." in module else None
            if parent:  # importing a.b runs a/__init__.py first
                todo.append((parent, f"{via} (package)"))
            for a in out.get(module, ()):
                if a.target in modules:
                    todo.append((a.target, f"{via} -> {a.target}"))
        bad = [
            f"{a.target} via {reached[m]} (line {a.line})"
            for m in reached
            for a in out.get(m, ())
            if a.target in ("stellar_sdk", "pydantic")
        ]
        assert not bad, "the worker process would import:\n" + "\n".join(bad)


class TestTheCheckerItself:
    """The walker and the rules on small made-up cases, so a silent checker cannot pass."""

    def test_relative_and_submodule_imports_resolve(self, tmp_path: Path) -> None:
        src = tmp_path / "mod.py"
        src.write_text(
            "from . import chain\nfrom .xdr import pack_u32\nimport stellar_sdk.xdr\n"
            "def f():\n    from shard_worker.keeper import run_keeper\n"
        )
        known = {"shard_worker", "shard_worker.chain", "shard_worker.xdr", "shard_worker.keeper"}
        got = {(a.target, a.line) for a in arrows_of("shard_worker.mod", src, known)}
        assert got == {
            ("shard_worker.chain", 1),
            ("shard_worker.xdr", 2),
            ("stellar_sdk", 3),
            ("shard_worker.keeper", 5),
        }

    def test_circles_are_found_with_a_path(self) -> None:
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        assert _circles("abcd", edges) == [["a", "b", "c"]]
        assert _cycle_path(["a", "b", "c"], edges) == "a -> b -> c -> a"
        assert _circles("ab", {"a": {"b"}}) == []

    def test_rules_name_the_broken_arrow(self) -> None:
        arrows = [
            Arrow("sorotask_core.xdr", "shard_worker.chain", 3),
            Arrow("shard_worker.keeper", "stellar_sdk", 9),
            Arrow("devnet.node", "sorotask_core.contract", 1),
            Arrow("devnet.node", "supervisor.config", 2),
            Arrow("supervisor.cli", "sorotask.chaos", 4),
            Arrow("sorotask.cli", "supervisor.cli", 5),
        ]
        assert list(layer_violations(arrows).values()) == [
            "sorotask_core.xdr (line 3) imports shard_worker.chain: sorotask_core -> shard_worker",
            "shard_worker.keeper (line 9) imports stellar_sdk",
            "devnet.node (line 2) imports supervisor.config: devnet -> supervisor",
            "supervisor.cli (line 4) imports sorotask.chaos: supervisor -> sorotask",
        ]
