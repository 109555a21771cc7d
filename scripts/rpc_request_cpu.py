"""CPU of one RPC request on the client side (issue 12: the workers' CPU at 1M).

    .venv/bin/python scripts/rpc_request_cpu.py [REQUESTS]      # default: 3000

Starts a small JSON-RPC server on 127.0.0.1 in another process (its CPU is not counted: it
answers ``getLatestLedger``-sized results with a ``Content-Length``, as the devnet does), then
makes REQUESTS sequential calls through :class:`shard_worker.rpc.RpcClient` (aiohttp, then the
lean ``wire``) and, for comparison, through a bare ``aiohttp.ClientSession`` POST. Prints the
client process's CPU (user + system) a request, in microseconds: the median of five rounds.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

_SERVER = r"""
import asyncio, sys
import orjson

RESULT = {"id": "a" * 64, "protocolVersion": 22, "sequence": 123456}


class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            body, self.buf = rest[:length], rest[length:]
            req = orjson.loads(body)
            out = orjson.dumps({"jsonrpc": "2.0", "id": req["id"], "result": RESULT})
            self.t.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(out)).encode() + b"\r\n\r\n" + out
            )


async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> float:
    return time.process_time()


async def _rounds(url: str, n: int) -> dict[str, float]:
    import aiohttp

    from shard_worker.rpc import RpcClient

    figures: dict[str, float] = {}
    rpc = RpcClient(url, transport="aiohttp")
    wire = RpcClient(url, transport="wire")
    session = aiohttp.ClientSession()
    try:

        async def client_call() -> None:
            await rpc.call("getLatestLedger", hedge=False)

        async def wire_call() -> None:
            await wire.call("getLatestLedger", hedge=False)

        async def bare_post() -> None:
            async with session.post(url, data=b'{"jsonrpc":"2.0","id":1,"method":"m"}') as r:
                await r.read()

        ways = (
            ("RpcClient.call, aiohttp", client_call),
            ("RpcClient.call, wire", wire_call),
            ("bare aiohttp POST", bare_post),
        )
        for _, one in ways:
            for _ in range(200):  # warm: connections, caches
                await one()
        rounds: dict[str, list[float]] = {name: [] for name, _ in ways}
        for _ in range(5):  # interleaved, so a busy moment of the machine hits each alike
            for name, one in ways:
                start = _cpu()
                for _ in range(n):
                    await one()
                rounds[name].append((_cpu() - start) / n * 1e6)
        figures = {name: sorted(r)[len(r) // 2] for name, r in rounds.items()}
    finally:
        await rpc.aclose()
        await wire.aclose()
        await session.close()
    return figures


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        time.sleep(0.1)
        figures = asyncio.run(_rounds(f"http://127.0.0.1:{port}", n))
    finally:
        server.terminate()
        server.wait(timeout=10)
    for name, us in figures.items():
        print(f"{name:24s} {us:7.1f} us of client CPU a request ({n} requests, median of 5)")


if __name__ == "__main__":
    main()
