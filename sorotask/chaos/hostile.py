"""``sorotask chaos --hostile``: the soak under one hostile fault mix (a busy public RPC:
:data:`~sorotask.chaos.params.HOSTILE_MIX`) for ``duration`` s, optionally with a SIGKILL of a
random worker every ``--kill-every`` s on top, then ``quiet_s`` s calm. Judged from the devnet's
record: lateness percentiles of the tasks' repeat executions (ledgers past the due time) against
:data:`~sorotask.chaos.params.HOSTILE_TARGETS`, and zero wasted, doubled and never-executed
windows; invariants 1 and 3-6 of :mod:`sorotask.chaos` hold as in any soak."""

from __future__ import annotations

import json
import time
from typing import Any

from sorotask.chaos.analysis import Cause, LedgerClock, TaskSeed
from sorotask.chaos.lateness import lateness, target_figures, target_violations
from sorotask.chaos.params import HOSTILE_TARGETS, ChaosParams
from sorotask.chaos.report import say
from sorotask.chaos.soak import Soak, watch


def run_hostile(p: ChaosParams, *, quiet: bool = False) -> dict[str, Any]:
    """Run the soak under ``p.mix`` and return the report (with a ``hostile`` section)."""
    return HostileSoak(p, quiet=quiet).run()


class HostileSoak(Soak):
    """A soak whose chaos is one fault mix for the whole run (and kills, when asked)."""

    judge_late_windows = False

    def __init__(self, p: ChaosParams, *, quiet: bool = False) -> None:
        if p.mix is None:
            raise ValueError("a hostile soak needs a fault mix (ChaosParams.mix)")
        super().__init__(p, quiet=quiet)
        self.report["mode"] = "hostile"
        self.mix_window: tuple[int, int] | None = None

    def _chaos(self, devnet: Any) -> None:
        """The mix for ``duration`` s (kills every ``kill_every`` s on top), then calm."""
        p, rng = self.p, self.rng
        proc, monkey, sampler = self.proc, self.monkey, self.sampler
        assert proc is not None and monkey is not None and sampler is not None
        assert p.mix is not None
        t0 = time.monotonic()
        mix_end = t0 + p.duration
        run_end = mix_end + p.quiet_s
        next_kill = t0 + p.kill_every if p.kill_every > 0 else float("inf")
        devnet.set_faults(**p.mix)
        start = sampler.sample() or self.clock.seq0
        mixing = True
        say(self.quiet, f"hostile mix on at ledger {start} for {p.duration:g} s")
        for now in watch(run_end, proc, monkey, self.violations):
            if mixing and now >= mix_end:
                mixing = False
                self._mix_off(devnet, start)
            if mixing and now >= next_kill:
                monkey.act("kill")
                next_kill = now + p.kill_every * rng.uniform(0.7, 1.3)
        if mixing:
            self._mix_off(devnet, start)

    def _mix_off(self, devnet: Any, start: int) -> None:
        assert self.sampler is not None
        devnet.set_faults()
        end = self.sampler.sample() or start
        self.mix_window = (start, end)
        self.causes.append(Cause("fault", None, start, end, "hostile"))
        self.fault_log.append({"fault": "hostile", "start_ledger": start, "end_ledger": end})
        say(self.quiet, f"hostile mix off at ledger {end}; calm for {self.p.quiet_s:g} s")

    def _judge_lateness(
        self,
        clock: LedgerClock,
        seeds: list[TaskSeed],
        run: tuple[int, int],
        targets: dict[str, int],
        open_after: int,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The lateness over the mix's window (``run``, the running ledgers, without one) from
        the devnet's record, and its figures against ``targets`` (misses are violations)."""
        executions = json.loads((self.work / "devnet_executions.json").read_text())
        lat = lateness(
            seeds=seeds,
            executions=executions,
            clock=clock,
            window=self.mix_window or run,
            end_ledger=run[1],
            open_after=open_after,
        )
        ana = self.report["analysis"]
        figures = target_figures(
            lat,
            wasted=int(ana["wasted_total"]),
            doubled=len(ana["executed_twice_in_one_window"]),
            targets=targets,
        )
        self.violations += target_violations(figures)
        return lat, figures

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
        super()._judge(devnet, clock, seeds, final_doc, running_ledger, end_ledger, status_counts)
        p = self.p
        lat, figures = self._judge_lateness(
            clock, seeds, (running_ledger, end_ledger), HOSTILE_TARGETS, HOSTILE_TARGETS["max"]
        )
        stats = devnet.stats()
        self.report["hostile"] = {
            "mix": p.mix,
            "kill_every": p.kill_every,
            "lateness": lat,
            "targets": figures,
            "rpc_calls": stats.get("calls"),
            "rpc_requests": stats.get("requests"),
        }
