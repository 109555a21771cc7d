"""A single ``network.rpc_url`` with an API key in its path and its query, against a real
supervisor and its real keeper: the key is in no log line, pipe message, status document,
metric or command output. The RPC on 127.0.0.1 answers every request with a redirect to
itself, so the keeper's start-up checks fail with a transport error that names the whole URL
(aiohttp's ``TooManyRedirects``), which is what must be cleaned."""

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


class _RedirectLoop(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(308)
        self.send_header("Location", self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirect_loop() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RedirectLoop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_key_in_a_single_rpc_url_is_nowhere(tmp_path: Path, redirect_loop: str) -> None:
    url = f"{redirect_loop}/v2/{PATH_KEY}?apikey={QUERY_KEY}"
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
    assert f"{redirect_loop}/v2/***" in check.stdout  # the RPC is shown, without its key

    shard_log = tmp_path / "logs" / "s1.log"
    sv = Supervisor(cfg, env)
    shown: list[str] = [check.stdout, check.stderr]
    try:
        sv.wait_url()
        # the keeper's start-up checks meet the redirect loop and log the transport error
        wait_for(
            lambda: shard_log.exists() and "TooManyRedirects" in shard_log.read_text(),
            30,
            interval=0.1,
            what="the transport error in the shard's log",
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
    assert f"{redirect_loop}/v2/***" in shard_log.read_text()  # the error shows the label
