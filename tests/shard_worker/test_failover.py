"""Several RPC endpoints (issue 14) against real devnet replicas: one chain served on several
ports, each with its own faults and lag. The keeper runs in this process; what it did is
judged from the devnet's own record (executions, ledgers, requests per port)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections import Counter
from typing import Any

import pytest
from aiohttp import ClientSession, web

from devnet.process import DevnetProcess
from shard_worker.spec import WorkerSpec
from sorotask.chaos.analysis import LedgerClock
from sorotask_core.exitcodes import ExitCode
from tests.support.devnet import DevnetOptions
from tests.support.keeper import Keys, RecordingReporter, make_spec, run_until
from tests.support.rpc_proxy import serve_rpc_proxy

CLOSE_EVERY = 0.5
#: ledgers between two due times of a task
INTERVAL_LEDGERS = 6


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    return DevnetOptions(replicas=4, close_every=CLOSE_EVERY)


@pytest.fixture(autouse=True)
def _calm(devnet: DevnetProcess) -> Any:
    yield
    for r in range(4):
        devnet.set_faults(replica=r)
        devnet.set_lag(0, replica=r)


class EndpointReporter(RecordingReporter):
    """Also keeps the per-endpoint figures the keeper reports."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, Any]] = []

    def endpoints(self, figures: dict[str, Any]) -> None:
        with self.lock:
            self.figures.append(figures)

    def last(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {e["endpoint"]: e for e in self.figures[-1]["endpoints"]}


def endpoints(*urls: str, **extra: Any) -> tuple[dict[str, Any], ...]:
    return tuple({"url": u, **extra} for u in urls)


def dead_url() -> str:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def seed_recurring(dn: DevnetProcess, count: int) -> tuple[list[int], LedgerClock, dict[int, int]]:
    """``count`` tasks due every INTERVAL_LEDGERS ledgers, their first due times staggered
    over the next ledgers; returns ids, the ledger clock and each task's interval (s)."""
    latest = dn.rpc("getLatestLedger")
    seq0, t0 = int(latest["sequence"]), int(latest["closeTime"])
    second = dn.rpc("getLatestLedger")
    ls = 5
    if int(second["sequence"]) != seq0:
        ls = max(1, (int(second["closeTime"]) - t0) // (int(second["sequence"]) - seq0))
    clock = LedgerClock(seq0, t0, ls)
    interval = INTERVAL_LEDGERS * ls
    ids: list[int] = []
    for k in range(count):
        due = t0 + (4 + k % INTERVAL_LEDGERS) * ls
        first, _ = dn.seed_tasks(count=1, interval=interval, last_run=due - interval)
        ids.append(first)
    return ids, clock, dict.fromkeys(ids, interval)


def repeat_lateness(
    dn: DevnetProcess, ids: list[int], clock: LedgerClock, intervals: dict[int, int]
) -> tuple[list[int], list[dict[str, Any]]]:
    """Ledgers past the due time of every execution after a task's first one (the first
    includes the keeper's start), and the execution record."""
    execs = dn.executions(ids)
    by_task: dict[int, list[dict[str, Any]]] = {}
    for e in execs:
        by_task.setdefault(int(e["task_id"]), []).append(e)
    late: list[int] = []
    for task_id, done in by_task.items():
        done.sort(key=lambda e: e["ledger"])
        for before, e in itertools.pairwise(done):
            due = clock.first_ledger_at_or_after(int(before["timestamp"]) + intervals[task_id])
            late.append(int(e["ledger"]) - due)
    return late, execs


def p95(values: list[int]) -> int:
    s = sorted(values)
    return s[max(0, -(-95 * len(s) // 100) - 1)]


def run_window(
    dn: DevnetProcess,
    keys: Keys,
    eps: tuple[dict[str, Any], ...],
    seconds: float,
    during: Any = None,
) -> tuple[EndpointReporter, list[int], list[dict[str, Any]], int]:
    """One keeper on ``eps`` over fresh recurring tasks for ``seconds``; ``during(t)`` runs
    in a thread every 0.2 s (fault changes). Returns the reporter, the repeat lateness, the
    executions and the exit code."""
    spec, ids, clock, intervals = prepare(dn, keys, eps)
    rep = EndpointReporter()
    t0 = time.monotonic()

    def done() -> bool:
        if during is not None:
            during(time.monotonic() - t0)
        return False

    code = asyncio.run(run_until(spec, rep, done, limit_s=seconds))
    late, execs = repeat_lateness(dn, ids, clock, intervals)
    return rep, late, execs, code


def prepare(
    dn: DevnetProcess, keys: Keys, eps: tuple[dict[str, Any], ...]
) -> tuple[WorkerSpec, list[int], LedgerClock, dict[int, int]]:
    """A keeper with three channels on ``eps`` over 12 fresh recurring tasks."""
    _keeper, ref = keys.new()
    channels = tuple(keys.new()[1] for _ in range(3))
    ids, clock, intervals = seed_recurring(dn, 12)
    spec = make_spec(
        dn,
        ref,
        rpc_endpoints=eps,
        range_first=min(ids),
        range_last=max(ids),
        channel_secrets=channels,
        max_concurrent_executions=4,
        poll_interval_s=0.1,
        max_lag_ledgers=2,
    )
    return spec, ids, clock, intervals


def check_clean(execs: list[dict[str, Any]], rep: RecordingReporter, intervals_s: int) -> None:
    """Nothing wasted, nothing executed twice in a due window, no stale transaction."""
    assert Counter(e["effect"] for e in execs).keys() == {"executed"}, Counter(
        e["effect"] for e in execs
    )
    by_task: dict[int, list[int]] = {}
    for e in execs:
        by_task.setdefault(int(e["task_id"]), []).append(int(e["timestamp"]))
    for stamps in by_task.values():
        stamps.sort()
        assert all(b - a >= intervals_s for a, b in itertools.pairwise(stamps))
    assert not rep.events_of("tx_error"), rep.events_of("tx_error")[:3]
    assert not rep.fatals


class TestFailover:
    def test_dead_lagging_and_throttled_endpoints_cost_at_most_one_ledger(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        urls = devnet.info.rpc_urls
        # the baseline: four healthy endpoints
        base_rep, base_late, base_execs, code = run_window(devnet, keys, endpoints(*urls), 12.0)
        assert code == ExitCode.OK
        check_clean(base_execs, base_rep, INTERVAL_LEDGERS * 5)
        assert len(base_late) >= 12, base_late

        # replica 1 dies 3 s in, replica 2 lags 5 ledgers, replica 3 answers half of its
        # requests 429 with Retry-After: 1; replica 0 stays healthy
        devnet.set_lag(5, replica=2)
        devnet.set_faults(http_429_rate=0.5, retry_after_s=1, replica=3)
        killed: list[float] = []

        def kill(t: float) -> None:
            if t >= 3.0 and not killed:
                devnet.set_faults(drop_rate=1.0, replica=1)
                killed.append(t)

        rep, late, execs, code = run_window(devnet, keys, endpoints(*urls), 14.0, during=kill)
        assert code == ExitCode.OK and killed
        check_clean(execs, rep, INTERVAL_LEDGERS * 5)
        assert len(late) >= 12, late
        print(f"lateness (ledgers) baseline {Counter(base_late)} faults {Counter(late)}")
        # at most one ledger of extra delay (the 95th percentile and the worst case)
        assert p95(late) <= p95(base_late) + 1, (sorted(late), sorted(base_late))
        assert max(late) <= max(base_late) + 1, (sorted(late), sorted(base_late))

        figs = rep.last()
        labels = [u.rstrip("/") for u in urls]
        by = {label: figs[next(k for k in figs if k.rstrip("/") == label)] for label in labels}
        healthy, dead, lagging, throttled = (by[label] for label in labels)
        assert healthy["state"] == "up", healthy
        assert dead["state"] in ("open", "demoted") and dead["breaker_opens"] >= 1, dead
        assert sum(dead["errors"].get(k, 0) for k in ("transport", "timeout")) > 0, dead
        assert lagging["state"] == "demoted" and "lagging" in lagging["reasons"], lagging
        assert lagging["lag_ledgers"] >= 3, lagging
        assert throttled["errors"].get("http_429", 0) > 0, throttled
        assert throttled["breaker_opens"] == 0, throttled
        # reads were spread: every endpoint answered some before its fault
        assert all(e["requests"] > 0 for e in by.values())

    def test_an_endpoint_whose_process_dies_mid_run_costs_at_most_one_ledger(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        """Replica 1 behind a forwarding server in this process, shut down 3 s in: from then
        on its port refuses connections, as when an RPC process dies."""
        target = devnet.info.rpc_urls[1]

        async def forward(request: web.Request) -> web.Response:
            async with (
                ClientSession() as session,
                session.post(
                    target, data=await request.read(), headers={"content-type": "application/json"}
                ) as resp,
            ):
                return web.Response(
                    status=resp.status, body=await resp.read(), content_type="application/json"
                )

        rep = EndpointReporter()
        killed_at: list[float] = []

        async def scenario() -> tuple[int, str, list[int], list[dict[str, Any]]]:
            async with contextlib.AsyncExitStack() as stack:
                proxy = await stack.enter_async_context(serve_rpc_proxy(forward))
                urls = (devnet.info.rpc_urls[0], proxy, devnet.info.rpc_urls[2])
                spec, ids, clock, intervals = await asyncio.to_thread(
                    prepare, devnet, keys, endpoints(*urls)
                )

                async def kill() -> None:
                    await asyncio.sleep(3.0)
                    await stack.aclose()  # the listening socket and its connections close
                    killed_at.append(time.monotonic())

                killer = asyncio.create_task(kill())
                code = await run_until(spec, rep, lambda: False, limit_s=12.0)
                await killer
            late, execs = await asyncio.to_thread(repeat_lateness, devnet, ids, clock, intervals)
            return code, proxy, late, execs

        code, proxy, late, execs = asyncio.run(scenario())
        assert code == ExitCode.OK and killed_at
        check_clean(execs, rep, INTERVAL_LEDGERS * 5)
        assert len(late) >= 8, late
        # the healthy figure is 1 (due in ledger N, executed in N + 1): at most one more
        assert max(late) <= 2, sorted(late)
        dead = rep.last()[proxy]
        assert dead["state"] in ("open", "demoted") and dead["requests"] > 0, dead
        assert dead["errors"].get("transport", 0) + dead["errors"].get("timeout", 0) > 0, dead

    def test_an_endpoint_down_at_start_is_left_out_until_it_answers(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        eps = endpoints(devnet.info.rpc_urls[0], dead_url())
        rep, _late, execs, code = run_window(devnet, keys, eps, 8.0)
        assert code == ExitCode.OK
        check_clean(execs, rep, INTERVAL_LEDGERS * 5)
        assert execs
        figs = list(rep.figures[-1]["endpoints"])
        # its getNetwork probes failed: not verified, its breaker open
        assert figs[1]["state"] == "open" and "unverified" in figs[1]["reasons"], figs[1]
        assert figs[1]["requests"] >= 1  # getNetwork probes, nothing else
        assert figs[0]["state"] == "up"


class TestNetworkCheck:
    def test_an_endpoint_on_another_network_is_refused_at_start_by_name(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        async def other_network(request: web.Request) -> web.Response:
            body = await request.json()
            result = {"passphrase": "Other Net ; 2026", "protocolVersion": 23}
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

        _, ref = keys.new()
        rep = EndpointReporter()

        async def scenario() -> tuple[int, str]:
            async with serve_rpc_proxy(other_network) as url:
                eps = (
                    {"url": devnet.info.rpc_urls[0]},
                    {"url": url + "?apikey=hunter2", "weight": 2.0},
                )
                spec = make_spec(devnet, ref, rpc_endpoints=eps)
                return await run_until(spec, rep, lambda: bool(rep.fatals), limit_s=20), url

        code, url = asyncio.run(scenario())
        assert code == ExitCode.CONFIG
        assert len(rep.fatals) == 1
        message = rep.fatals[0][1]
        assert f"RPC endpoint {url} serves network 'Other Net ; 2026'" in message, message
        assert devnet.info.network_passphrase in message
        assert "hunter2" not in message
        assert not rep.cycles  # refused before any work


class TestBudgets:
    def test_requests_per_endpoint_stay_under_max_requests_per_s(
        self, devnet: DevnetProcess, keys: Keys
    ) -> None:
        # replicas 1-3: the test's own setup requests go to replica 0
        replicas = (1, 2, 3)
        urls = [devnet.info.rpc_urls[i] for i in replicas]
        rates = (4.0, 8.0, None)
        eps = tuple({"url": u, "max_requests_per_s": r} for u, r in zip(urls, rates, strict=True))
        before = [devnet.rpc("devnet_stats", replica=i)["replica"] for i in replicas]
        rep, _late, execs, code = run_window(devnet, keys, eps, 10.0)
        after = [devnet.rpc("devnet_stats", replica=i)["replica"] for i in replicas]
        assert code == ExitCode.OK
        check_clean(execs, rep, INTERVAL_LEDGERS * 5)
        assert execs
        for i, rate in enumerate(rates):
            seconds = {
                int(k): v - int(before[i]["per_second"].get(k, 0))
                for k, v in after[i]["per_second"].items()
            }
            seconds = {k: v for k, v in seconds.items() if v > 0}
            total = after[i]["requests"] - before[i]["requests"]
            if rate is None:
                assert total > 0
                continue
            span = max(seconds) - min(seconds) + 1
            print(f"endpoint {i} budget {rate}/s: {total} requests in {span} s: {seconds}")
            # a token bucket: a burst of one second's worth, then the rate
            assert total <= rate * (span + 1), (i, total, span, seconds)
            assert max(seconds.values()) <= 2 * rate, (i, seconds)
            # over any 3 s the mean is the rate (plus the one-second burst)
            for s in seconds:
                window = sum(seconds.get(s + k, 0) for k in range(3))
                assert window <= rate * 3 + rate, (i, s, seconds)
        # the budgeted endpoints were used up to their budgets, the rest spilled over
        assert after[2]["requests"] - before[2]["requests"] > 0
