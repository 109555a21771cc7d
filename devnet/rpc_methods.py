"""The JSON-RPC methods a replica answers: stellar-rpc's (getHealth ... getEvents) and the
``devnet_*`` control methods, each ``params -> result`` or :class:`RpcError`.

The HTTP side (devnet/server.py) parses requests, applies faults and limits and calls these.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from stellar_sdk import xdr as sx

from devnet import control, events
from devnet.apply import record_to_json
from devnet.archival import is_archived, is_temporary
from devnet.control_params import ControlParamError
from devnet.ledger import PROTOCOL_VERSION
from devnet.node import Devnet
from devnet.replica import Replica
from devnet.simulate import simulate

MAX_KEYS = 200
VERSION = "23.0.0-sorotask-devnet"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

Method = Callable[[dict[str, Any]], Any]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _params_error(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


class RpcMethods:
    """The methods of one endpoint, answered from ``node`` (a replica: its own lag and faults).
    ``friendbot_url`` is set once the server knows its address (getNetwork reports it)."""

    def __init__(self, node: Replica) -> None:
        self.node = node
        self.friendbot_url = ""

    def table(self) -> dict[str, Method]:
        """Method name -> function."""
        methods: dict[str, Method] = {
            "getHealth": self.get_health,
            "getNetwork": self.get_network,
            "getVersionInfo": self.get_version_info,
            "getLatestLedger": self.get_latest_ledger,
            "getLedgerEntries": self.get_ledger_entries,
            "getFeeStats": self.get_fee_stats,
            "simulateTransaction": self.simulate_transaction,
            "sendTransaction": self.send_transaction,
            "getTransaction": self.get_transaction,
            "getEvents": self.get_events,
        }
        for name, fn in control.METHODS.items():
            methods[name] = self._control(fn)
        return methods

    def _control(self, fn: Callable[[Devnet, dict[str, Any]], Any]) -> Method:
        def call(params: dict[str, Any]) -> Any:
            try:
                return fn(self.node, params)
            except ControlParamError as exc:
                raise _params_error(str(exc)) from exc

        return call

    def get_health(self, _params: dict[str, Any]) -> dict[str, Any]:
        view = self.node.view()
        return {
            "status": "healthy",
            **view.ledger_range(),
            "ledgerRetentionWindow": view.retention,
        }

    def get_network(self, _params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.friendbot_url:
            out["friendbotUrl"] = self.friendbot_url
        out["passphrase"] = self.node.passphrase
        out["protocolVersion"] = PROTOCOL_VERSION
        return out

    def get_version_info(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": VERSION,
            "commitHash": "0" * 40,
            "buildTimestamp": "2025-09-01T00:00:00",
            "captiveCoreVersion": "stellar-core (SoroTask devnet emulation)",
            "protocolVersion": PROTOCOL_VERSION,
        }

    def get_latest_ledger(self, _params: dict[str, Any]) -> dict[str, Any]:
        info = self.node.view().latest
        return {
            "id": info.hash_hex,
            "protocolVersion": PROTOCOL_VERSION,
            "sequence": info.sequence,
            "closeTime": str(info.close_time),
            "headerXdr": info.header_b64,
            "metadataXdr": info.meta_b64,
        }

    def get_ledger_entries(self, params: dict[str, Any]) -> dict[str, Any]:
        keys = params.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _params_error("invalid parameters: keys must be a list of base64 strings")
        if len(keys) > MAX_KEYS:
            raise _params_error(f"key count ({len(keys)}) exceeds maximum supported ({MAX_KEYS})")
        view = self.node.view()
        seq = view.sequence
        out = []
        for i, key in enumerate(keys):
            entry = view.entry(key)
            if entry is None:
                canonical = _canonical_key(key)
                if canonical is None:
                    raise _params_error(f"cannot unmarshal key value {key} at index {i}")
                if canonical == "ttl":
                    raise _params_error("ledger ttl entries cannot be queried directly")
                if view.entry(canonical) is not None:  # core answers with the canonical key
                    raise RpcError(INTERNAL_ERROR, "mismatching key in result")
                continue
            live_until = entry.live_until
            if live_until is not None and is_archived(entry, seq):
                if is_temporary(key):
                    continue  # an expired temporary entry is gone
                live_until = 0  # an archived persistent entry (core reports no TTL)
            item: dict[str, Any] = {
                "key": key,
                "xdr": entry.data_b64,
                "lastModifiedLedgerSeq": entry.last_modified,
            }
            if live_until is not None:
                item["liveUntilLedgerSeq"] = live_until
            item["extXdr"] = "AAAAAA=="
            out.append(item)
        return {"entries": out, "latestLedger": seq}

    def get_fee_stats(self, _params: dict[str, Any]) -> dict[str, Any]:
        return self.node.surge.fee_stats(self.node.ledger.sequence)

    def simulate_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params.get("transaction"), str):
            raise _params_error("invalid parameters: transaction must be a base64 string")
        return simulate(self.node, params)

    def send_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        tx = params.get("transaction")
        if not isinstance(tx, str):
            raise _params_error("invalid_xdr")
        try:
            return self.node.submit(tx)
        except ValueError as exc:
            raise _params_error("invalid_xdr") from exc

    def get_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        h = params.get("hash")
        if not isinstance(h, str):
            raise _params_error("unexpected hash length (0)")
        if len(h) != 64:
            raise _params_error(f"unexpected hash length ({len(h)})")
        try:
            bytes.fromhex(h)
        except ValueError as exc:
            raise _params_error(f"incorrect hash: {exc}") from exc
        view = self.node.view()
        base = view.ledger_range()
        rec = view.transaction(h.lower())
        if rec is None:  # stellar-rpc sends the zero values of the fields it found nothing for
            return {
                **base,
                "status": "NOT_FOUND",
                "txHash": h,
                "applicationOrder": 0,
                "feeBump": False,
                "ledger": 0,
                "createdAt": "0",
            }
        return {**base, **record_to_json(rec)}

    def get_events(self, params: dict[str, Any]) -> dict[str, Any]:
        rng = self.node.view().ledger_range()
        try:
            found, cursor = events.query(
                self.node.events,
                params,
                oldest=rng["oldestLedger"],
                latest=rng["latestLedger"],
            )
        except events.EventParamError as exc:
            raise _params_error(str(exc)) from exc
        except events.EventRangeError as exc:
            raise RpcError(INVALID_REQUEST, str(exc)) from exc
        return {"events": found, "cursor": cursor, **rng}


def _canonical_key(key: str) -> str | None:
    """Canonical base64 of a decodable LedgerKey, "ttl" for TTL keys, None if undecodable."""
    try:
        lk = sx.LedgerKey.from_xdr_bytes(base64.b64decode(key, validate=True))
    except Exception:
        return None
    if lk.type == sx.LedgerEntryType.TTL:
        return "ttl"
    return lk.to_xdr()
