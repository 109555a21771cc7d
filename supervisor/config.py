"""The supervisor's YAML shard configuration: load, validate, resolve into a plan.

Schema (fixed names from issue 4; everything else has a default)::

    network:                          # required
      rpc_url: "http://127.0.0.1:8000"
      network_passphrase: "Standalone Network ; February 2017"
      contract_id: "C..."
    worker:                           # defaults for every shard (each key optional)
      poll_interval_s: 5              # number > 0
      read_mode: ledger_entries       # ledger_entries | simulate
      max_concurrent_reads: 10        # int >= 1
      max_concurrent_executions: 3    # int >= 1
      rpc_timeout_s: 10               # number > 0
      tx_timeout_s: 30                # int >= 1 (seconds added to close time for max time bound)
      stop_grace_s: 20                # number > 0 (drain bound when a worker is asked to stop)
      base_fee: 100                   # int >= 100 (stroops)
      execute_archived: true          # execute archived task entries (restored in simulation)
      min_fee_balance: 10000000       # stroops each source account needs above its reserve
      confirm_poll_s: 0.25            # getTransaction poll period while confirming
    supervisor:                       # each key optional
      status_address: "127.0.0.1:9100"  # host:port; port 0 picks a free port; null disables
      log_dir: ./logs                 # relative paths are relative to the config file
      state_dir: ./state              # per-shard state (in-flight journal) in <state_dir>/<shard>
      log_level: INFO
      json_logs: false                # JSON lines instead of text in the log files
      log_rotation_mb: 10             # rotate each log file at this size
      log_retention: 5                # keep this many rotated files per log
      heartbeat_timeout_s: 10         # no message from a worker for this long -> hung
      kill_grace_s: 5                 # SIGTERM -> SIGKILL grace for a hung worker
      shutdown_grace_s: 30            # SIGTERM/SIGINT: time for workers to drain
      health_max_cycle_age_s: null    # /health freshness; null = 3 * poll_interval_s + 10
      orphan_grace_s: 5               # a worker whose supervisor died exits within this
      progress_every_s: 60            # log one progress line this often; null: never
      restart:
        max_restarts: 5               # at most this many restarts ...
        window_s: 60                  # ... in this many seconds, else the shard is failed
        backoff_base_s: 0.5           # first restart is immediate, then base * 2**(n-1)
        backoff_max_s: 30
        jitter: 0.2                   # +-20 % random jitter on every delay
        stable_after_s: 30            # a worker up this long resets its backoff
        failed_cooldown_s: 300        # a failed shard is started again after this; null: never
        max_rss_mb: null              # a worker above this RSS is drained and replaced; null: off
      host_count: 1                   # several hosts sharing one config (see below)
      host_index: 0                   # int, or "auto"
    shards:                           # either a list of shards ...
      - name: a                       # [A-Za-z0-9_.-]{1,64}, unique
        range: [1, 1000]              # inclusive; last may be null (open-ended)
        secret_env: KEEPER_SECRET_A   # exactly one of secret_env / secret_file
        # secret_file: /run/secrets/a
        channels:                     # optional extra source accounts (same key forms)
          - {secret_env: KEEPER_A_CH1}
        task_ids: [1, 5, 9]           # optional explicit ids (intersected with the range)
        worker: {poll_interval_s: 2}  # optional per-shard overrides of the worker block
    split:                            # ... or one range cut into `count` equal shards
      range: [1, 3000]                # closed range
      count: 3
      open_last: false                # true: the last shard's range is open-ended
      name_pattern: "shard-{index}"   # {index} = 1..count
      secret_env_pattern: "KEEPER_SECRET_{index}"   # or secret_file_pattern
      channels: 0                     # channel accounts per shard, with
      channel_secret_env_pattern: "KEEPER_{index}_CH_{channel}"  # or ..._file_pattern
      worker: {}                      # overrides for every generated shard

Several hosts (e.g. a Kubernetes StatefulSet): every host loads the same file and builds the
same full plan (so ranges are disjoint by construction), then runs only its slice: shard number
``i`` (0-based, in plan order) runs on host ``i % host_count``. ``host_index: auto`` takes the
index from ``$SOROTASK_HOST_INDEX``, else from the hostname's trailing ordinal
(``sorotask-2`` -> 2, as StatefulSet pods are named). Secrets are checked only for the local
slice (a pod mounts only its own keys); secret *references* are checked for all shards.

Every problem is collected (file, line, field path, message) and raised together as one
:class:`ConfigError`. Coverage gaps are warnings. Secret values are read only to validate them
and derive public keys; they never enter specs, messages, logs or errors.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shard_worker.spec import SecretRef, WorkerSpec

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOST_INDEX_ENV = "SOROTASK_HOST_INDEX"

Path_ = tuple[str | int, ...]


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '<top>'}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Collector:
    def __init__(self, file: str, lines: dict[Path_, int]) -> None:
        self.file = file
        self.lines = lines
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def line_of(self, path: Path_) -> int | None:
        p = tuple(path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]

    def error(self, path: Path_, message: str) -> None:
        self.errors.append(Problem(self.file, self.line_of(path), format_path(path), message))

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(Problem(self.file, self.line_of(path), format_path(path), message))


# --------------------------------------------------------------------------- YAML with lines


class _Dup:
    """Marker for a duplicate mapping key (reported, last value kept)."""


def _compose(text: str, file: str) -> tuple[Any, dict[Path_, int], list[Problem]]:
    """Parse YAML into plain data plus a map of field path -> 1-based line."""
    lines: dict[Path_, int] = {}
    problems: list[Problem] = []
    try:
        # the reader checks every character up front: a control character raises here
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: max(0, exc.position)].count("\n") + 1
        problems.append(
            Problem(
                file,
                line,
                "",
                f"YAML syntax error: character U+{exc.character:04X} is not allowed in YAML",
            )
        )
        return None, lines, problems
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        msg = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(file, line, "", f"YAML syntax error: {msg}"))
        return None, lines, problems
    finally:
        loader.dispose()
    if node is None:
        return None, lines, problems

    built: dict[int, Any] = {}
    in_progress: set[int] = set()

    def build(n: yaml.Node, path: Path_) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if id(n) in built:  # an alias: share the value (no exponential expansion)
            return built[id(n)]
        if id(n) in in_progress:
            raise yaml.YAMLError(f"line {n.start_mark.line + 1}: recursive alias")
        in_progress.add(id(n))
        try:
            value = build_node(n, path)
        finally:
            in_progress.discard(id(n))
        if isinstance(n, yaml.MappingNode | yaml.SequenceNode):
            built[id(n)] = value
        return value

    def build_node(n: yaml.Node, path: Path_) -> Any:
        if isinstance(n, yaml.MappingNode):
            loader.flatten_mapping(n)
            out: dict[Any, Any] = {}
            for k_node, v_node in n.value:
                key = build(k_node, (*path, "<key>"))
                if not isinstance(key, str):
                    problems.append(
                        Problem(
                            file,
                            k_node.start_mark.line + 1,
                            format_path(path),
                            f"mapping key {key!r} is not a string",
                        )
                    )
                    key = str(key)
                kp = (*path, key)
                if key in out:
                    problems.append(
                        Problem(
                            file,
                            k_node.start_mark.line + 1,
                            format_path(kp),
                            "duplicate key",
                        )
                    )
                lines[kp] = k_node.start_mark.line + 1
                out[key] = build(v_node, kp)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(n.value)]
        return loader.construct_object(n, deep=True)

    try:
        data = build(node, ())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(Problem(file, line, "", f"YAML error: {exc}"))
        return None, lines, problems
    for key in [k for k in lines if k and k[-1] == "<key>"]:
        del lines[key]
    return data, lines, problems


# --------------------------------------------------------------------------- typed reads


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, int | float)) and not isinstance(v, bool)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
    }.get(type(v), type(v).__name__)


class _Fields:
    """Typed access to one mapping, reporting wrong types and unknown keys."""

    def __init__(self, c: _Collector, data: Any, path: Path_, allowed: set[str]) -> None:
        self.c = c
        self.path = path
        if data is None:
            data = {}
        if not isinstance(data, dict):
            c.error(path, f"expected a mapping, got {_type_name(data)}")
            data = {}
        self.data = data
        for key in data:
            if key not in allowed:
                hint = _closest(key, allowed)
                c.error(
                    (*path, key), "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
                )

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        if key not in self.data:
            if required:
                self.c.error((*self.path, key), "required")
            return default
        v = self.data[key]
        if not isinstance(v, str) or not v.strip():
            self.c.error((*self.path, key), f"expected a non-empty string, got {_type_name(v)}")
            return default
        return v

    def integer(self, key: str, default: Any, *, minimum: int | None = None) -> Any:
        if key not in self.data:
            return default
        v = self.data[key]
        if not _is_int(v):
            self.c.error((*self.path, key), f"expected an integer, got {_type_name(v)}")
            return default
        if minimum is not None and v < minimum:
            self.c.error((*self.path, key), f"must be >= {minimum}, got {v}")
            return default
        return v

    def number(
        self, key: str, default: Any, *, positive: bool = True, allow_null: bool = False
    ) -> Any:
        if key not in self.data:
            return default
        v = self.data[key]
        if v is None and allow_null:
            return None
        if not _is_num(v):
            self.c.error((*self.path, key), f"expected a number, got {_type_name(v)}")
            return default
        if positive and v <= 0:
            self.c.error((*self.path, key), f"must be > 0, got {v}")
            return default
        if not positive and v < 0:
            self.c.error((*self.path, key), f"must be >= 0, got {v}")
            return default
        return float(v)

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        v = self.data[key]
        if not isinstance(v, bool):
            self.c.error((*self.path, key), f"expected true or false, got {_type_name(v)}")
            return default
        return v


def _closest(key: str, allowed: set[str]) -> str | None:
    import difflib

    m = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return m[0] if m else None


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.2
    stable_after_s: float = 30.0
    #: a failed shard is started again after this many seconds (None: only ctl start / SIGHUP)
    failed_cooldown_s: float | None = 300.0
    #: a worker whose sampled RSS is above this many MiB is drained and replaced (None: off)
    max_rss_mb: float | None = None


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    status_address: str | None = "127.0.0.1:9100"
    log_dir: str = "./logs"
    state_dir: str = "./state"
    log_level: str = "INFO"
    json_logs: bool = False
    log_rotation_mb: float = 10.0
    log_retention: int = 5
    heartbeat_timeout_s: float = 10.0
    kill_grace_s: float = 5.0
    shutdown_grace_s: float = 30.0
    health_max_cycle_age_s: float | None = None
    orphan_grace_s: float = 5.0
    progress_every_s: float | None = 60.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    host_count: int = 1
    host_index: int = 0

    def status_host_port(self) -> tuple[str, int] | None:
        if self.status_address is None:
            return None
        host, _, port = self.status_address.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """One shard: its worker spec, public keys (never secrets) and host assignment."""

    spec: WorkerSpec
    keeper_public_key: str | None
    channel_public_keys: tuple[str | None, ...]
    host: int
    line: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def range_text(self) -> str:
        last = "open" if self.spec.range_last is None else str(self.spec.range_last)
        return f"{self.spec.range_first}..{last}"


@dataclass(frozen=True, slots=True)
class Plan:
    file: str
    settings: SupervisorSettings
    shards: tuple[ShardPlan, ...]  # every shard of every host
    warnings: tuple[Problem, ...] = ()

    @property
    def local_shards(self) -> tuple[ShardPlan, ...]:
        return tuple(s for s in self.shards if s.host == self.settings.host_index)

    def shard(self, name: str) -> ShardPlan | None:
        return next((s for s in self.shards if s.name == name), None)


NETWORK_KEYS = {"rpc_url", "network_passphrase", "contract_id"}
WORKER_KEYS = {
    "poll_interval_s",
    "read_mode",
    "max_concurrent_reads",
    "max_concurrent_executions",
    "rpc_timeout_s",
    "tx_timeout_s",
    "stop_grace_s",
    "base_fee",
    "execute_archived",
    "min_fee_balance",
    "confirm_poll_s",
}
RESTART_KEYS = {
    "max_restarts",
    "window_s",
    "backoff_base_s",
    "backoff_max_s",
    "jitter",
    "stable_after_s",
    "failed_cooldown_s",
    "max_rss_mb",
}
SUPERVISOR_KEYS = {
    "status_address",
    "log_dir",
    "state_dir",
    "log_level",
    "json_logs",
    "log_rotation_mb",
    "log_retention",
    "heartbeat_timeout_s",
    "kill_grace_s",
    "shutdown_grace_s",
    "health_max_cycle_age_s",
    "orphan_grace_s",
    "progress_every_s",
    "restart",
    "host_count",
    "host_index",
}
SHARD_KEYS = {"name", "range", "secret_env", "secret_file", "channels", "task_ids", "worker"}
CHANNEL_KEYS = {"secret_env", "secret_file"}
SPLIT_KEYS = {
    "range",
    "count",
    "open_last",
    "name_pattern",
    "secret_env_pattern",
    "secret_file_pattern",
    "channels",
    "channel_secret_env_pattern",
    "channel_secret_file_pattern",
    "worker",
}
TOP_KEYS = {"network", "worker", "supervisor", "shards", "split"}
LOG_LEVELS = {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}


def _worker_values(c: _Collector, data: Any, path: Path_, base: dict[str, Any]) -> dict[str, Any]:
    f = _Fields(c, data, path, WORKER_KEYS)
    out = dict(base)
    out["poll_interval_s"] = f.number("poll_interval_s", base["poll_interval_s"])
    if f.has("read_mode"):
        v = f.raw("read_mode")
        if v not in ("ledger_entries", "simulate"):
            c.error((*path, "read_mode"), f"must be ledger_entries or simulate, got {v!r}")
        else:
            out["read_mode"] = v
    out["max_concurrent_reads"] = f.integer(
        "max_concurrent_reads", base["max_concurrent_reads"], minimum=1
    )
    out["max_concurrent_executions"] = f.integer(
        "max_concurrent_executions", base["max_concurrent_executions"], minimum=1
    )
    out["rpc_timeout_s"] = f.number("rpc_timeout_s", base["rpc_timeout_s"])
    out["tx_timeout_s"] = f.integer("tx_timeout_s", base["tx_timeout_s"], minimum=1)
    out["stop_grace_s"] = f.number("stop_grace_s", base["stop_grace_s"])
    out["base_fee"] = f.integer("base_fee", base["base_fee"], minimum=100)
    out["execute_archived"] = f.boolean("execute_archived", base["execute_archived"])
    out["min_fee_balance"] = f.integer("min_fee_balance", base["min_fee_balance"], minimum=0)
    out["confirm_poll_s"] = f.number("confirm_poll_s", base["confirm_poll_s"])
    return out


def _worker_defaults() -> dict[str, Any]:
    d = WorkerSpec(name="x", rpc_url="", network_passphrase="", contract_id="", secret=SecretRef())
    return {k: getattr(d, k) for k in WORKER_KEYS}


def _range(
    c: _Collector, v: Any, path: Path_, *, allow_open: bool
) -> tuple[int, int | None] | None:
    if not isinstance(v, list) or len(v) != 2:
        c.error(path, f"expected [first, last], got {_type_name(v)}")
        return None
    first, last = v
    ok = True
    if not _is_int(first) or first < 1:
        c.error((*path, 0), f"first must be an integer >= 1, got {first!r}")
        ok = False
    if last is None:
        if not allow_open:
            c.error((*path, 1), "last must be an integer here (open ranges are not allowed)")
            ok = False
    elif not _is_int(last) or last < 1:
        c.error((*path, 1), f"last must be an integer >= 1 or null, got {last!r}")
        ok = False
    if ok and last is not None and last < first:
        c.error(path, f"last ({last}) is below first ({first})")
        ok = False
    return (first, last) if ok else None


def _resolve_host_index(raw: Any, c: _Collector, override: int | None) -> int:
    if override is not None:
        return override
    if _is_int(raw):
        return raw
    if raw == "auto":
        env = os.environ.get(HOST_INDEX_ENV)
        if env is not None:
            if env.strip().isdigit():
                return int(env)
            c.error(("supervisor", "host_index"), f"${HOST_INDEX_ENV} is not an integer")
            return 0
        m = re.search(r"-(\d+)$", socket.gethostname())
        if m:
            return int(m.group(1))
        c.error(
            ("supervisor", "host_index"),
            f"auto: neither ${HOST_INDEX_ENV} nor a hostname ending in -N is available",
        )
        return 0
    c.error(("supervisor", "host_index"), f"expected an integer or 'auto', got {_type_name(raw)}")
    return 0


def _settings(
    c: _Collector, data: Any, base_dir: Path, host_index_override: int | None
) -> SupervisorSettings:
    d = SupervisorSettings()
    f = _Fields(c, data, ("supervisor",), SUPERVISOR_KEYS)
    status = d.status_address
    if f.has("status_address"):
        v = f.raw("status_address")
        if v is None:
            status = None
        elif not isinstance(v, str) or not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}", v):
            c.error(("supervisor", "status_address"), f"expected 'host:port', got {v!r}")
        elif int(v.rpartition(":")[2]) > 65535:
            c.error(("supervisor", "status_address"), "port must be <= 65535")
        else:
            status = v
    log_dir = f.string("log_dir", d.log_dir)
    state_dir = f.string("state_dir", d.state_dir)
    level = f.string("log_level", d.log_level)
    if isinstance(level, str) and level.upper() not in LOG_LEVELS:
        c.error(("supervisor", "log_level"), f"must be one of {', '.join(sorted(LOG_LEVELS))}")
        level = d.log_level
    rf = _Fields(c, f.raw("restart"), ("supervisor", "restart"), RESTART_KEYS)
    rd = RestartPolicy()
    restart = RestartPolicy(
        max_restarts=rf.integer("max_restarts", rd.max_restarts, minimum=0),
        window_s=rf.number("window_s", rd.window_s),
        backoff_base_s=rf.number("backoff_base_s", rd.backoff_base_s, positive=False),
        backoff_max_s=rf.number("backoff_max_s", rd.backoff_max_s, positive=False),
        jitter=rf.number("jitter", rd.jitter, positive=False),
        stable_after_s=rf.number("stable_after_s", rd.stable_after_s),
        failed_cooldown_s=rf.number("failed_cooldown_s", rd.failed_cooldown_s, allow_null=True),
        max_rss_mb=rf.number("max_rss_mb", rd.max_rss_mb, allow_null=True),
    )
    if restart.jitter >= 1:
        c.error(("supervisor", "restart", "jitter"), "must be below 1 (a fraction)")
    host_count = f.integer("host_count", d.host_count, minimum=1)
    host_index = _resolve_host_index(
        f.raw("host_index") if f.has("host_index") else 0, c, host_index_override
    )
    if host_index < 0 or host_index >= host_count:
        c.error(
            ("supervisor", "host_index"),
            f"host index {host_index} is outside 0..{host_count - 1} (host_count {host_count})",
        )
    return SupervisorSettings(
        status_address=status,
        log_dir=str((base_dir / log_dir).resolve()) if log_dir else d.log_dir,
        state_dir=str((base_dir / state_dir).resolve()) if state_dir else d.state_dir,
        log_level=str(level).upper(),
        json_logs=f.boolean("json_logs", d.json_logs),
        log_rotation_mb=f.number("log_rotation_mb", d.log_rotation_mb),
        log_retention=f.integer("log_retention", d.log_retention, minimum=1),
        heartbeat_timeout_s=f.number("heartbeat_timeout_s", d.heartbeat_timeout_s),
        kill_grace_s=f.number("kill_grace_s", d.kill_grace_s),
        shutdown_grace_s=f.number("shutdown_grace_s", d.shutdown_grace_s),
        health_max_cycle_age_s=f.number("health_max_cycle_age_s", None, allow_null=True),
        orphan_grace_s=f.number("orphan_grace_s", d.orphan_grace_s),
        progress_every_s=f.number("progress_every_s", d.progress_every_s, allow_null=True),
        restart=restart,
        host_count=host_count,
        host_index=host_index,
    )


# --------------------------------------------------------------------------- secrets


@dataclass(slots=True)
class _ShardDraft:
    name: str
    path: Path_
    first: int
    last: int | None
    secret: SecretRef | None
    secret_path: Path_
    channels: list[tuple[SecretRef, Path_]]
    task_ids: tuple[int, ...] | None
    worker: dict[str, Any]


def _secret_ref(
    c: _Collector, f: _Fields, path: Path_, base_dir: Path, *, required: bool = True
) -> SecretRef | None:
    env = f.raw("secret_env") if f.has("secret_env") else None
    file = f.raw("secret_file") if f.has("secret_file") else None
    if env is not None and file is not None:
        c.error((*path, "secret_env"), "give exactly one of secret_env or secret_file, not both")
        return None
    if env is None and file is None:
        if required:
            c.error(path, "missing secret_env or secret_file")
        return None
    if env is not None:
        if not isinstance(env, str) or not ENV_NAME_RE.match(env):
            c.error((*path, "secret_env"), f"not a valid environment variable name: {env!r}")
            return None
        return SecretRef(env=env)
    if not isinstance(file, str) or not file.strip():
        c.error((*path, "secret_file"), f"expected a file path, got {_type_name(file)}")
        return None
    return SecretRef(file=str((base_dir / file).resolve()))


def _secret_key(ref: SecretRef) -> str:
    return "secret_env" if ref.env else "secret_file"


def public_key_of(ref: SecretRef) -> str:
    """The public key (G...) of the secret seed at ``ref``; ValueError names the problem only.

    Reads and validates exactly as a worker will (``shard_worker.secrets``), so a config that
    passes the check cannot hold a secret its worker refuses.
    """
    from shard_worker.errors import SecretError
    from shard_worker.secrets import load_keypair

    try:
        return load_keypair(ref).public_key
    except SecretError as exc:
        raise ValueError(str(exc)) from None


def _check_secret(
    c: _Collector, ref: SecretRef, path: Path_, warn_perms: bool = True
) -> str | None:
    if ref.file and warn_perms:
        try:
            mode = os.stat(ref.file).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                c.warn(path, f"secret file {ref.file} is readable by group/others (chmod 600)")
        except OSError:
            pass
    try:
        return public_key_of(ref)
    except ValueError as exc:
        c.error(path, str(exc))
        return None


# --------------------------------------------------------------------------- shards


def _shard_list(
    c: _Collector, data: Any, base_dir: Path, worker_base: dict[str, Any]
) -> list[_ShardDraft]:
    if not isinstance(data, list):
        c.error(("shards",), f"expected a list of shards, got {_type_name(data)}")
        return []
    if not data:
        c.error(("shards",), "no shards")
    drafts = []
    for i, item in enumerate(data):
        path: Path_ = ("shards", i)
        f = _Fields(c, item, path, SHARD_KEYS)
        name = f.string("name", None, required=True)
        if name is not None and not NAME_RE.match(name):
            c.error((*path, "name"), f"must match {NAME_RE.pattern} (used in file names)")
            name = None
        rng = None
        if not f.has("range"):
            c.error((*path, "range"), "required")
        else:
            rng = _range(c, f.raw("range"), (*path, "range"), allow_open=True)
        secret = _secret_ref(c, f, path, base_dir)
        channels: list[tuple[SecretRef, Path_]] = []
        if f.has("channels"):
            ch = f.raw("channels")
            if not isinstance(ch, list):
                c.error((*path, "channels"), f"expected a list, got {_type_name(ch)}")
            else:
                for j, item2 in enumerate(ch):
                    cpath = (*path, "channels", j)
                    cf = _Fields(c, item2, cpath, CHANNEL_KEYS)
                    ref = _secret_ref(c, cf, cpath, base_dir)
                    if ref:
                        channels.append((ref, (*cpath, _secret_key(ref))))
        task_ids = None
        if f.has("task_ids"):
            t = f.raw("task_ids")
            if not isinstance(t, list) or not all(_is_int(x) and x >= 1 for x in t):
                c.error((*path, "task_ids"), "expected a list of integers >= 1")
            else:
                task_ids = tuple(sorted(set(t)))
        worker = _worker_values(c, f.raw("worker"), (*path, "worker"), worker_base)
        if name is None or rng is None:
            continue
        secret_path = (*path, _secret_key(secret)) if secret else path
        drafts.append(
            _ShardDraft(name, path, rng[0], rng[1], secret, secret_path, channels, task_ids, worker)
        )
    return drafts


def _pattern(c: _Collector, f: _Fields, key: str, path: Path_, **values: Any) -> str | None:
    pat = f.raw(key)
    if not isinstance(pat, str):
        c.error((*path, key), f"expected a string, got {_type_name(pat)}")
        return None
    try:
        return pat.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        c.error((*path, key), f"bad pattern ({exc}); placeholders: {', '.join(values)}")
        return None


def _split(
    c: _Collector, data: Any, base_dir: Path, worker_base: dict[str, Any]
) -> list[_ShardDraft]:
    path: Path_ = ("split",)
    f = _Fields(c, data, path, SPLIT_KEYS)
    rng = (
        _range(c, f.raw("range"), (*path, "range"), allow_open=False)
        if f.has("range")
        else c.error((*path, "range"), "required")
    )
    count = f.integer("count", None, minimum=1)
    if not f.has("count"):
        c.error((*path, "count"), "required")
    open_last = f.boolean("open_last", False)
    if not f.has("name_pattern"):
        c.error((*path, "name_pattern"), "required")
    has_env = f.has("secret_env_pattern")
    has_file = f.has("secret_file_pattern")
    if has_env == has_file:
        c.error(path, "give exactly one of secret_env_pattern or secret_file_pattern")
    n_channels = f.integer("channels", 0, minimum=0)
    ch_env = f.has("channel_secret_env_pattern")
    ch_file = f.has("channel_secret_file_pattern")
    if n_channels and ch_env == ch_file:
        c.error(
            (*path, "channels"),
            "give exactly one of channel_secret_env_pattern or channel_secret_file_pattern",
        )
    worker = _worker_values(c, f.raw("worker"), (*path, "worker"), worker_base)
    if rng is None or count is None or not f.has("name_pattern") or has_env == has_file:
        return []
    first, last = rng
    total = last - first + 1
    if count > total:
        c.error((*path, "count"), f"{count} shards for only {total} task ids")
        return []
    size, extra = divmod(total, count)
    drafts = []
    start = first
    for i in range(count):
        index = i + 1
        end = start + size - 1 + (1 if i < extra else 0)
        name = _pattern(c, f, "name_pattern", path, index=index)
        if name is not None and not NAME_RE.match(name):
            c.error((*path, "name_pattern"), f"gives invalid shard name {name!r}")
            name = None
        key = "secret_env_pattern" if has_env else "secret_file_pattern"
        value = _pattern(c, f, key, path, index=index)
        secret = None
        if value is not None:
            if has_env and not ENV_NAME_RE.match(value):
                c.error((*path, key), f"gives invalid environment variable name {value!r}")
            else:
                secret = (
                    SecretRef(env=value)
                    if has_env
                    else SecretRef(file=str((base_dir / value).resolve()))
                )
        channels = []
        for j in range(1, n_channels + 1):
            ckey = "channel_secret_env_pattern" if ch_env else "channel_secret_file_pattern"
            cval = _pattern(c, f, ckey, path, index=index, channel=j)
            if cval is None:
                continue
            ref = (
                SecretRef(env=cval) if ch_env else SecretRef(file=str((base_dir / cval).resolve()))
            )
            channels.append((ref, (*path, ckey)))
        if name is not None:
            shard_last = None if (open_last and i == count - 1) else end
            drafts.append(
                _ShardDraft(
                    name, path, start, shard_last, secret, (*path, key), channels, None, worker
                )
            )
        start = end + 1
    return drafts


# --------------------------------------------------------------------------- entry points


def load_config(
    path: str | os.PathLike[str],
    *,
    check_secrets: bool = True,
    host_index: int | None = None,
) -> Plan:
    """Load and validate ``path``; raise :class:`ConfigError` listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(file, None, "", "config file does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(file, None, "", f"cannot read config file: {exc}")]) from None
    return parse_config(
        text,
        file=file,
        base_dir=Path(path).resolve().parent,
        check_secrets=check_secrets,
        host_index=host_index,
    )


def parse_config(
    text: str,
    *,
    file: str = "<config>",
    base_dir: Path | None = None,
    check_secrets: bool = True,
    host_index: int | None = None,
) -> Plan:
    """Validate YAML text into a :class:`Plan` (see the module docstring for the schema)."""
    base_dir = base_dir or Path.cwd()
    data, lines, problems = _compose(text, file)
    c = _Collector(file, lines)
    c.errors.extend(problems)
    if problems and data is None:
        raise ConfigError(c.errors)
    if not isinstance(data, dict):
        c.error((), f"expected a mapping at the top level, got {_type_name(data)}")
        raise ConfigError(c.errors)
    top = _Fields(c, data, (), TOP_KEYS)

    # network
    if not top.has("network"):
        c.error(("network",), "required")
    nf = _Fields(c, top.raw("network"), ("network",), NETWORK_KEYS)
    rpc_url = nf.string("rpc_url", "", required=top.has("network"))
    if rpc_url and not re.match(r"^https?://[^\s/]+", rpc_url):
        c.error(("network", "rpc_url"), f"expected an http(s) URL, got {rpc_url!r}")
    passphrase = nf.string("network_passphrase", "", required=top.has("network"))
    contract_id = nf.string("contract_id", "", required=top.has("network"))
    if contract_id and not re.fullmatch(r"C[A-Z2-7]{55}", contract_id):
        c.error(("network", "contract_id"), "expected a contract address (C... 56 characters)")

    settings = _settings(c, top.raw("supervisor"), base_dir, host_index)
    worker_base = _worker_values(c, top.raw("worker"), ("worker",), _worker_defaults())

    if top.has("shards") and top.has("split"):
        c.error(("split",), "give either shards or split, not both")
        drafts: list[_ShardDraft] = []
    elif top.has("shards"):
        drafts = _shard_list(c, top.raw("shards"), base_dir, worker_base)
    elif top.has("split"):
        drafts = _split(c, top.raw("split"), base_dir, worker_base)
    else:
        c.error(("shards",), "required (a list of shards, or a split block)")
        drafts = []

    # duplicate names
    seen: dict[str, _ShardDraft] = {}
    for d in drafts:
        if d.name in seen:
            other = seen[d.name]
            c.error(
                (*d.path, "name"),
                f"duplicate shard name {d.name!r} (also at line {c.line_of(other.path)})",
            )
        else:
            seen[d.name] = d

    # overlapping ranges (effective ids when task_ids are given)
    def ids_overlap(a: _ShardDraft, b: _ShardDraft) -> bool:
        a_last = a.last if a.last is not None else float("inf")
        b_last = b.last if b.last is not None else float("inf")
        if max(a.first, b.first) > min(a_last, b_last):
            return False
        if a.task_ids is not None and b.task_ids is not None:
            return bool(set(a.task_ids) & set(b.task_ids))
        return True

    for i, a in enumerate(drafts):
        for b in drafts[i + 1 :]:
            if ids_overlap(a, b):
                c.error(
                    (*b.path, "range"),
                    f"range of shard {b.name!r} overlaps shard {a.name!r} "
                    f"(line {c.line_of((*a.path, 'range'))}): a task would be executed twice",
                )

    # coverage gaps (warning)
    ordered = sorted(drafts, key=lambda d: d.first)
    expect = 1
    for d in ordered:
        if d.first > expect:
            c.warn((*d.path, "range"), f"task ids {expect}..{d.first - 1} are covered by no shard")
        if d.last is None:
            expect = None  # type: ignore[assignment]
            break
        expect = max(expect, d.last + 1)
    if drafts and expect is not None:
        c.warn(("shards",), f"task ids from {expect} on are covered by no shard (no open range)")

    # same secret reference twice
    refs: dict[tuple[str | None, str | None], tuple[str, Path_]] = {}
    for d in drafts:
        all_refs = ([(d.secret, d.secret_path)] if d.secret else []) + d.channels
        for ref, rpath in all_refs:
            k = (ref.env, ref.file)
            if k in refs and refs[k][0] != f"{d.name}:{rpath}":
                c.error(
                    rpath,
                    f"{ref.describe()} is also used by shard {refs[k][0].split(':')[0]!r}: "
                    "two accounts' sequence numbers would collide",
                )
            else:
                refs[k] = (f"{d.name}:{rpath}", rpath)

    # hosts
    if settings.host_count > 1 and len(drafts) < settings.host_count:
        c.warn(
            ("supervisor", "host_count"),
            f"{settings.host_count} hosts for {len(drafts)} shards: some hosts run nothing",
        )

    # secrets (local slice only) and keypair collisions
    shard_plans: list[ShardPlan] = []
    seen_keys: dict[str, str] = {}
    for i, d in enumerate(drafts):
        host = i % settings.host_count
        local = host == settings.host_index
        keeper_pk = None
        ch_pks: list[str | None] = []
        if check_secrets and local and d.secret is not None:
            keeper_pk = _check_secret(c, d.secret, d.secret_path)
            for ref, cpath in d.channels:
                ch_pks.append(_check_secret(c, ref, cpath))
            for pk, ppath, what in [(keeper_pk, d.secret_path, "keeper")] + [
                (pk, cp, "channel") for pk, (_, cp) in zip(ch_pks, d.channels, strict=True)
            ]:
                if pk is None:
                    continue
                if pk in seen_keys:
                    c.error(
                        ppath,
                        f"{what} key {pk} is already used by {seen_keys[pk]}: one account in "
                        "two places would make their sequence numbers collide",
                    )
                else:
                    seen_keys[pk] = f"shard {d.name!r}"
        else:
            ch_pks = [None] * len(d.channels)
        w = d.worker
        if w["stop_grace_s"] >= settings.shutdown_grace_s:
            c.warn(
                (*d.path, "worker", "stop_grace_s"),
                f"stop_grace_s ({w['stop_grace_s']}) >= supervisor.shutdown_grace_s "
                f"({settings.shutdown_grace_s}): in-flight transactions may be cut off",
            )
        if d.secret is None:
            continue
        spec = WorkerSpec(
            name=d.name,
            rpc_url=rpc_url or "",
            network_passphrase=passphrase or "",
            contract_id=contract_id or "",
            secret=d.secret,
            range_first=d.first,
            range_last=d.last,
            task_ids=d.task_ids,
            channel_secrets=tuple(r for r, _ in d.channels),
            state_dir=str(Path(settings.state_dir) / d.name),
            **w,
        )
        shard_plans.append(ShardPlan(spec, keeper_pk, tuple(ch_pks), host, c.line_of(d.path)))

    c.errors = list(dict.fromkeys(c.errors))
    c.warnings = list(dict.fromkeys(c.warnings))
    if c.errors:
        raise ConfigError(c.errors)
    if settings.host_count > 1 and not any(s.host == settings.host_index for s in shard_plans):
        c.warn(("supervisor", "host_index"), f"host {settings.host_index} has no shards")
    return Plan(file=file, settings=settings, shards=tuple(shard_plans), warnings=tuple(c.warnings))
