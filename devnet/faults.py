"""Injected faults (``devnet_setFaults``): latency, errors, 503s, dropped connections, and
transactions that are accepted but never applied."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any


class FaultParamError(ValueError):
    pass


_RATES = ("error_rate", "http_503_rate", "drop_rate", "try_again_later_rate", "never_apply_rate")


@dataclass(slots=True)
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    #: JSON-RPC -32603 "internal error" instead of an answer
    error_rate: float = 0.0
    #: HTTP 503 with an empty body (stellar-rpc's overload answer)
    http_503_rate: float = 0.0
    #: close the connection without answering
    drop_rate: float = 0.0
    #: sendTransaction answers TRY_AGAIN_LATER
    try_again_later_rate: float = 0.0
    #: sendTransaction answers PENDING but the transaction is silently dropped
    never_apply_rate: float = 0.0
    #: restrict the faults to these methods (None: every non-devnet_ method)
    methods: frozenset[str] | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise FaultParamError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        out = cls()
        for name in ("latency_ms", "jitter_ms", *_RATES):
            if name in params and params[name] is not None:
                value = params[name]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise FaultParamError(f"{name} must be a number")
                if value < 0 or (name in _RATES and value > 1):
                    raise FaultParamError(f"{name} out of range")
                setattr(out, name, float(value))
        methods = params.get("methods")
        if methods is not None:
            if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
                raise FaultParamError("methods must be a list of method names")
            out.methods = frozenset(methods)
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = sorted(self.methods) if self.methods is not None else None
        return d

    def applies(self, method: str) -> bool:
        if method.startswith("devnet_"):
            return False
        return self.methods is None or method in self.methods

    def delay_s(self) -> float:
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        jitter = random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000.0

    @staticmethod
    def roll(rate: float) -> bool:
        return rate > 0 and random.random() < rate
