"""Per-endpoint figures from a worker to /status, /metrics and the status table (pure: the
message check, the registry, the view and the table; the real flow is
tests/supervisor/test_endpoint_status.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from supervisor.inbox import dispatch
from supervisor.messages import ProtocolError, decode_from_worker, encode
from supervisor.table import status_table
from supervisor.view import metric_families, status_document
from tests.supervisor.test_view import running_registry


def figures(state: str = "demoted", reasons: tuple[str, ...] = ("lagging",)) -> dict[str, Any]:
    return {
        "freshest_ledger": 120,
        "endpoints": [
            {
                "endpoint": "https://rpc-a.example.com",
                "state": "up",
                "reasons": [],
                "requests": 40,
                "errors": {"timeout": 1},
                "latency": {"buckets": [["0.05", 30], ["+Inf", 40]], "sum_s": 1.5, "count": 40},
                "latest_ledger": 120,
                "lag_ledgers": 0,
                "breaker_opens": 0,
            },
            {
                "endpoint": "provider-b",
                "state": state,
                "reasons": list(reasons),
                "requests": 7,
                "errors": {"stale": 3},
                "latency": {"buckets": [["0.05", 7], ["+Inf", 7]], "sum_s": 0.1, "count": 7},
                "latest_ledger": 114,
                "lag_ledgers": 6,
                "breaker_opens": 1,
            },
        ],
    }


def test_the_message_round_trips_and_a_bad_one_is_refused() -> None:
    msg = decode_from_worker(encode("endpoints", figures=figures()))
    assert msg.type == "endpoints" and msg["figures"]["endpoints"][1]["endpoint"] == "provider-b"
    bad = orjson.dumps({"v": 1, "type": "endpoints", "figures": {"endpoints": [{"x": 1}]}})
    with pytest.raises(ProtocolError, match="endpoint figures"):
        decode_from_worker(bad)


def test_status_metrics_and_table_show_each_endpoint() -> None:
    reg = running_registry()
    with reg.edit("a") as rec:
        dispatch(rec, decode_from_worker(encode("endpoints", figures=figures())), 10.0)
    doc = status_document(reg.snapshot(), now=24.0)
    shard = next(s for s in doc["shards"] if s["name"] == "a")
    assert [e["endpoint"] for e in shard["endpoints"]["endpoints"]] == [
        "https://rpc-a.example.com",
        "provider-b",
    ]
    assert next(s for s in doc["shards"] if s["name"] == "b")["endpoints"] is None
    fams = {m.name: m for m in metric_families(doc)}
    state = {
        (s.labels["endpoint"], s.labels["state"]): s.value
        for s in fams["sorotask_rpc_endpoint_state"].samples
    }
    assert state[("provider-b", "demoted")] == 1.0 and state[("provider-b", "up")] == 0.0
    assert state[("https://rpc-a.example.com", "up")] == 1.0
    errors = {
        (s.labels["endpoint"], s.labels["kind"]): s.value
        for s in fams["sorotask_rpc_endpoint_errors"].samples
    }
    assert errors == {("https://rpc-a.example.com", "timeout"): 1, ("provider-b", "stale"): 3}
    lag = {s.labels["endpoint"]: s.value for s in fams["sorotask_rpc_endpoint_lag_ledgers"].samples}
    assert lag == {"https://rpc-a.example.com": 0, "provider-b": 6}
    buckets = [
        s
        for s in fams["sorotask_rpc_endpoint_latency_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert {s.labels["le"] for s in buckets} == {"0.05", "+Inf"}
    table = status_table(doc, "http://127.0.0.1:9100")
    row = next(line for line in table.splitlines() if "provider-b" in line)
    assert row.split()[:4] == ["a", "provider-b", "demoted", "lagging"]
    assert "stale=3" in row
