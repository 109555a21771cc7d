"""HTTP status endpoint of the supervisor (stdlib ThreadingHTTPServer in a daemon thread).

* ``GET /status``  JSON: ``{supervisor, shards: [...], totals}``
* ``GET /metrics`` Prometheus text format (a private registry; one labelled series per shard)
* ``GET /health``  200 ``{"healthy": true, "reasons": [], "degraded": [...]}`` when every shard
  runs with a fresh cycle, else 503 with the reasons: liveness. A shard paused for low balance
  still cycles, so it is alive (a restart would fund nothing); it is listed in ``degraded``.
  ``GET /health?strict=1`` is 503 while any shard is degraded too.

The handlers ask a :class:`~supervisor.view.View` (which copies a registry snapshot); they
never call into the arbiter, so the main loop needs no lock for them.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson
from loguru import logger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from supervisor.view import View


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
        path, _, query = self.path.partition("?")
        path = path.rstrip("/") or "/"
        view = self.server.view
        try:
            if path == "/status":
                self._json(200, view.status())
            elif path == "/health":
                strict = parse_qs(query, keep_blank_values=True).get("strict", ["0"])[-1]
                doc = view.health(strict=strict.lower() not in ("0", "false", "no"))
                self._json(200 if doc["healthy"] else 503, doc)
            elif path == "/metrics":
                self._send(200, generate_latest(self.server.collectors), CONTENT_TYPE_LATEST)
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
    view: View
    collectors: CollectorRegistry


class StatusServer:
    """The status HTTP server on its own thread."""

    def __init__(self, view: View, host: str, port: int) -> None:
        self.httpd = _Server((host, port), _Handler)
        self.httpd.view = view
        self.httpd.collectors = CollectorRegistry(auto_describe=False)
        self.httpd.collectors.register(view)
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
