"""Bad RPC answers between the real keeper and a real devnet (a mutating proxy in between):
a ledger that goes backwards, huge bodies, invalid or truncated XDR and wrong types in
simulation results, garbage send statuses. The keeper survives, counts the errors, executes
every due task exactly once, and every transaction it sends carries exactly the resource data,
fee and a time bound from a genuine answer (checked on the wire, and in the devnet's record).

``tests/shard_worker/test_sw_bad_rpc_devnet.py`` covers malformed JSON, HTML bodies, 502s,
wrong types in getLatestLedger and an undecodable task entry; these add what it does not."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from stellar_sdk import TransactionEnvelope
from stellar_sdk import xdr as sx

from devnet.process import DevnetProcess
from shard_worker.keeper import run_keeper
from sorotask_core.exitcodes import ExitCode
from tests.support.keeper import Keys, RecordingReporter, make_spec
from tests.support.rpc_proxy import serve_rpc_proxy

pytestmark = pytest.mark.timeout(90)

LONG = 10**7
BASE_FEE = 100

Pre = Callable[[str, int, dict[str, Any]], web.Response | None]
Post = Callable[[str, int, dict[str, Any]], bool]


class MutatingProxy:
    """Forwards JSON-RPC to the devnet; ``pre`` may answer instead, ``post`` may change the
    answer (returns True when it did). Records genuine simulations and every envelope sent."""

    def __init__(self, upstream: str, passphrase: str, pre: Pre | None, post: Post | None) -> None:
        self.upstream = upstream
        self.passphrase = passphrase
        self.pre = pre
        self.post = post
        self.counts: dict[str, itertools.count[int]] = {}
        self.client = httpx.AsyncClient(timeout=30)
        self.genuine: dict[str, int] = {}  # transactionData -> minResourceFee
        self.latest_close = 0
        self.sent: list[tuple[str, int]] = []  # (envelope, real latest close time at send)
        self.mutated = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw)
        method = body.get("method", "")
        n = next(self.counts.setdefault(method, itertools.count(1)))
        if self.pre is not None:
            early = self.pre(method, n, body)
            if early is not None:
                self.mutated += 1
                return early
        if method == "sendTransaction":
            self.sent.append((body["params"]["transaction"], self.latest_close))
        resp = await self.client.post(
            self.upstream, content=raw, headers={"content-type": "application/json"}
        )
        data = orjson.loads(resp.content)
        result = data.get("result")
        if isinstance(result, dict):
            if method == "getLatestLedger":
                self.latest_close = max(self.latest_close, int(result["closeTime"]))
            if method == "simulateTransaction" and isinstance(result.get("transactionData"), str):
                self.genuine[result["transactionData"]] = int(result["minResourceFee"])
        if self.post is not None and self.post(method, n, data):
            self.mutated += 1
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    @staticmethod
    def _strip(data_b64: str) -> str:
        """A SorobanTransactionData with its resource fee zeroed."""
        data = sx.SorobanTransactionData.from_xdr(data_b64)
        data.resource_fee = sx.Int64(0)
        return data.to_xdr()

    def check_sent(self) -> None:
        """Every envelope sent carries a genuine simulation's data and fee, and a live bound."""
        for envelope, close in self.sent:
            try:
                te = TransactionEnvelope.from_xdr(envelope, self.passphrase)
            except Exception as exc:
                raise AssertionError(f"sent an envelope that does not decode: {exc}") from None
            tx = te.transaction
            assert tx.soroban_data is not None
            # the resources are a genuine simulation's; the declared resource fee is its
            # minResourceFee plus the default 15 % margin (issue 13), and the rest of the fee
            # the inclusion bid (the stats strategy: the network's minimum, + 1 once getFeeStats
            # shows the minimum paid)
            declared = int(tx.soroban_data.resource_fee.int64)
            tx.soroban_data.resource_fee = sx.Int64(0)
            stripped = tx.soroban_data.to_xdr()
            matches = [m for d, m in self.genuine.items() if self._strip(d) == stripped]
            assert matches, "sent a transaction with resource data never simulated"
            assert any(declared == m + -(-m * 15 // 100) for m in matches), "resource fee"
            assert tx.fee - declared in (BASE_FEE, BASE_FEE + 1), "fee not from a simulation"
            assert tx.preconditions is not None and tx.preconditions.time_bounds is not None
            assert tx.preconditions.time_bounds.max_time > close, "time bound already passed"


def run_through(
    dn: DevnetProcess,
    keys: Keys,
    pre: Pre | None = None,
    post: Post | None = None,
    tasks: int = 4,
    sends: int | None = None,
    **spec_kw: Any,
) -> tuple[int, RecordingReporter, MutatingProxy, list[int], dict[str, Any]]:
    """Run a keeper through a proxy until every task ran (or ``sends`` were sent), 15 s max."""
    _, ref = keys.new()
    first, last = dn.seed_tasks(count=tasks, interval=LONG)
    ids = list(range(first, last + 1))
    proxy = MutatingProxy(dn.info.rpc_url, dn.info.network_passphrase, pre, post)
    rep = RecordingReporter()
    stats0 = dn.stats()

    async def go() -> int:
        async with serve_rpc_proxy(proxy.handle) as url:
            spec = make_spec(
                dn,
                ref,
                rpc_url=url,
                range_first=first,
                range_last=last,
                base_fee=BASE_FEE,
                **spec_kw,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(run_keeper(spec, rep, stop))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not task.done():
                if sends is not None and len(proxy.sent) >= sends:
                    break
                if len(await asyncio.to_thread(dn.executions, ids)) >= len(ids):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.6)  # more cycles: nothing may run twice
            stop.set()
            try:
                return await asyncio.wait_for(task, 20)
            finally:
                await proxy.client.aclose()

    code = asyncio.run(go())
    stats1 = dn.stats()
    delta = {
        k: stats1[k] - stats0[k]
        for k in ("tx_applied", "tx_failed", "tx_rejected", "tx_refused_copies")
    }
    return code, rep, proxy, ids, delta


def assert_exactly_once_nothing_wasted(
    dn: DevnetProcess, ids: list[int], delta: dict[str, Any]
) -> None:
    execs = dn.executions(ids)
    assert sorted(e["task_id"] for e in execs) == ids
    assert {e["effect"] for e in execs} == {"executed"}
    assert delta["tx_failed"] == 0 and delta["tx_rejected"] == 0, delta
    # a resend after a lost answer may meet its first copy applied by a close in between: core
    # refuses the copy (txBAD_SEQ, no fee); at most one such copy an execution
    assert delta["tx_refused_copies"] <= len(ids), delta


def errors_counted(rep: RecordingReporter) -> int:
    return sum(sum(c.rpc_errors.values()) for c in rep.cycles) + sum(
        1 for c in rep.cycles if c.cycle_error and c.cycle_error != "interrupted by stop"
    )


def _reply(body: dict[str, Any], result: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps({"jsonrpc": "2.0", "id": body.get("id"), "result": result}),
        content_type="application/json",
    )


def stale_ledger_every(devnet: DevnetProcess, every: int) -> tuple[Pre, dict[str, Any]]:
    """A ``pre`` answering every ``every``-th getLatestLedger with a ledger 40 back."""
    stale: dict[str, Any] = {}

    def pre(method: str, n: int, body: dict[str, Any]) -> web.Response | None:
        if method != "getLatestLedger":
            return None
        if not stale:
            latest = devnet.rpc("getLatestLedger")
            stale.update(
                sequence=int(latest["sequence"]) - 40,
                closeTime=str(int(latest["closeTime"]) - 200),  # a string, as stellar-rpc
            )
        if n % every == 0:  # a lagging RPC node behind a load balancer
            return _reply(body, dict(devnet.rpc("getLatestLedger"), **stale))
        return None

    return pre, stale


class TestLedgerGoesBackwards:
    def test_stale_ledger_is_counted_and_nothing_runs_twice_or_wastes_a_fee(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        # the cycle's own getLatestLedger is ledger_entries mode's (events mode learns the
        # ledger from getEvents; its executions' time bounds are the test below); every
        # other answer stale: the executions take their time bound from the ledger the loop
        # saw, so the cycles' own requests are most of them
        pre, _ = stale_ledger_every(devnet, 2)
        code, rep, proxy, ids, _delta = run_through(
            devnet, keys, pre=pre, read_mode="ledger_entries"
        )
        assert code == ExitCode.OK and not rep.fatals
        assert proxy.mutated >= 3
        execs = devnet.executions(ids)
        assert sorted(e["task_id"] for e in execs) == ids
        assert {e["effect"] for e in execs} == {"executed"}
        assert any("backwards" in (c.cycle_error or "") for c in rep.cycles)

    def test_stale_ledger_never_sets_a_transactions_time_bound(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        pre, _ = stale_ledger_every(devnet, 2)
        code, rep, proxy, _ids, delta = run_through(devnet, keys, pre=pre, tasks=8, sends=6)
        assert code == ExitCode.OK and not rep.fatals
        assert delta["tx_rejected"] == 0, delta
        proxy.check_sent()


class TestHugeBodies:
    def test_oversized_answers_are_refused_counted_and_survived(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        huge = b'{"jsonrpc": "2.0", "id": 1, "result": {"entries": [' + b" " * (33 << 20) + b"]}}"

        def pre(method: str, n: int, body: dict[str, Any]) -> web.Response | None:
            if method == "getLedgerEntries" and n in (3, 4, 9):
                return web.Response(body=huge, content_type="application/json")
            return None

        code, rep, proxy, ids, delta = run_through(devnet, keys, pre=pre)
        assert code == ExitCode.OK and not rep.fatals
        assert proxy.mutated == 3
        assert_exactly_once_nothing_wasted(devnet, ids, delta)
        assert errors_counted(rep) >= 1
        proxy.check_sent()


def _truncate_b64(text: str) -> str:
    raw = base64.b64decode(text)
    return base64.b64encode(raw[: len(raw) // 2]).decode()


SIM_CORRUPTIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "truncated_transaction_data": lambda r: r.update(
        transactionData=_truncate_b64(r["transactionData"])
    ),
    "invalid_base64_transaction_data": lambda r: r.update(transactionData="!!not base64!!"),
    "transaction_data_wrong_type": lambda r: r.update(transactionData=12345),
    "transaction_data_missing": lambda r: r.pop("transactionData"),
    "min_resource_fee_wrong_type": lambda r: r.update(minResourceFee="a lot"),
    "min_resource_fee_missing": lambda r: r.pop("minResourceFee"),
    "results_wrong_type": lambda r: r.update(results="nope"),
    "auth_truncated": lambda r: r.update(
        results=[dict(r["results"][0], auth=[_truncate_b64(a) for a in r["results"][0]["auth"]])]
    ),
    "auth_not_base64": lambda r: r.update(results=[dict(r["results"][0], auth=["%%%"])]),
}


class TestBadSimulationAnswers:
    @pytest.mark.parametrize("kind", sorted(SIM_CORRUPTIONS))
    def test_corrupt_simulation_never_becomes_a_transaction(
        self, devnet: DevnetProcess, keys: Keys, kind: str
    ) -> None:
        corrupt = SIM_CORRUPTIONS[kind]

        def post(method: str, n: int, data: dict[str, Any]) -> bool:
            result = data.get("result")
            if method != "simulateTransaction" or not isinstance(result, dict):
                return False
            if "transactionData" not in result or n % 2 == 0:
                return False  # every other simulation answer is corrupted
            corrupt(result)
            return True

        code, rep, proxy, ids, delta = run_through(devnet, keys, post=post, tasks=3)
        assert code == ExitCode.OK and not rep.fatals
        assert proxy.mutated >= 1
        proxy.check_sent()
        assert_exactly_once_nothing_wasted(devnet, ids, delta)
        counted = rep.events_of("failed") + rep.events_of("tx_error")
        assert counted or errors_counted(rep), "the corrupt answer was not counted as an error"


class TestBadSendAnswers:
    @pytest.mark.parametrize("status", [42, "PENDNG"])
    def test_garbage_send_status_after_the_transaction_was_queued(
        self, devnet: DevnetProcess, keys: Keys, status: Any
    ) -> None:
        def post(method: str, n: int, data: dict[str, Any]) -> bool:
            result = data.get("result")
            if method != "sendTransaction" or n != 1 or not isinstance(result, dict):
                return False
            result["status"] = status  # the devnet did queue it; the answer is garbage
            return True

        code, rep, proxy, ids, delta = run_through(devnet, keys, post=post, tasks=3)
        assert code == ExitCode.OK and not rep.fatals
        assert proxy.mutated == 1
        proxy.check_sent()
        assert_exactly_once_nothing_wasted(devnet, ids, delta)
        executed = sum(c.executed for c in rep.cycles) + sum(
            g.get("executed", 0) - sum(c.executed for c in rep.cycles) for g in rep.goodbyes
        )
        assert executed == len(ids), "the keeper's count differs from the devnet's record"
