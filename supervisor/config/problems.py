"""Config problems: each names the file, the line and the field path, and all of a file's
problems are raised together as one :class:`ConfigError`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: a field path: ("shards", 0, "range") is shown as ``shards[0].range``
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '<top>'}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def type_name(v: Any) -> str:
    """A value's type in YAML words (for "expected X, got Y")."""
    if v is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
    }.get(type(v), type(v).__name__)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Collector:
    """Collects errors and warnings, each placed on the line of its field (or of the nearest
    enclosing field that has a line)."""

    def __init__(self, file: str, lines: dict[FieldPath, int]) -> None:
        self.file = file
        self.lines = lines
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def line_of(self, path: FieldPath) -> int | None:
        p = tuple(path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]

    def error(self, path: FieldPath, message: str) -> None:
        self.errors.append(Problem(self.file, self.line_of(path), format_path(path), message))

    def warn(self, path: FieldPath, message: str) -> None:
        self.warnings.append(Problem(self.file, self.line_of(path), format_path(path), message))
