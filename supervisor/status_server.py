"""HTTP status endpoint of the supervisor (stdlib ThreadingHTTPServer in a daemon thread).

* ``GET /status``  JSON: ``{supervisor, shards: [...], totals}``
* ``GET /metrics`` Prometheus text format (a private registry; one labelled series per shard)
* ``GET /health``  200 ``{"healthy": true}`` when every shard runs with a fresh cycle, else 503
  with the reasons
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from supervisor.arbiter import Arbiter

STATES = ("starting", "running", "backoff", "stopping", "failed", "stopped")


class ShardCollector:
    """A prometheus_client custom collector reading the arbiter's status on each scrape."""

    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        doc = self.arbiter.status()
        shards = doc["shards"]
        lbl = ["shard"]

        def counter(name: str, doc_: str, key: str) -> CounterMetricFamily:
            m = CounterMetricFamily(f"sorotask_{name}", doc_, labels=lbl)
            for s in shards:
                m.add_metric([s["name"]], s["totals"][key])
            return m

        def gauge(name: str, doc_: str, value: Any) -> GaugeMetricFamily:
            m = GaugeMetricFamily(f"sorotask_{name}", doc_, labels=lbl)
            for s in shards:
                v = value(s)
                if v is not None:
                    m.add_metric([s["name"]], float(v))
            return m

        yield counter("cycles", "Poll cycles completed", "cycles")
        yield counter("tasks_checked", "Tasks checked, summed over cycles", "checked")
        yield counter("tasks_due", "Tasks found due, summed over cycles", "due")
        yield counter("tasks_executed", "Execute transactions that succeeded", "executed")
        yield counter("tasks_failed", "Execute transactions that failed", "failed")
        yield counter("read_errors", "Task read errors", "read_errors")
        yield counter(
            "not_sent_by_simulation",
            "Executions not sent because simulation showed no effect",
            "not_sent_by_simulation",
        )
        yield counter("fees_spent_stroops", "Fees spent", "fees_spent")
        yield counter("cycle_errors", "Cycles that ended in an error", "cycle_errors")
        yield gauge(
            "cycle_duration_seconds",
            "Duration of the last poll cycle",
            lambda s: s["totals"]["last_cycle_duration_s"],
        )
        skipped = CounterMetricFamily(
            "sorotask_tasks_skipped", "Tasks skipped, by reason", labels=["shard", "reason"]
        )
        rpc_calls = CounterMetricFamily(
            "sorotask_rpc_calls", "RPC calls by method", labels=["shard", "method"]
        )
        rpc_errors = CounterMetricFamily(
            "sorotask_rpc_errors", "RPC errors by method", labels=["shard", "method"]
        )
        rpc_latency = GaugeMetricFamily(
            "sorotask_rpc_latency_seconds",
            "Mean RPC latency by method (last cycle)",
            labels=["shard", "method"],
        )
        for s in shards:
            t = s["totals"]
            for k, v in t["skipped"].items():
                skipped.add_metric([s["name"], k], v)
            for k, v in t["rpc_calls"].items():
                rpc_calls.add_metric([s["name"], k], v)
            for k, v in t["rpc_errors"].items():
                rpc_errors.add_metric([s["name"], k], v)
            for k, v in t["rpc_latency_s"].items():
                rpc_latency.add_metric([s["name"], k], v)
        yield skipped
        yield rpc_calls
        yield rpc_errors
        yield rpc_latency
        yield gauge(
            "mean_execution_seconds",
            "Mean time from send to final status",
            lambda s: s["totals"]["mean_execution_s"],
        )
        yield gauge("in_flight", "Transactions in flight", lambda s: s["totals"]["in_flight"])
        yield gauge("queue_depth", "Execution queue depth", lambda s: s["totals"]["queue_depth"])
        yield gauge("last_ledger", "Latest ledger seen", lambda s: s["totals"]["last_ledger"])
        yield _restarts(shards)
        yield gauge("rss_bytes", "Worker resident memory", lambda s: s["rss_bytes"])
        yield gauge("cpu_percent", "Worker CPU use", lambda s: s["cpu_percent"])
        yield gauge(
            "heartbeat_age_seconds",
            "Seconds since the worker's last message",
            lambda s: s["heartbeat_age_s"],
        )
        yield gauge(
            "last_cycle_age_seconds",
            "Seconds since the last cycle report",
            lambda s: (s["last_cycle"] or {}).get("age_s"),
        )
        state = GaugeMetricFamily(
            "sorotask_shard_state", "1 for the shard's current state", labels=["shard", "state"]
        )
        for s in shards:
            for st in STATES:
                state.add_metric([s["name"], st], 1.0 if s["state"] == st else 0.0)
        yield state


def _restarts(shards: list[dict[str, Any]]) -> CounterMetricFamily:
    m = CounterMetricFamily("sorotask_restarts", "Worker restarts", labels=["shard"])
    for s in shards:
        m.add_metric([s["name"]], s["restarts"])
    return m


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, doc: Any) -> None:
        self._send(code, orjson.dumps(doc, option=orjson.OPT_INDENT_2), "application/json")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        arb = self.server.arbiter
        try:
            if path == "/status":
                self._json(200, arb.status())
            elif path == "/health":
                ok, reasons = arb.health()
                self._json(200 if ok else 503, {"healthy": ok, "reasons": reasons})
            elif path == "/metrics":
                self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
            elif path == "/":
                self._json(200, {"endpoints": ["/status", "/health", "/metrics"]})
            else:
                self._json(404, {"error": "not found"})
        except Exception as exc:
            logger.opt(exception=exc).error("status server error on {}", path)
            self._json(500, {"error": "internal error"})

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("status http: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    arbiter: Arbiter
    registry: CollectorRegistry


class StatusServer:
    """The status HTTP server on its own thread."""

    def __init__(self, arbiter: Arbiter, host: str, port: int) -> None:
        self.httpd = _Server((host, port), _Handler)
        self.httpd.arbiter = arbiter
        self.httpd.registry = CollectorRegistry(auto_describe=False)
        self.httpd.registry.register(ShardCollector(arbiter))
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            daemon=True,
            name="status-http",
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
