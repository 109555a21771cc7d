"""Every setting declared once: name, type, default, bounds and one line of doc.

The YAML validation (``supervisor/config``), the worker spec (``shard_worker.spec.WorkerSpec``),
the flags of ``sorotask worker`` and the README's configuration reference are all built from
the declarations below, and tests check each of them against these declarations. To add a
setting: declare it here, add the field to ``WorkerSpec`` (worker settings) or
``SupervisorSettings`` (supervisor settings), use it, then run
``python -m supervisor.config.reference --write`` to refresh the README tables.

Pure Python on purpose: the worker process imports this module, so it must stay light (no
pydantic, nothing else of ours).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: default of a setting that has none (it must be given)
REQUIRED: Any = object()

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting. ``type`` is bool, int, float (an int is accepted) or str; a bool is never
    an int or a float."""

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
    #: the README's default column when the value alone would not say it
    shown: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def expected(self) -> str:
        """What a value must be, for "expected X, got Y" messages."""
        if self.type is str and not self.choices:
            what = "a non-empty string"
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
        if self.ge is not None and value < self.ge:
            return f"must be >= {_num(self.ge)}, got {_num(value)}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {_num(self.gt)}, got {_num(value)}"
        if self.lt is not None and value >= self.lt:
            return f"must be < {_num(self.lt)}, got {_num(value)}"
        return self.rule(value) if self.rule is not None else None

    def default_text(self) -> str:
        """The default as the README shows it."""
        if self.shown is not None:
            return self.shown
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
    return None if re.match(r"^https?://[^\s/]+", v) else f"expected an http(s) URL, got {v!r}"


def _contract_address(v: str) -> str | None:
    if re.fullmatch(r"C[A-Z2-7]{55}", v):
        return None
    return "expected a contract address (C... 56 characters)"


def host_port_problem(v: str) -> str | None:
    """``host:port`` (``[v6]:port`` too), port <= 65535; the problem, or None."""
    if not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}", v):
        return f"expected 'host:port', got {v!r}"
    if int(v.rpartition(":")[2]) > 65535:
        return "port must be <= 65535"
    return None


# --------------------------------------------------------------------------- declarations

NETWORK = Section(
    "network",
    (
        Setting(
            "rpc_url", str, REQUIRED, "Soroban RPC endpoint (JSON-RPC over HTTP)", rule=_http_url
        ),
        Setting(
            "network_passphrase",
            str,
            REQUIRED,
            "checked against the server's `getNetwork` at start",
        ),
        Setting(
            "contract_id",
            str,
            REQUIRED,
            "the SoroTask contract (`C...`)",
            rule=_contract_address,
        ),
    ),
    doc="required",
)

WORKER = Section(
    "worker",
    (
        Setting(
            "poll_interval_s",
            float,
            5.0,
            "seconds between cycles; a cycle reads only when a new ledger closed",
            gt=0,
            flag="--poll-interval",
            metavar="SECONDS",
        ),
        Setting(
            "read_mode",
            str,
            "ledger_entries",
            "`ledger_entries` (200 tasks a call) or `simulate` (the seed's `get_task` per task)",
            choices=("ledger_entries", "simulate"),
            flag="--read-mode",
        ),
        Setting(
            "max_concurrent_reads",
            int,
            10,
            "RPC read calls in flight per shard",
            ge=1,
            flag="--max-concurrent-reads",
        ),
        Setting(
            "max_concurrent_executions",
            int,
            3,
            "execute transactions in flight per shard",
            ge=1,
            flag="--max-concurrent-executions",
        ),
        Setting(
            "rpc_timeout_s",
            float,
            10.0,
            "per-request timeout (requests are retried with backoff on timeouts, 429, 5xx)",
            gt=0,
            flag="--rpc-timeout",
            metavar="SECONDS",
        ),
        Setting(
            "tx_timeout_s",
            int,
            30,
            "a transaction's max time bound is the ledger close time plus this",
            ge=1,
            flag="--tx-timeout",
            metavar="SECONDS",
        ),
        Setting(
            "stop_grace_s",
            float,
            20.0,
            "on stop, how long in-flight transactions may take to reach a final status",
            gt=0,
            flag="--stop-grace",
            metavar="SECONDS",
        ),
        Setting(
            "base_fee",
            int,
            100,
            "inclusion fee offered per transaction (stroops)",
            ge=100,
            flag="--base-fee",
            metavar="STROOPS",
        ),
        Setting(
            "execute_archived",
            bool,
            True,
            "archived task entries are executed (protocol 23 restores them in simulation)",
        ),
        Setting(
            "min_fee_balance",
            int,
            10_000_000,
            "stroops each source account needs at start, else a configuration error",
            ge=0,
        ),
        Setting(
            "confirm_poll_s",
            float,
            0.25,
            "`getTransaction` poll period while confirming",
            gt=0,
        ),
        Setting(
            "state_dir",
            str,
            None,
            "directory for the in-flight journal (under the supervisor: "
            "`<supervisor.state_dir>/<shard>`)",
            nullable=True,
            yaml=False,
            flag="--state-dir",
        ),
        Setting(
            "http_client",
            str,
            "aiohttp",
            "HTTP client for JSON-RPC (aiohttp: ~5x less CPU per large answer than httpx)",
            choices=("aiohttp", "httpx"),
            yaml=False,
            flag="--http-client",
        ),
    ),
    doc="defaults for every shard; a shard's `worker:` block overrides them",
)

RESTART = Section(
    "supervisor.restart",
    (
        Setting("max_restarts", int, 5, "more restarts than this ...", ge=0),
        Setting(
            "window_s",
            float,
            60.0,
            "... within this many seconds marks the shard `failed` (others keep running)",
            gt=0,
        ),
        Setting(
            "backoff_base_s",
            float,
            0.5,
            "first restart immediate, then base, 2 x base, 4 x base ...",
            ge=0,
        ),
        Setting("backoff_max_s", float, 30.0, "cap on the delay", ge=0),
        Setting("jitter", float, 0.2, "+-20 % on every delay", ge=0, lt=1),
        Setting(
            "stable_after_s", float, 30.0, "a worker up this long starts its backoff over", gt=0
        ),
    ),
    doc="restart policy per shard",
)

SUPERVISOR = Section(
    "supervisor",
    (
        Setting(
            "status_address",
            str,
            "127.0.0.1:9100",
            "`host:port` of `/status`, `/metrics`, `/health`; port 0 picks one; null turns it off",
            nullable=True,
            rule=host_port_problem,
        ),
        Setting("log_dir", str, "./logs", "`<shard>.log` per shard and `supervisor.log`"),
        Setting(
            "state_dir", str, "./state", "per-shard in-flight journal in `<state_dir>/<shard>/`"
        ),
        Setting(
            "log_level",
            str,
            "INFO",
            ", ".join(LOG_LEVELS),
            choices=LOG_LEVELS,
            upper=True,
        ),
        Setting("json_logs", bool, False, "one JSON object per log line"),
        Setting("log_rotation_mb", float, 10.0, "rotate each log file at this size", gt=0),
        Setting("log_retention", int, 5, "rotated files kept per log", ge=1),
        Setting(
            "heartbeat_timeout_s",
            float,
            10.0,
            "a worker silent this long is hung: SIGTERM, then SIGKILL, then restart",
            gt=0,
        ),
        Setting("kill_grace_s", float, 5.0, "SIGTERM to SIGKILL for a hung worker", gt=0),
        Setting(
            "shutdown_grace_s", float, 30.0, "on SIGTERM/SIGINT, time for workers to drain", gt=0
        ),
        Setting(
            "health_max_cycle_age_s",
            float,
            None,
            "`/health` freshness; null means `3 * poll_interval_s + 10`",
            gt=0,
            nullable=True,
        ),
        Setting(
            "orphan_grace_s",
            float,
            5.0,
            "a worker whose supervisor died exits within this",
            gt=0,
        ),
        Setting(
            "progress_every_s",
            float,
            60.0,
            "log one progress line (totals and what changed) this often; null: never",
            gt=0,
            nullable=True,
        ),
        Setting("host_count", int, 1, "several hosts share this file", ge=1),
        Setting(
            "host_index",
            int,
            0,
            "this host's index, or `auto` (`$SOROTASK_HOST_INDEX`, else the hostname's `-N`)",
            word="auto",
        ),
    ),
    blocks=("restart",),
)

SHARD = (
    Key(("name",), f"`{NAME_PATTERN}`, unique; names the log file"),
    Key(
        ("range",),
        "`[first, last]` inclusive; `last` may be null (open-ended); ranges may not overlap",
    ),
    Key(
        ("secret_env", "secret_file"),
        "where the shard's secret seed is (exactly one); a keypair may serve one shard only",
    ),
    Key(
        ("channels",),
        "list of `{secret_env}` / `{secret_file}`: extra source accounts so a shard lands "
        "several transactions per ledger",
    ),
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
    Key(
        ("channel_secret_env_pattern", "channel_secret_file_pattern"),
        "e.g. `KEEPER_{index}_CH_{channel}`",
    ),
    Key(("worker",), "overrides for every generated shard"),
)
TOP = ("network", "worker", "supervisor", "shards", "split")

SECTIONS = (NETWORK, WORKER, SUPERVISOR, RESTART)


def key_names(keys: tuple[Key, ...]) -> set[str]:
    return {name for k in keys for name in k.names}
