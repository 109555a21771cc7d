"""Injected faults (``devnet_setFaults``): latency, errors, overload answers, dropped connections,
and transactions that are accepted but never applied.

Every rate is a probability per request (0..1). ``per_method`` overrides any rate for one method,
e.g. ``{"sendTransaction": {"queue_full_rate": 0.5}}``; a method listed there is faulted even when
``methods`` does not name it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class FaultParamError(ValueError):
    pass


_RATES = (
    "error_rate",
    "http_503_rate",
    "http_429_rate",
    "queue_full_rate",
    "timeout_rate",
    "drop_rate",
    "drop_answer_rate",
    "try_again_later_rate",
    "never_apply_rate",
)
_NUMBERS = ("latency_ms", "jitter_ms", "retry_after_s", *_RATES)


@dataclass(slots=True)
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    #: JSON-RPC -32603 "internal error" instead of an answer
    error_rate: float = 0.0
    #: HTTP 503 with an empty body (stellar-rpc's HTTP-layer overload answer)
    http_503_rate: float = 0.0
    #: HTTP 429 with ``Retry-After: retry_after_s`` (a provider's rate limit in front of the RPC)
    http_429_rate: float = 0.0
    retry_after_s: float = 1.0
    #: JSON-RPC -32098 "rpc queue for M surpassed queue limit of N requests" (a full method queue)
    queue_full_rate: float = 0.0
    #: JSON-RPC -32001 "request exceeded processing limit threshold" (answered at once)
    timeout_rate: float = 0.0
    #: close the connection without answering
    drop_rate: float = 0.0
    #: run the request (e.g. queue the sent transaction), then close the connection unanswered
    drop_answer_rate: float = 0.0
    #: sendTransaction answers TRY_AGAIN_LATER
    try_again_later_rate: float = 0.0
    #: sendTransaction answers PENDING but the transaction is silently dropped
    never_apply_rate: float = 0.0
    #: restrict the faults to these methods (None: every non-devnet_ method)
    methods: frozenset[str] | None = None
    #: per-method rates that replace the global ones for that method
    per_method: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise FaultParamError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        out = cls()
        for name, value in _numbers(params, _NUMBERS).items():
            setattr(out, name, value)
        methods = params.get("methods")
        if methods is not None:
            if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
                raise FaultParamError("methods must be a list of method names")
            out.methods = frozenset(methods)
        per_method = params.get("per_method")
        if per_method is not None:
            if not isinstance(per_method, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in per_method.items()
            ):
                raise FaultParamError("per_method must map method names to {rate: value}")
            for method, rates in per_method.items():
                bad = set(rates) - set(_RATES)
                if bad:
                    raise FaultParamError(f"unknown per-method rates: {', '.join(sorted(bad))}")
                out.per_method[method] = _numbers(rates, _RATES)
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = sorted(self.methods) if self.methods is not None else None
        return d

    def applies(self, method: str) -> bool:
        if method.startswith("devnet_"):
            return False
        return self.methods is None or method in self.methods or method in self.per_method

    def rate(self, name: str, method: str) -> float:
        """The rate of fault ``name`` for ``method`` (0 when faults do not apply to it)."""
        if not self.applies(method):
            return 0.0
        special = self.per_method.get(method)
        if special is not None and name in special:
            return special[name]
        if self.methods is not None and method not in self.methods:
            return 0.0  # listed only in per_method: the global rates are not for it
        return float(getattr(self, name))

    def hit(self, name: str, method: str) -> bool:
        return Faults.roll(self.rate(name, method))

    def delay_s(self) -> float:
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        jitter = random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000.0

    @staticmethod
    def roll(rate: float) -> bool:
        return rate > 0 and random.random() < rate


def _numbers(params: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FaultParamError(f"{name} must be a number")
        too_big = (name in _RATES and value > 1) or (name == "retry_after_s" and value > 3600)
        if value < 0 or too_big:
            raise FaultParamError(f"{name} out of range")
        out[name] = float(value)
    return out
