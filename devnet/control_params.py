"""The parameter error and checks shared by the ``devnet_*`` control methods (devnet/control.py,
devnet/control_net.py); the server answers a :class:`ControlParamError` with -32602."""

from __future__ import annotations

from typing import Any


class ControlParamError(ValueError):
    pass


def int_param(params: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    """``params[name]`` (``default`` when absent or null), an integer in ``[lo, hi]``."""
    value = params.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ControlParamError(f"{name} must be an integer in [{lo}, {hi}]")
    return value
