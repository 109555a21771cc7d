"""YAML into plain data, with the line of every field path (PyYAML's composer, safe loader).

Duplicate keys, non-string keys, syntax errors and control characters become problems with a
line; aliases share their value (an alias bomb is never expanded) and a recursive alias is an
error, not a hang.
"""

from __future__ import annotations

from typing import Any

import yaml

from supervisor.config.problems import FieldPath, Problem, format_path


def compose(text: str, file: str) -> tuple[Any, dict[FieldPath, int], list[Problem]]:
    """Parse YAML into plain data plus a map of field path -> 1-based line."""
    lines: dict[FieldPath, int] = {}
    problems: list[Problem] = []
    try:
        # the reader checks every character up front: a control character raises here
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: max(0, exc.position)].count("\n") + 1
        problems.append(
            Problem(
                file,
                line,
                "",
                f"YAML syntax error: character U+{exc.character:04X} is not allowed in YAML",
            )
        )
        return None, lines, problems
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        msg = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(file, line, "", f"YAML syntax error: {msg}"))
        return None, lines, problems
    finally:
        loader.dispose()
    if node is None:
        return None, lines, problems

    built: dict[int, Any] = {}
    in_progress: set[int] = set()

    def build(n: yaml.Node, path: FieldPath) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if id(n) in built:  # an alias: share the value (no exponential expansion)
            return built[id(n)]
        if id(n) in in_progress:
            raise yaml.YAMLError(f"line {n.start_mark.line + 1}: recursive alias")
        in_progress.add(id(n))
        try:
            value = build_node(n, path)
        finally:
            in_progress.discard(id(n))
        if isinstance(n, yaml.MappingNode | yaml.SequenceNode):
            built[id(n)] = value
        return value

    def build_node(n: yaml.Node, path: FieldPath) -> Any:
        if isinstance(n, yaml.MappingNode):
            loader.flatten_mapping(n)
            out: dict[Any, Any] = {}
            for k_node, v_node in n.value:
                key = build(k_node, (*path, "<key>"))
                if not isinstance(key, str):
                    problems.append(
                        Problem(
                            file,
                            k_node.start_mark.line + 1,
                            format_path(path),
                            f"mapping key {key!r} is not a string",
                        )
                    )
                    key = str(key)
                kp = (*path, key)
                if key in out:
                    problems.append(
                        Problem(
                            file,
                            k_node.start_mark.line + 1,
                            format_path(kp),
                            "duplicate key",
                        )
                    )
                lines[kp] = k_node.start_mark.line + 1
                out[key] = build(v_node, kp)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(n.value)]
        return loader.construct_object(n, deep=True)

    try:
        data = build(node, ())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(Problem(file, line, "", f"YAML error: {exc}"))
        return None, lines, problems
    for key in [k for k in lines if k and k[-1] == "<key>"]:
        del lines[key]
    return data, lines, problems
