"""The simulation check: is a ``simulateTransaction`` answer fit to build ``execute`` from?

A pure function: the answer and what it must authorize in, a verdict out (a checked
:class:`Simulation`, or a :class:`Refusal` saying why not). Nothing is counted or logged here;
the executor does that with the verdict.

Everything of a successful simulation that goes into the transaction is parsed strictly,
before anything is built from it: ``transactionData`` (a complete ``SorobanTransactionData``),
``minResourceFee`` (covers the data's resource fee, and the total fee fits a uint32),
``results`` (one result: a well-formed ``SCVal`` and well-formed
``SorobanAuthorizationEntry``\\ s). Auth entries must authorize exactly
``execute(keeper, task_id)`` on our contract for the keeper's address (or the source account
when the keeper is the source), nothing below it; a recording-mode answer must hold exactly one.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

from shard_worker import strict_xdr
from shard_worker.errors import RpcMalformedError
from shard_worker.rpc import as_int
from sorotask_core.xdr import scv_address, scv_u64

__all__ = ["Expected", "Refusal", "Simulation", "check_simulation"]


@dataclass(frozen=True, slots=True)
class Expected:
    """What a simulation of ``execute(keeper, task_id)`` must show."""

    task_id: int
    #: the task's ledger key (``LedgerKey`` XDR): written when the call does something
    task_key: bytes
    #: ``SCAddress`` XDR of the keeper and of our contract
    keeper_address: bytes
    contract_address: bytes
    #: the keeper's own account is the transaction's source (source-account credentials
    #: are acceptable only then)
    keeper_is_source: bool
    #: a recording-mode simulation (no auth entries given): exactly one auth entry expected
    recorded: bool
    #: the transaction's inclusion fee, added to ``minResourceFee`` for the total fee
    base_fee: int


@dataclass(frozen=True, slots=True)
class Simulation:
    """A simulation answer that passed the check."""

    transaction_data: bytes
    data: strict_xdr.SorobanData
    min_resource_fee: int
    auth: list[bytes]
    latest_ledger: int | None
    #: the task's entry is in the read-write footprint (else the call would not write it:
    #: not due at that ledger, or the resolver said no; nothing is sent)
    writes_task: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """A simulation answer unfit to build a transaction from."""

    why: str


class _Refused(Exception):
    pass


def check_simulation(sim: dict[str, Any], want: Expected) -> Simulation | Refusal:
    """The verdict on a successful (no ``error``) ``simulateTransaction`` answer."""
    try:
        return _check(sim, want)
    except _Refused as refused:
        return Refusal(str(refused))


def _check(sim: dict[str, Any], want: Expected) -> Simulation:
    raw_data = sim.get("transactionData")
    if not isinstance(raw_data, str):
        raise _Refused("transactionData missing or not a string")
    try:
        tx_data = binascii.a2b_base64(raw_data, strict_mode=True)
        data = strict_xdr.parse_soroban_data(tx_data)
    except (binascii.Error, ValueError) as exc:  # DecodeError is a ValueError
        raise _Refused(f"transactionData: {exc}") from None
    if data.resource_fee < 0:
        raise _Refused(f"negative resource fee {data.resource_fee}")
    n_rw = len(data.read_write)
    if len(set(data.archived)) != len(data.archived) or any(i >= n_rw for i in data.archived):
        raise _Refused("archived entry indices outside the read-write footprint")
    try:
        min_fee = as_int(sim, "minResourceFee", "simulateTransaction")
    except RpcMalformedError as exc:
        raise _Refused(str(exc)) from None
    if not data.resource_fee <= min_fee <= 0xFFFF_FFFF - want.base_fee:
        raise _Refused(
            f"minResourceFee {min_fee} below the data's resource fee {data.resource_fee} "
            "or too large for a transaction fee"
        )
    results = sim.get("results")
    if not isinstance(results, list) or len(results) != 1 or not isinstance(results[0], dict):
        raise _Refused("results is not a list of one result object")
    result = results[0]
    try:
        retval = result.get("xdr")
        if not isinstance(retval, str):
            raise ValueError("result xdr is not a string")
        strict_xdr.parse_scval(binascii.a2b_base64(retval, strict_mode=True))
    except (binascii.Error, ValueError) as exc:
        raise _Refused(f"result: {exc}") from None
    auth = _check_auth(result.get("auth"), want)
    latest = sim.get("latestLedger")
    return Simulation(
        transaction_data=tx_data,
        data=data,
        min_resource_fee=min_fee,
        auth=auth,
        latest_ledger=latest if type(latest) is int and latest > 0 else None,
        writes_task=want.task_key in data.read_write,
    )


def _check_auth(raw_auth: Any, want: Expected) -> list[bytes]:
    if raw_auth is None:
        raw_auth = []
    if not isinstance(raw_auth, list):
        raise _Refused("auth is not a list")
    if want.recorded and len(raw_auth) != 1:
        raise _Refused(f"{len(raw_auth)} auth entries, expected the keeper's one")
    want_args = (scv_address(want.keeper_address), scv_u64(want.task_id))
    auth: list[bytes] = []
    for item in raw_auth:
        try:
            if not isinstance(item, str):
                raise ValueError("auth entry is not a string")
            entry_bytes = binascii.a2b_base64(item, strict_mode=True)
            entry = strict_xdr.parse_auth_entry(entry_bytes)
        except (binascii.Error, ValueError) as exc:
            raise _Refused(f"auth: {exc}") from None
        if (
            entry.function_type != strict_xdr.AUTH_FN_CONTRACT
            or entry.contract != want.contract_address
            or entry.function != b"execute"
            or entry.args != want_args
            or entry.sub_invocations
        ):
            raise _Refused("auth entry authorizes something other than this execute")
        if entry.credentials == strict_xdr.SOROBAN_CREDENTIALS_ADDRESS:
            if entry.address != want.keeper_address:
                raise _Refused("auth entry is for an address other than the keeper")
        elif not want.keeper_is_source:
            raise _Refused("source-account auth entry but the keeper is not the source")
        auth.append(entry_bytes)
    return auth
