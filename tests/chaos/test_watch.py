"""The chaos loop every soak shares (``sorotask.chaos.soak.watch``): the clock until the calm
end, the monkey ticked first, and an early stop with a violation when the supervisor exits
(pure: stand-in process and monkey, no devnet)."""

from __future__ import annotations

import inspect
import itertools
import time
from typing import Any

from sorotask.chaos.endpoints import EndpointSoak
from sorotask.chaos.hostile import HostileSoak
from sorotask.chaos.soak import Soak, watch


class _Proc:
    """``poll()`` is None until ``exit_after`` polls, then the exit code."""

    def __init__(self, exit_after: int | None = None, code: int = 3) -> None:
        self.polls = 0
        self.exit_after = exit_after
        self.returncode: int | None = None
        self.code = code

    def poll(self) -> int | None:
        self.polls += 1
        if self.exit_after is not None and self.polls > self.exit_after:
            self.returncode = self.code
        return self.returncode


class _Monkey:
    def __init__(self) -> None:
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1


def ticks(run_end: float, proc: Any, monkey: Any, violations: list[str]) -> list[float]:
    return list(itertools.islice(watch(run_end, proc, monkey, violations), 1000))


def test_the_loop_runs_until_the_calm_end_ticking_the_monkey_first() -> None:
    monkey, violations = _Monkey(), []
    start = time.monotonic()
    times = ticks(start + 0.2, _Proc(), monkey, violations)
    assert 2 <= len(times) <= 20  # a 20 ms step for 0.2 s
    assert times == sorted(times) and all(start <= t < start + 0.2 for t in times)
    assert monkey.ticks == len(times)
    assert violations == []


def test_a_supervisor_that_exits_ends_the_loop_with_a_violation() -> None:
    violations: list[str] = []
    times = ticks(time.monotonic() + 30, _Proc(exit_after=3, code=3), _Monkey(), violations)
    assert len(times) == 3
    assert violations == ["supervisor exited early with code 3"]


def test_every_soak_runs_its_chaos_through_the_one_loop() -> None:
    for cls in (Soak, HostileSoak, EndpointSoak):
        source = inspect.getsource(cls._chaos)
        assert "for now in watch(" in source and "while True" not in source
