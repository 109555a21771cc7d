"""The YAML blocks' schema: pydantic models built from the declarations in
:mod:`sorotask_core.settings`, and their errors in the config's own words.

One model per block (``network``, ``worker``, ``supervisor``, ``supervisor.restart``), strict
(an integer is never a float written 2.5, a boolean is never a number) and closed (an unknown
key is an error with a suggestion). A declaration's bounds, choices and rule run as an after
validator, so every problem of a block comes out of one validation, each with its field path.
A bad value is reported and its default used, so the rest of the file is still checked.

pydantic lives only in the supervisor: the worker process never imports this module
(``sorotask worker --config`` resolves its config in a short-lived child process).
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, WrapValidator
from pydantic import create_model as _create_model
from pydantic_core import PydanticCustomError

from sorotask_core.settings import Section, Setting
from supervisor.config.problems import Collector, FieldPath, type_name

__all__ = ["read_block"]

#: pydantic error types that mean "a value of the wrong type"
_TYPE_ERRORS = {"int_type", "float_type", "bool_type", "string_type", "literal_error"}


def _checked(setting: Setting) -> AfterValidator:
    def check(value: Any) -> Any:
        problem = setting.problem(value)
        if problem is not None:
            raise PydanticCustomError("setting", "{problem}", {"problem": problem})
        return value.upper() if setting.upper and isinstance(value, str) else value

    return AfterValidator(check)


def _accept_word(word: str) -> WrapValidator:
    def wrap(value: Any, handler: Any) -> Any:
        return value if value == word else handler(value)

    return WrapValidator(wrap)


def _annotation(setting: Setting) -> Any:
    base: Any = setting.type
    if setting.choices and not setting.upper:
        base = Literal[setting.choices]  # type: ignore[valid-type]
    if setting.nullable:
        base = base | None
    extra: list[Any] = [_checked(setting)]
    if setting.word is not None:
        extra.insert(0, _accept_word(setting.word))
    return Annotated[base, *extra]


@cache
def model_of(section: Section) -> type[BaseModel]:
    """The pydantic model of one block (built once per section)."""
    # a required setting is reported by read_block when absent: here it defaults to None, so
    # that a block validates again once its bad values are taken out
    fields: dict[str, Any] = {
        s.name: (_annotation(s), None if s.required else s.default) for s in section.yaml_settings()
    }
    # nested blocks (supervisor.restart) are validated on their own: here any value passes
    fields.update({b: (Any, None) for b in section.blocks})
    name = "".join(p.title() for p in section.path.replace("_", ".").split("."))
    return _create_model(  # type: ignore[call-overload,no-any-return]
        name, __config__=ConfigDict(strict=True, extra="forbid"), **fields
    )


def _closest(key: str, allowed: set[str]) -> str | None:
    m = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return m[0] if m else None


def _message(section: Section, error: Any) -> str:
    kind, key = error["type"], error["loc"][0]
    if kind == "extra_forbidden":
        hint = _closest(str(key), section.keys())
        return "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
    if kind == "setting":
        return str(error["ctx"]["problem"])
    setting = section[key]
    if kind in _TYPE_ERRORS and setting.choices:
        return setting.problem(error["input"]) or str(error["msg"])
    if kind in _TYPE_ERRORS:
        return f"expected {setting.expected}, got {type_name(error['input'])}"
    return str(error["msg"])  # not expected: pydantic's own words


def read_block(
    c: Collector, data: Any, path: FieldPath, section: Section, base: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate one block; report each problem at its field.

    Returns ``(values, blocks)``: ``base`` updated with the keys the block gives (a bad value
    leaves its base value), and the raw values of the nested blocks (None when absent).
    A missing block (``null``) is an empty one.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        c.error(path, f"expected a mapping, got {type_name(data)}")
        data = {}
    model = model_of(section)
    try:
        given = model.model_validate(data)
    except ValidationError as exc:
        bad: set[str] = set()
        for error in exc.errors():
            key = error["loc"][0]
            c.error((*path, key), _message(section, error))
            bad.add(str(key))
        given = model.model_validate({k: v for k, v in data.items() if k not in bad})
    for s in section.yaml_settings():
        if s.required and s.name not in data:
            c.error((*path, s.name), "required")
    values = dict(base)
    blocks = {b: getattr(given, b) for b in section.blocks}
    values.update({k: getattr(given, k) for k in given.model_fields_set if k not in blocks})
    return values, blocks
