"""An in-process stand-in for the RPC client and the reporter, for the pure-logic tests of the
keeper's roles (no network, no process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shard_worker.hedge import Race, one_copy


class FakeRpc:
    """Answers each method from a script (a list, consumed in order; an exception in the list
    is raised); records the calls and the errors the caller noted."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.noted: list[str] = []
        self.calls: list[tuple[str, dict[str, Any] | None]] = []

    async def call(self, method: str, params: dict[str, Any] | None = None, **_kw: Any) -> Any:
        self.calls.append((method, params))
        answer = self.script[method].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def copies(
        self, method: str, params: dict[str, Any], judge: Callable[[Any], str], **_kw: Any
    ) -> Race:
        """One copy (no hedging), from the script like :meth:`call`."""
        return await one_copy(lambda: self.call(method, params), judge)

    def note_error(self, method: str) -> None:
        self.noted.append(method)


class NullReporter:
    """Keeps the events it is told; everything else is ignored."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == kind]
