"""getEvents helpers shared by the devnet tests: raw JSON-RPC calls (for shapes the SDK hides),
stellar-rpc's end-of-window cursor, and topic filters of the SoroTask contract's events."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from stellar_sdk import scval

from devnet.process import DevnetProcess
from devnet.sorotask_contract import SOROTASK_ID


def raw_call(dn: DevnetProcess, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The whole JSON-RPC answer (``result`` or ``error``) of one call to ``dn``."""
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    resp = httpx.post(
        dn.info.rpc_url, content=body, headers={"content-type": "application/json"}, timeout=10
    )
    assert resp.status_code == 200
    return orjson.loads(resp.content)


def events_error(dn: DevnetProcess, params: dict[str, Any]) -> dict[str, Any]:
    """The ``error`` object getEvents answers ``params`` with (the call must fail)."""
    out = raw_call(dn, "getEvents", params)
    assert "error" in out, out
    return out["error"]


def end_cursor(ledger: int) -> str:
    """stellar-rpc's cursor for the end of a scanned window whose last ledger is ``ledger``:
    ``toid(ledger, 0xFFFFF, 0xFFF)`` and the largest event index."""
    return f"{(ledger << 32) | 0xFFFFFFFF:019d}-4294967295"


def topic_filter(symbol: str) -> list[dict[str, Any]]:
    """A getEvents filter for the SoroTask contract's (Symbol ``symbol``, id) events."""
    topic = scval.to_symbol(symbol).to_xdr()
    return [{"type": "contract", "contractIds": [SOROTASK_ID], "topics": [[topic, "*"]]}]
