"""Every setting declared once: name, type, default, bounds and one line of doc.

The YAML validation (``supervisor/config``), the worker spec (``shard_worker.spec.WorkerSpec``),
the flags of ``sorotask worker`` and the README's configuration reference are all built from
the declarations below, and tests check each of them against these declarations. To add a
setting: declare it here; add the field to ``WorkerSpec`` (worker settings), or to
``SupervisorSettings`` / ``RestartPolicy`` (``supervisor/config/plan.py``); use it; add it with
its default to ``deploy/examples/sorotask.example.yaml``; then run
``python -m supervisor.config.reference --write`` to refresh the README tables.

Pure Python on purpose: the worker process imports this module, so it must stay light (no
pydantic, nothing else of ours).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: default of a setting that has none (it must be given)
REQUIRED: Any = object()

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"

_TYPE_WORDS = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting. ``type`` is bool, int, float (an int is accepted), str or list (its
    ``rule`` checks the items); a bool is never an int or a float."""

    name: str
    type: type
    default: Any
    doc: str
    #: bounds: value >= ge, value > gt, value < lt
    ge: float | None = None
    gt: float | None = None
    lt: float | None = None
    #: the only values allowed (strings)
    choices: tuple[str, ...] = ()
    #: choices match in any case; the value is kept upper-case
    upper: bool = False
    #: null is a value of its own (e.g. "never", "disabled", "derived")
    nullable: bool = False
    #: a word accepted besides values of ``type`` (host_index: "auto")
    word: str | None = None
    #: a further rule: returns the problem, or None
    rule: Callable[[Any], str | None] | None = None
    #: False: not a YAML key (a flag of ``sorotask worker`` only)
    yaml: bool = True
    #: the ``sorotask worker`` flag for this setting, and its metavar
    flag: str | None = None
    metavar: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def expected(self) -> str:
        """What a value must be, for "expected X, got Y" messages."""
        if self.type is str and not self.choices:
            what = "a non-empty string"
        elif self.type is list:
            what = "a non-empty list"
        else:
            what = _TYPE_WORDS[self.type]
        if self.word is not None:
            what += f" or {self.word!r}"
        return what

    def problem(self, value: Any) -> str | None:
        """The bounds, choices and rule of a value already of the right type (None: fine)."""
        if (value is None and self.nullable) or (self.word is not None and value == self.word):
            return None
        if self.choices:
            v = value.upper() if self.upper and isinstance(value, str) else value
            if v not in self.choices:
                if len(self.choices) == 2:
                    return f"must be {self.choices[0]} or {self.choices[1]}, got {value!r}"
                return f"must be one of {', '.join(self.choices)}, got {value!r}"
        elif self.type is str and not value.strip():
            return "expected a non-empty string, got an empty one"
        elif self.type is list and not value:
            return "expected a non-empty list, got an empty one"
        if self.ge is not None and value < self.ge:
            return f"must be >= {_num(self.ge)}, got {_num(value)}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {_num(self.gt)}, got {_num(value)}"
        if self.lt is not None and value >= self.lt:
            return f"must be < {_num(self.lt)}, got {_num(value)}"
        return self.rule(value) if self.rule is not None else None

    def default_text(self) -> str:
        """The default as the README shows it."""
        return "\N{EN DASH}" if self.required else yaml_text(self.default)


@dataclass(frozen=True, slots=True)
class Key:
    """A structural key of a shard or split entry (validated by hand in supervisor/config)."""

    names: tuple[str, ...]
    doc: str


@dataclass(frozen=True, slots=True)
class Section:
    """The settings of one YAML block (``worker``, ``supervisor``, ``supervisor.restart``...)."""

    path: str
    settings: tuple[Setting, ...]
    #: one line on the block as a whole
    doc: str = ""
    #: nested blocks validated on their own (``supervisor.restart``)
    blocks: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Setting:
        for s in self.settings:
            if s.name == name:
                return s
        raise KeyError(f"{self.path} has no setting {name!r}")

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def yaml_settings(self) -> tuple[Setting, ...]:
        return tuple(s for s in self.settings if s.yaml)

    def keys(self) -> set[str]:
        """Every YAML key of the block (settings and nested blocks)."""
        return {s.name for s in self.yaml_settings()} | set(self.blocks)

    def defaults(self) -> dict[str, Any]:
        return {s.name: s.default for s in self.settings if not s.required}

    def default(self, name: str) -> Any:
        return self[name].default


def yaml_text(value: Any) -> str:
    """A value as it is written in YAML (numbers without a needless ``.0``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"`{value}`"
    return _num(value)


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- rules


def _http_url(v: str) -> str | None:
    # never echoes the URL: it may hold credentials
    if not re.match(r"^https?://[^\s/]+", v):
        return "expected an http(s) URL"
    try:
        urlsplit(v).port  # noqa: B018 (raises for a port out of range)
    except ValueError:
        return "expected an http(s) URL (bad host or port)"
    return None


#: the keys of one ``network.rpc_urls`` entry written as a mapping
ENDPOINT_KEYS = ("url", "weight", "max_requests_per_s", "headers", "name")
_HEADER_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def endpoint_problem(entry: Any) -> str | None:
    """The problem of one ``network.rpc_urls`` entry (a URL, or a mapping with ``url`` and
    optional ``weight``, ``max_requests_per_s``, ``headers`` {header: ENV_VAR}, ``name``), or
    None. Never echoes a URL (it may hold credentials)."""
    if isinstance(entry, str):
        return None if re.match(r"^https?://[^\s/]+", entry) else "expected an http(s) URL"
    if not isinstance(entry, dict):
        return "expected a URL or a mapping with url (weight, max_requests_per_s, headers, name)"
    unknown = sorted(set(map(str, entry)) - set(ENDPOINT_KEYS))
    if unknown:
        return f"unknown key {unknown[0]!r} (allowed: {', '.join(ENDPOINT_KEYS)})"
    url = entry.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        return "url: expected an http(s) URL"
    if "weight" in entry and not _positive(entry["weight"]):
        return "weight: expected a number > 0"
    rate = entry.get("max_requests_per_s")
    if rate is not None and not _positive(rate):
        return "max_requests_per_s: expected a number > 0 (or null: unlimited)"
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        return "name: expected a non-empty string"
    headers = entry.get("headers", {})
    if not isinstance(headers, dict):
        return "headers: expected a mapping of header name to environment variable name"
    for header, env in headers.items():
        if not isinstance(header, str) or not re.fullmatch(_HEADER_NAME, header):
            return f"headers: {header!r} is not a header name"
        if not isinstance(env, str) or not re.fullmatch(ENV_NAME_PATTERN, env):
            return (
                f"headers.{header}: expected the name of the environment variable holding the "
                "value (values never go in this file)"
            )
    return None


def _endpoints(v: list[Any]) -> str | None:
    for i, entry in enumerate(v):
        problem = endpoint_problem(entry)
        if problem is not None:
            return f"entry {i}: {problem}"
    return None


def _contract_address(v: str) -> str | None:
    if re.fullmatch(r"C[A-Z2-7]{55}", v):
        return None
    return "expected a contract address (C... 56 characters)"


FEE_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)


def _fee_percentile(v: int) -> str | None:
    if v in FEE_PERCENTILES:
        return None
    return f"must be one of {', '.join(map(str, FEE_PERCENTILES))} (getFeeStats'), got {v}"


#: Stellar's expected ledger time (seconds; mainnet and testnet), and the margin a transaction's
#: max time bound keeps beyond core's submission check
STELLAR_LEDGER_S = 5
TIME_BOUND_MARGIN_S = 5


def min_tx_timeout_s(ledger_s: float = STELLAR_LEDGER_S) -> int:
    """The shortest ``tx_timeout_s`` that passes stellar-core's time-bound check: core refuses
    (txTOO_LATE) a max time below ``lastClose + 2 x ledger time + (now - lastClose)``, so the
    bound, taken from the latest close time, must reach more than two ledgers ahead, plus a
    margin for the simulations and the send in between."""
    return int(2 * ledger_s + TIME_BOUND_MARGIN_S + 0.999)


def tx_timeout_problem(v: int, ledger_s: float = STELLAR_LEDGER_S) -> str | None:
    """Why ``tx_timeout_s`` ``v`` is too short on a network of ``ledger_s`` ledgers; or None."""
    least = min_tx_timeout_s(ledger_s)
    if v >= least:
        return None
    return (
        f"must be at least {least} s: stellar-core refuses a transaction whose max time is not "
        f"more than two ledgers ({2 * ledger_s:g} s) past the last close when it is sent "
        f"(txTOO_LATE), and {TIME_BOUND_MARGIN_S} s more cover the simulations and the send; "
        f"got {v}"
    )


def host_port_problem(v: str) -> str | None:
    """``host:port`` (``[v6]:port`` too), port <= 65535; the problem, or None."""
    if not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}", v):
        return f"expected 'host:port', got {v!r}"
    if int(v.rpartition(":")[2]) > 65535:
        return "port must be <= 65535"
    return None


# --------------------------------------------------------------------------- declarations
# A table: one setting per entry, its doc on the second line (the README shows it as is).
# fmt: off

NETWORK = Section("network", doc="required", settings=(
    Setting("rpc_url", str, None, nullable=True, rule=_http_url,
            doc="Soroban RPC endpoint (JSON-RPC over HTTP); give it or `rpc_urls`"),
    Setting("rpc_urls", list, None, nullable=True, rule=_endpoints,
            doc="endpoints with failover: URLs or `{url, weight, max_requests_per_s, headers, "
                "name}`"),
    Setting("network_passphrase", str, REQUIRED,
            doc="checked against the server's `getNetwork` at start"),
    Setting("contract_id", str, REQUIRED, rule=_contract_address,
            doc="the SoroTask contract (`C...`)"),
))

WORKER = Section("worker", doc="defaults for every shard; a shard's `worker:` block overrides them",
                 settings=(
    Setting("poll_interval_s", float, 5.0, gt=0, flag="--poll-interval", metavar="SECONDS",
            doc="seconds between cycles; a cycle reads only when a new ledger closed"),
    Setting("read_mode", str, "events", choices=("events", "ledger_entries", "simulate"),
            flag="--read-mode",
            doc="`events` (read what events name and what is due), `ledger_entries` (all, "
                "each ledger) or `simulate`"),
    Setting("sweep_every_ledgers", int, 720, ge=1, flag="--sweep-every-ledgers",
            metavar="LEDGERS",
            doc="`events` mode: every entry is re-read once per this many ledgers (TTL, "
                "safety net)"),
    Setting("max_requests_per_s", float, None, gt=0, nullable=True,
            flag="--max-requests-per-s", metavar="N",
            doc="RPC requests a second per shard (due work first, sweep last); null: "
                "unlimited"),
    Setting("max_concurrent_reads", int, 10, ge=1, flag="--max-concurrent-reads",
            doc="RPC read calls in flight per shard"),
    Setting("max_concurrent_executions", int, 3, ge=1, flag="--max-concurrent-executions",
            doc="execute transactions in flight per shard"),
    Setting("rpc_timeout_s", float, 10.0, gt=0, flag="--rpc-timeout", metavar="SECONDS",
            doc="per-request timeout (requests are retried with backoff on timeouts, 429, 5xx)"),
    Setting("rpc_hedge_copies", int, 3, ge=1, lt=9, flag="--rpc-hedge-copies", metavar="N",
            doc="copies of a request in flight when one is slow or failed (hedging, in budget); "
                "1: off"),
    Setting("tx_timeout_s", int, 30, ge=1, rule=tx_timeout_problem, flag="--tx-timeout",
            metavar="SECONDS",
            doc="max time bound = ledger close time + this (at least 2 ledgers + 5 s: 15 s)"),
    Setting("stop_grace_s", float, 20.0, gt=0, flag="--stop-grace", metavar="SECONDS",
            doc="on stop, how long in-flight transactions may take to reach a final status"),
    Setting("base_fee", int, 100, ge=100, flag="--base-fee", metavar="STROOPS",
            doc="inclusion fee offered per transaction under `fee_strategy: fixed` (stroops)"),
    Setting("fee_strategy", str, "stats", choices=("stats", "fixed"), flag="--fee-strategy",
            doc="`stats`: bid a percentile of getFeeStats' Soroban inclusion fees + 1; "
                "`fixed`: bid `base_fee`"),
    Setting("fee_percentile", int, 70, rule=_fee_percentile,
            doc="the getFeeStats percentile the `stats` strategy bids one stroop above"),
    Setting("fee_floor", int, 100, ge=100,
            doc="the lowest inclusion fee bid (stroops)"),
    Setting("fee_max_inclusion", int, 100_000, ge=100, flag="--fee-max-inclusion",
            metavar="STROOPS",
            doc="an execution whose inclusion fee would be higher is not sent (counted)"),
    Setting("fee_max_total", int, 2_000_000, gt=100, lt=2**32,
            doc="an execution whose inclusion + resource fee would be higher is not sent"),
    Setting("fee_resource_margin", float, 0.15, ge=0, lt=10,
            doc="added to the simulation's resource fee (0.15: +15 %)"),
    Setting("fee_refresh_ledgers", int, 5, ge=1,
            doc="getFeeStats is asked again after this many ledgers"),
    Setting("fee_max_escalations", int, 3, ge=0, lt=21,
            doc="resends with a higher bid after txINSUFFICIENT_FEE or expiry, per execution"),
    Setting("execute_archived", bool, True,
            doc="archived task entries are executed (protocol 23 restores them in simulation)"),
    Setting("min_fee_balance", int, 10_000_000, ge=0,
            doc="a source account with fewer stroops above its reserve leaves the pool until "
                "topped up"),
    Setting("balance_refresh_ledgers", int, 12, ge=1,
            doc="each source account's balance is read again after this many ledgers"),
    Setting("confirm_poll_s", float, 0.25, gt=0,
            doc="`getTransaction` poll period while confirming (`events` mode: at each new "
                "ledger)"),
    Setting("max_lag_ledgers", int, 2, ge=0, flag="--max-lag-ledgers", metavar="LEDGERS",
            doc="an RPC endpoint this many ledgers behind the freshest one seen is demoted"),
    # flags of `sorotask worker` only: under the supervisor they are not in the YAML file
    Setting("state_dir", str, None, nullable=True, yaml=False, flag="--state-dir",
            doc="directory for the in-flight journal (under the supervisor: "
                "`<supervisor.state_dir>/<shard>`)"),
    Setting("http_client", str, "wire", choices=("wire", "aiohttp", "httpx"), yaml=False,
            flag="--http-client",
            doc="HTTP client for JSON-RPC (wire: a third of aiohttp's CPU a request)"),
))

RESTART = Section("supervisor.restart", doc="restart policy per shard", settings=(
    Setting("max_restarts", int, 5, ge=0,
            doc="more restarts than this ..."),
    Setting("window_s", float, 60.0, gt=0,
            doc="... within this many seconds marks the shard `failed` (others keep running)"),
    Setting("backoff_base_s", float, 0.5, ge=0,
            doc="first restart immediate, then base, 2 x base, 4 x base ..."),
    Setting("backoff_max_s", float, 30.0, ge=0,
            doc="cap on the delay"),
    Setting("jitter", float, 0.2, ge=0, lt=1,
            doc="+-20 % on every delay"),
    Setting("stable_after_s", float, 30.0, gt=0,
            doc="a worker up this long starts its backoff over"),
    Setting("failed_cooldown_s", float, 300.0, gt=0, nullable=True,
            doc="a `failed` shard starts again after this (`failed_retries`); null: only "
                "`ctl start`, SIGHUP"),
    Setting("max_rss_mb", float, None, gt=0, nullable=True,
            doc="a worker above this RSS (MiB) is drained and replaced (`memory_restarts`); "
                "null: off"),
))

SUPERVISOR = Section("supervisor", blocks=("restart",), settings=(
    Setting("status_address", str, "127.0.0.1:9100", nullable=True, rule=host_port_problem,
            doc="`host:port` of `/status`, `/metrics`, `/health`; port 0 picks one; null "
                "turns it off"),
    Setting("log_dir", str, "./logs",
            doc="`<shard>.log` per shard and `supervisor.log`"),
    Setting("state_dir", str, "./state",
            doc="per-shard in-flight journal in `<state_dir>/<shard>/`"),
    Setting("log_level", str, "INFO", choices=LOG_LEVELS, upper=True,
            doc=", ".join(LOG_LEVELS)),
    Setting("json_logs", bool, False,
            doc="one JSON object per log line"),
    Setting("log_rotation_mb", float, 10.0, gt=0,
            doc="rotate each log file at this size"),
    Setting("log_retention", int, 5, ge=1,
            doc="rotated files kept per log"),
    Setting("heartbeat_timeout_s", float, 10.0, gt=0,
            doc="a worker silent this long is hung: SIGTERM, then SIGKILL, then restart"),
    Setting("kill_grace_s", float, 5.0, gt=0,
            doc="SIGTERM to SIGKILL for a hung worker"),
    Setting("shutdown_grace_s", float, 30.0, gt=0,
            doc="on SIGTERM/SIGINT, time for workers to drain"),
    Setting("health_max_cycle_age_s", float, None, gt=0, nullable=True,
            doc="`/health` freshness; null means `3 * poll_interval_s + 10`"),
    Setting("orphan_grace_s", float, 5.0, gt=0,
            doc="a worker whose supervisor died exits within this"),
    Setting("progress_every_s", float, 60.0, gt=0, nullable=True,
            doc="log one progress line (totals and what changed) this often; null: never"),
    Setting("host_count", int, 1, ge=1,
            doc="several hosts share this file"),
    Setting("host_index", int, 0, word="auto",
            doc="this host's index, or `auto` (`$SOROTASK_HOST_INDEX`, else the hostname's "
                "`-N`)"),
))

SHARD = (
    Key(("name",), f"`{NAME_PATTERN}`, unique; names the log file"),
    Key(("range",),
        "`[first, last]` inclusive; `last` may be null (open-ended); ranges may not overlap"),
    Key(("secret_env", "secret_file"),
        "where the shard's secret seed is (exactly one); a keypair may serve one shard only"),
    Key(("public_key",),
        "the keeper's `G...` key: enough for `sorotask run --dry-run` (no secret needed); with a "
        "secret too, the secret must be this key's"),
    Key(("channels",),
        "list of `{secret_env}` / `{secret_file}`: extra source accounts so a shard lands "
        "several transactions per ledger"),
    Key(("task_ids",), "optional explicit ids (the seed's `TASK_IDS`), intersected with the range"),
    Key(("worker",), "per-shard overrides of the `worker` block"),
)
CHANNEL = (Key(("secret_env", "secret_file"), "where the channel account's secret seed is"),)
SPLIT = (
    Key(("range",), "`[first, last]` cut into `count` equal shards"),
    Key(("count",), "number of shards"),
    Key(("open_last",), "the last shard also takes ids above `last`"),
    Key(("name_pattern",), "e.g. `shard-{index}` (`{index}` = 1..count)"),
    Key(("secret_env_pattern", "secret_file_pattern"), "e.g. `KEEPER_SECRET_{index}`"),
    Key(("channels",), "channel accounts per shard"),
    Key(("channel_secret_env_pattern", "channel_secret_file_pattern"),
        "e.g. `KEEPER_{index}_CH_{channel}`"),
    Key(("worker",), "overrides for every generated shard"),
)

# fmt: on
TOP = ("network", "worker", "supervisor", "shards", "split")
SECTIONS = (NETWORK, WORKER, SUPERVISOR, RESTART)


def key_names(keys: tuple[Key, ...]) -> set[str]:
    return {name for k in keys for name in k.names}
