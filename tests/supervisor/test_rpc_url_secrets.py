"""A single ``network.rpc_url`` with an API key in its path and its query, against a real
supervisor and its real keeper: the key is in no log line, pipe message, status document,
metric or command output. The RPC on 127.0.0.1 answers every request with a JSON-RPC error that
quotes the whole URL it was asked at (as a gateway refusing a key may), so the keeper's
start-up checks fail with a server's text that names the key, which is what must be cleaned."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.supervisor import (
    ROOT,
    Supervisor,
    base_config,
    keypairs,
    wait_for,
    write_yaml,
)

pytestmark = [pytest.mark.timeout(90)]

PATH_KEY = "9f3c0e5a41b2d7e8aa01c3d4e5f6"
QUERY_KEY = "qk-31337-secret"


class _EchoingRpc(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        host, port = self.server.server_address[:2]
        message = f"invalid API key for http://{host}:{port}{self.path}"
        answer = {"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32600, "message": message}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echoing_rpc() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingRpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_key_in_a_single_rpc_url_is_nowhere(tmp_path: Path, echoing_rpc: str) -> None:
    url = f"{echoing_rpc}/v2/{PATH_KEY}?apikey={QUERY_KEY}"
    doc = base_config(rpc_url=url)
    doc["shards"] = [{"name": "s1", "range": [1, 10], "secret_env": "KEEPER_1"}]
    cfg = write_yaml(tmp_path / "sorotask.yaml", doc)
    env = {"KEEPER_1": keypairs(1)[0].secret}

    check = subprocess.run(
        [sys.executable, "-m", "sorotask.cli", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
    )
    assert check.returncode == 0, check.stderr
    assert f"{echoing_rpc}/v2/***" in check.stdout  # the RPC is shown, without its key

    shard_log = tmp_path / "logs" / "s1.log"
    sv = Supervisor(cfg, env)
    shown: list[str] = [check.stdout, check.stderr]
    try:
        sv.wait_url()
        # the keeper's start-up checks are refused and log the server's words
        wait_for(
            lambda: shard_log.exists() and "invalid API key for" in shard_log.read_text(),
            30,
            interval=0.1,
            what="the server's error in the shard's log",
        )
        shown.append(json.dumps(sv.status()))
        shown += [str(sv.get(path)[1]) for path in ("/health", "/metrics")]
        sv.signal(signal.SIGTERM)
        sv.wait(30)
    finally:
        sv.kill_tree()
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and path != cfg:
            with contextlib.suppress(OSError):
                shown.append(path.read_bytes().decode(errors="replace"))
    text = "\n".join(shown)
    assert PATH_KEY not in text
    assert QUERY_KEY not in text
    assert f"{echoing_rpc}/v2/***" in shard_log.read_text()  # the error shows the label
