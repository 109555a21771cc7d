"""What one keeper shard is told to do, and how it reports back.

``WorkerSpec`` is plain JSON-safe data: the supervisor sends it to a worker over the pipe
as orjson bytes. It names *where* the secrets are (an environment variable or a file), never
the secrets themselves; the worker reads them in its own process.

``Reporter`` is the one interface through which a running keeper reports: in the foreground
(``sorotask worker``) it logs; under the supervisor it becomes pipe messages.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any, Literal, Protocol

from shard_worker.endpoint_config import shown_url
from sorotask_core.settings import WORKER
from sorotask_core.stats import CYCLE_FIELDS

_W = WORKER.defaults()

ReadMode = Literal["events", "ledger_entries", "simulate"]


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret key lives: exactly one of ``env`` or ``file``."""

    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    name: str
    #: may hold credentials (a key in its path or query): kept out of the repr; show
    #: :attr:`rpc_label`
    rpc_url: str = field(repr=False)
    network_passphrase: str
    contract_id: str
    #: where the keeper's secret seed is; None only in a dry run given ``public_key``
    secret: SecretRef | None
    #: inclusive task-id range; ``range_last`` None means open-ended (up to the Counter)
    range_first: int = 1
    range_last: int | None = None
    #: explicit id list (the seed's TASK_IDS); when set it is intersected with the range
    task_ids: tuple[int, ...] | None = None
    #: extra source accounts (channel accounts) for more than one transaction per ledger
    channel_secrets: tuple[SecretRef, ...] = ()
    #: ``network.rpc_urls``: several endpoints, each ``{url, weight, max_requests_per_s,
    #: headers_from_env, name}`` (:class:`shard_worker.endpoint_config.EndpointConfig`; its
    #: ``max_requests_per_s`` already this shard's share); empty: ``rpc_url`` alone
    rpc_endpoints: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    # the worker settings: each is declared once (type, default, bounds, doc) in
    # sorotask_core.settings.WORKER; tests/sorotask_core/test_settings.py checks these fields
    poll_interval_s: float = _W["poll_interval_s"]
    read_mode: ReadMode = _W["read_mode"]
    sweep_every_ledgers: int = _W["sweep_every_ledgers"]
    max_requests_per_s: float | None = _W["max_requests_per_s"]
    max_concurrent_reads: int = _W["max_concurrent_reads"]
    max_concurrent_executions: int = _W["max_concurrent_executions"]
    rpc_timeout_s: float = _W["rpc_timeout_s"]
    rpc_hedge_copies: int = _W["rpc_hedge_copies"]
    tx_timeout_s: int = _W["tx_timeout_s"]
    stop_grace_s: float = _W["stop_grace_s"]
    state_dir: str | None = _W["state_dir"]
    base_fee: int = _W["base_fee"]
    #: archived task entries (liveUntilLedgerSeq < latest ledger): protocol 23 restores them
    #: automatically inside a simulated invocation, so by default they are executed like any
    #: other due task (the restore is paid in the resource fee); False skips them ("archived")
    execute_archived: bool = _W["execute_archived"]
    fee_strategy: str = _W["fee_strategy"]
    fee_percentile: int = _W["fee_percentile"]
    fee_floor: int = _W["fee_floor"]
    fee_max_inclusion: int = _W["fee_max_inclusion"]
    fee_max_total: int = _W["fee_max_total"]
    fee_resource_margin: float = _W["fee_resource_margin"]
    fee_refresh_ledgers: int = _W["fee_refresh_ledgers"]
    fee_max_escalations: int = _W["fee_max_escalations"]
    min_fee_balance: int = _W["min_fee_balance"]
    balance_refresh_ledgers: int = _W["balance_refresh_ledgers"]
    confirm_poll_s: float = _W["confirm_poll_s"]
    http_client: str = _W["http_client"]
    max_lag_ledgers: int = _W["max_lag_ledgers"]
    #: the keeper's public key (``G...``): a dry run needs nothing more
    public_key: str | None = None
    #: read, classify and simulate, never sign or send (``sorotask run --dry-run``)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def rpc_label(self) -> str:
        """How the shard's RPC is shown (logs, errors): endpoint labels, never credentials."""
        urls = [e.get("name") or e["url"] for e in self.rpc_endpoints] or [self.rpc_url]
        return ", ".join(
            u if not u.startswith(("http://", "https://")) else shown_url(u) for u in urls
        )

    @property
    def id_selection(self) -> str:
        """The shard's ids in a few characters (``first-last``, ``first-`` when open-ended, and
        a digest of the explicit id list): state saved for other ids is not this shard's."""
        label = f"{self.range_first}-{'' if self.range_last is None else self.range_last}"
        if self.task_ids is None:
            return label
        listed = ",".join(str(i) for i in sorted(set(self.task_ids)))
        return f"{label}:{hashlib.sha256(listed.encode()).hexdigest()[:16]}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown WorkerSpec fields: {', '.join(sorted(unknown))}")
        d = dict(data)
        d["secret"] = SecretRef(**d["secret"]) if d.get("secret") is not None else None
        d["channel_secrets"] = tuple(SecretRef(**s) for s in d.get("channel_secrets", ()))
        d["rpc_endpoints"] = tuple(dict(e) for e in d.get("rpc_endpoints", ()))
        if d.get("task_ids") is not None:
            d["task_ids"] = tuple(int(i) for i in d["task_ids"])
        return cls(**d)


def _cycle_stats_to_dict(self: Any) -> dict[str, Any]:
    return asdict(self)


#: One poll cycle's statistics: a dataclass with one attribute per field declared in
#: :data:`sorotask_core.stats.CYCLE_FIELDS` (the keeper counts with ``stats.executed += 1``).
CycleStats = make_dataclass(
    "CycleStats",
    [f.dataclass_field() for f in CYCLE_FIELDS],
    slots=True,
    namespace={
        "__module__": __name__,
        "__doc__": "One poll cycle's statistics (fields: sorotask_core.stats.CYCLE_FIELDS).",
        "to_dict": _cycle_stats_to_dict,
    },
)


class Reporter(Protocol):
    """How a keeper reports. Every method must be cheap and must not raise. A reporter may
    say how often it needs :meth:`heartbeat` with a ``heartbeat_s`` attribute (seconds; the
    supervisor's pipe reporter does)."""

    def hello(self, pid: int, keeper_public_key: str, channel_public_keys: list[str]) -> None: ...

    def heartbeat(self) -> None: ...

    def cycle(self, stats: CycleStats) -> None: ...

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """Task events: kind in executed, failed, not_sent, read_error, tx_error, ..."""

    def fatal(self, code: int, message: str) -> None: ...

    def goodbye(self, final: dict[str, Any]) -> None: ...
