"""Test-control methods for the network around the keeper: request limits, ledger capacity and
competing load (``devnet_setLimits``, ``devnet_setCapacity``, ``devnet_setLoad``).

See devnet/README.md, devnet/overload.py and devnet/surge.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devnet.control_params import ControlParamError
from devnet.ledger import BASE_FEE
from devnet.overload import LimitParamError
from devnet.surge import SurgeParamError

if TYPE_CHECKING:
    from devnet.node import Devnet


def set_limits(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """``{http_limit, methods: {name: {queue, concurrency, timeout_ms, service_ms}}}``."""
    try:
        return {"limits": node.limits.configure(params)}
    except LimitParamError as exc:
        raise ControlParamError(str(exc)) from exc


def set_capacity(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """``{capacity}``: Soroban transactions a ledger may include (null: unlimited)."""
    unknown = set(params) - {"capacity"}
    if unknown:
        raise ControlParamError(f"unknown fields: {', '.join(sorted(unknown))}")
    try:
        node.surge.set_capacity(params.get("capacity"))
    except SurgeParamError as exc:
        raise ControlParamError(str(exc)) from exc
    return {"surge": node.surge.to_json()}


def set_load(node: Devnet, params: dict[str, Any]) -> dict[str, Any]:
    """``{count, fee}``: ``count`` competing transactions want every ledger, bidding ``fee``
    stroops of inclusion fee per operation. ``{}`` stops the load."""
    unknown = set(params) - {"count", "fee"}
    if unknown:
        raise ControlParamError(f"unknown fields: {', '.join(sorted(unknown))}")
    count = params.get("count", 0)
    fee = params.get("fee", BASE_FEE)
    try:
        node.surge.set_load(count, fee)
    except SurgeParamError as exc:
        raise ControlParamError(str(exc)) from exc
    return {"surge": node.surge.to_json()}


METHODS = {
    "devnet_setLimits": set_limits,
    "devnet_setCapacity": set_capacity,
    "devnet_setLoad": set_load,
}
