"""``sorotask chaos --endpoint-faults``: the soak with several RPC endpoints (issue 14).

The devnet serves one chain on four ports and every shard gets all four as
``network.rpc_urls``. For ``duration`` s: replica 2 lags :data:`LAG_LEDGERS` ledgers, replica 3
answers half of its requests HTTP 429 with ``Retry-After: 1``, and a third of the way in replica
1 goes down (every connection dropped unanswered); replica 0 stays healthy (the soak's own
sampling uses it). Then ``quiet_s`` s calm. Judged as ``--hostile`` is (the devnet's record:
lateness percentiles of repeat executions, zero wasted, doubled and never-executed windows) but
against :data:`ENDPOINT_TARGETS`: a failing endpoint may cost at most one ledger. The report
adds each endpoint's figures as the shards saw them (/status) and as the devnet counted them.
"""

from __future__ import annotations

import time
from typing import Any

from sorotask.chaos.analysis import Cause, LedgerClock, TaskSeed
from sorotask.chaos.hostile import HostileSoak
from sorotask.chaos.params import ChaosParams, hostile_params
from sorotask.chaos.report import say
from sorotask.chaos.soak import Soak, watch

__all__ = ["ENDPOINT_TARGETS", "EndpointSoak", "endpoint_params", "run_endpoint_faults"]

REPLICAS = 4
LAG_LEDGERS = 5
DOWN, LAGGING, THROTTLED = 1, 2, 3
#: the faults per replica while they are on (``devnet_setFaults``)
THROTTLE = {"http_429_rate": 0.5, "retry_after_s": 1}
DOWN_FAULT = {"drop_rate": 1.0}
#: lateness of repeat executions (ledgers past the due time): the healthy figure is one
#: ledger (due in ledger N, executed in N + 1); a failing endpoint may add at most one
ENDPOINT_TARGETS: dict[str, int] = {"p99": 2, "max": 2}


def endpoint_params(**overrides: Any) -> ChaosParams:
    """``--hostile``'s workload (4 shards x 5 source accounts, 120 tasks due every 12
    ledgers) on four endpoints, with the endpoint faults instead of a fault mix."""
    p = hostile_params(**overrides)
    p.mix = {}
    p.replicas = REPLICAS
    return p


def run_endpoint_faults(p: ChaosParams, *, quiet: bool = False) -> dict[str, Any]:
    return EndpointSoak(p, quiet=quiet).run()


class EndpointSoak(HostileSoak):
    """A soak whose chaos is endpoint faults (see the module docstring)."""

    def __init__(self, p: ChaosParams, *, quiet: bool = False) -> None:
        if p.replicas < REPLICAS:
            raise ValueError(f"endpoint faults need {REPLICAS} devnet replicas")
        super().__init__(p, quiet=quiet)
        self.report["mode"] = "endpoints"
        self.during: dict[str, list[dict[str, Any]]] = {}

    def _chaos(self, devnet: Any) -> None:
        p = self.p
        proc, monkey, sampler = self.proc, self.monkey, self.sampler
        assert proc is not None and monkey is not None and sampler is not None
        t0 = time.monotonic()
        faults_end = t0 + p.duration
        down_at = t0 + p.duration / 3
        run_end = faults_end + p.quiet_s
        start = sampler.sample() or self.clock.seq0
        devnet.set_lag(LAG_LEDGERS, replica=LAGGING)
        devnet.set_faults(replica=THROTTLED, **THROTTLE)
        say(
            self.quiet,
            f"endpoint faults on at ledger {start}: replica {LAGGING} lags {LAG_LEDGERS} "
            f"ledgers, replica {THROTTLED} throttled {THROTTLE}",
        )
        down: int | None = None
        on = True
        for now in watch(run_end, proc, monkey, self.violations):
            if on and down is None and now >= down_at:
                devnet.set_faults(replica=DOWN, **DOWN_FAULT)
                down = sampler.sample() or start
                say(self.quiet, f"replica {DOWN} down at ledger {down}")
            if on and now >= faults_end:
                on = False
                self._snapshot()
                self._faults_off(devnet, start, down)
        if on:
            self._snapshot()
            self._faults_off(devnet, start, down)

    def _snapshot(self) -> None:
        """The endpoints as the shards see them with every fault on."""
        assert self.watcher is not None
        self.watcher.poll_once()
        self.during = _endpoint_figures(self.watcher.latest())

    def _faults_off(self, devnet: Any, start: int, down: int | None) -> None:
        assert self.sampler is not None
        for replica in range(1, REPLICAS):
            devnet.set_faults(replica=replica)
            devnet.set_lag(0, replica=replica)
        end = self.sampler.sample() or start
        self.mix_window = (start, end)
        self.causes.append(Cause("fault", None, start, end, "endpoint faults"))
        self.fault_log.append(
            {
                "fault": "endpoints",
                "start_ledger": start,
                "replica_down_ledger": down,
                "end_ledger": end,
            }
        )
        say(self.quiet, f"endpoint faults off at ledger {end}; calm for {self.p.quiet_s:g} s")

    def _judge(
        self,
        devnet: Any,
        clock: LedgerClock,
        seeds: list[TaskSeed],
        final_doc: dict[str, Any] | None,
        running_ledger: int,
        end_ledger: int,
        status_counts: dict[str, Any],
    ) -> None:
        Soak._judge(
            self, devnet, clock, seeds, final_doc, running_ledger, end_ledger, status_counts
        )
        lat, figures = self._judge_lateness(
            clock,
            seeds,
            (running_ledger, end_ledger),
            ENDPOINT_TARGETS,
            ENDPOINT_TARGETS["max"] + 2,
        )
        self.report["hostile"] = {
            "mix": {
                f"replica {LAGGING}": {"lag_ledgers": LAG_LEDGERS},
                f"replica {THROTTLED}": THROTTLE,
                f"replica {DOWN}": {**DOWN_FAULT, "from": "a third of the way in"},
            },
            "kill_every": self.p.kill_every,
            "lateness": lat,
            "targets": figures,
        }
        self.report["endpoints"] = {
            "during_faults": self.during,
            "shards": _endpoint_figures(final_doc),
            "devnet_requests": [
                devnet.rpc("devnet_stats", replica=r).get("replica", {}).get("requests")
                for r in range(REPLICAS)
            ],
        }
        if not self.during:
            self.violations.append("no shard reported endpoint figures during the faults")
        for shard, eps in self.during.items():
            self.violations += [f"shard {shard}: {v}" for v in _state_violations(eps)]


def _state_violations(eps: list[dict[str, Any]]) -> list[str]:
    """What the shard's figures during the faults should show: the healthy endpoint up, the
    one down open or demoted, the lagging one demoted for its lag, 429s counted on the
    throttled one (between its Retry-After waits it may be up)."""
    if len(eps) != REPLICAS:
        return [f"{len(eps)} endpoints reported, not {REPLICAS}"]
    out = []
    if eps[0]["state"] != "up":
        out.append(f"healthy endpoint {eps[0]['state']} {eps[0]['reasons']}")
    if eps[DOWN]["state"] == "up":
        out.append("the endpoint that is down shows up")
    if "lagging" not in (eps[LAGGING]["reasons"] or []):
        out.append(f"the lagging endpoint shows {eps[LAGGING]['state']} {eps[LAGGING]['reasons']}")
    if not (eps[THROTTLED]["errors"] or {}).get("http_429"):
        out.append("no 429 counted on the throttled endpoint")
    return out


def _endpoint_figures(doc: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """Each shard's endpoints as /status showed them at the end (label, state, figures)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in (doc or {}).get("shards", []):
        eps = (s.get("endpoints") or {}).get("endpoints") or []
        out[s["name"]] = [
            {
                k: e.get(k)
                for k in (
                    "endpoint",
                    "state",
                    "reasons",
                    "requests",
                    "errors",
                    "lag_ledgers",
                    "breaker_opens",
                )
            }
            for e in eps
        ]
    return out
