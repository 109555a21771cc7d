"""The ``shards`` list and the ``split`` block: shard drafts with names, ranges, secret
references and worker values, every problem reported at its field."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shard_worker.feepolicy import FeeConfig
from shard_worker.spec import SecretRef
from sorotask_core.settings import (
    CHANNEL,
    ENV_NAME_PATTERN,
    NAME_PATTERN,
    SHARD,
    SPLIT,
    WORKER,
    Key,
    key_names,
)
from sorotask_core.strkey import VERSION_ACCOUNT, is_valid_strkey
from sorotask_core.xdr import U64_MASK
from supervisor.config.problems import Collector, FieldPath, is_int, type_name
from supervisor.config.schema import read_block

NAME_RE = re.compile(f"^{NAME_PATTERN}$")
#: task ids are the contract's u64: an id above this cannot exist
TASK_ID_MAX = U64_MASK
ENV_NAME_RE = re.compile(f"^{ENV_NAME_PATTERN}$")


@dataclass(slots=True)
class ShardDraft:
    """A shard as the file gives it, before the cross-shard checks and the secret checks."""

    name: str
    path: FieldPath
    first: int
    last: int | None
    secret: SecretRef | None
    secret_path: FieldPath
    channels: list[tuple[SecretRef, FieldPath]]
    task_ids: tuple[int, ...] | None
    worker: dict[str, Any]
    #: the keeper's public key, if given (enough for a dry run)
    public_key: str | None = None


class Entry:
    """One shard, channel or split mapping: unknown keys are reported, values read by key."""

    def __init__(self, c: Collector, data: Any, path: FieldPath, keys: tuple[Key, ...]) -> None:
        self.c = c
        self.path = path
        if data is None:
            data = {}
        if not isinstance(data, dict):
            c.error(path, f"expected a mapping, got {type_name(data)}")
            data = {}
        self.data: dict[str, Any] = data
        allowed = sorted(key_names(keys))
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                c.error(
                    (*path, key), "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                )

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def name(self, key: str) -> str | None:
        """A required non-empty string."""
        if key not in self.data:
            self.c.error((*self.path, key), "required")
            return None
        v = self.data[key]
        if not isinstance(v, str) or not v.strip():
            self.c.error((*self.path, key), f"expected a non-empty string, got {type_name(v)}")
            return None
        return v

    def integer(self, key: str, default: int | None, *, minimum: int) -> int | None:
        if key not in self.data:
            return default
        v = self.data[key]
        if not is_int(v):
            self.c.error((*self.path, key), f"expected an integer, got {type_name(v)}")
            return default
        if v < minimum:
            self.c.error((*self.path, key), f"must be >= {minimum}, got {v}")
            return default
        return int(v)

    def boolean(self, key: str, default: bool) -> bool:
        v = self.data.get(key, default)
        if not isinstance(v, bool):
            self.c.error((*self.path, key), f"expected true or false, got {type_name(v)}")
            return default
        return v


def _beyond_u64(what: str, value: int) -> str:
    return f"{what} {value} is beyond u64 ({TASK_ID_MAX}): task ids are the contract's u64"


def read_range(
    c: Collector, v: Any, path: FieldPath, *, allow_open: bool
) -> tuple[int, int | None] | None:
    if not isinstance(v, list) or len(v) != 2:
        c.error(path, f"expected [first, last], got {type_name(v)}")
        return None
    first, last = v
    ok = True
    if not is_int(first) or first < 1:
        c.error((*path, 0), f"first must be an integer >= 1, got {first!r}")
        ok = False
    elif first > TASK_ID_MAX:
        c.error((*path, 0), _beyond_u64("first", first))
        ok = False
    if last is None:
        if not allow_open:
            c.error((*path, 1), "last must be an integer here (open ranges are not allowed)")
            ok = False
    elif not is_int(last) or last < 1:
        c.error((*path, 1), f"last must be an integer >= 1 or null, got {last!r}")
        ok = False
    elif last > TASK_ID_MAX:
        c.error((*path, 1), _beyond_u64("last", last) + " (null means open-ended)")
        ok = False
    if ok and last is not None and last < first:
        c.error(path, f"last ({last}) is below first ({first})")
        ok = False
    return (first, last) if ok else None


def _secret_ref(
    c: Collector, f: Entry, path: FieldPath, base_dir: Path, *, optional: bool = False
) -> SecretRef | None:
    """The entry's secret reference; ``optional``: none given is no error (a public key is)."""
    env = f.raw("secret_env") if f.has("secret_env") else None
    file = f.raw("secret_file") if f.has("secret_file") else None
    if env is not None and file is not None:
        c.error((*path, "secret_env"), "give exactly one of secret_env or secret_file, not both")
        return None
    if env is None and file is None:
        if not optional:
            c.error(path, "missing secret_env or secret_file")
        return None
    if env is not None:
        if not isinstance(env, str) or not ENV_NAME_RE.match(env):
            c.error((*path, "secret_env"), f"not a valid environment variable name: {env!r}")
            return None
        return SecretRef(env=env)
    if not isinstance(file, str) or not file.strip():
        c.error((*path, "secret_file"), f"expected a file path, got {type_name(file)}")
        return None
    return SecretRef(file=str((base_dir / file).resolve()))


def secret_key(ref: SecretRef) -> str:
    return "secret_env" if ref.env else "secret_file"


def _worker(c: Collector, data: Any, path: FieldPath, base: dict[str, Any]) -> dict[str, Any]:
    values = read_block(c, data, path, WORKER, base)[0]
    if data is not None:
        check_fees(c, values, path)
    return values


def check_fees(c: Collector, values: dict[str, Any], path: FieldPath) -> None:
    """The fee settings must fit together (each one alone is checked by its declaration)."""
    try:
        FeeConfig(
            strategy=values["fee_strategy"],
            percentile=values["fee_percentile"],
            floor=values["fee_floor"],
            max_inclusion=values["fee_max_inclusion"],
            max_total=values["fee_max_total"],
            resource_margin=values["fee_resource_margin"],
            refresh_ledgers=values["fee_refresh_ledgers"],
            max_escalations=values["fee_max_escalations"],
            fixed_inclusion=values["base_fee"],
        )
    except (TypeError, KeyError):  # a value already refused on its own
        return
    except ValueError as exc:
        c.error(path, str(exc))


def shard_list(
    c: Collector, data: Any, base_dir: Path, worker_base: dict[str, Any]
) -> list[ShardDraft]:
    if not isinstance(data, list):
        c.error(("shards",), f"expected a list of shards, got {type_name(data)}")
        return []
    if not data:
        c.error(("shards",), "no shards")
    drafts = []
    for i, item in enumerate(data):
        path: FieldPath = ("shards", i)
        f = Entry(c, item, path, SHARD)
        name = f.name("name")
        if name is not None and not NAME_RE.match(name):
            c.error((*path, "name"), f"must match {NAME_RE.pattern} (used in file names)")
            name = None
        rng = None
        if not f.has("range"):
            c.error((*path, "range"), "required")
        else:
            rng = read_range(c, f.raw("range"), (*path, "range"), allow_open=True)
        public_key = _public_key(c, f, path)
        secret = _secret_ref(c, f, path, base_dir, optional=public_key is not None)
        channels: list[tuple[SecretRef, FieldPath]] = []
        if f.has("channels"):
            ch = f.raw("channels")
            if not isinstance(ch, list):
                c.error((*path, "channels"), f"expected a list, got {type_name(ch)}")
            else:
                for j, item2 in enumerate(ch):
                    cpath = (*path, "channels", j)
                    ref = _secret_ref(c, Entry(c, item2, cpath, CHANNEL), cpath, base_dir)
                    if ref:
                        channels.append((ref, (*cpath, secret_key(ref))))
        task_ids = None
        if f.has("task_ids"):
            t = f.raw("task_ids")
            if not isinstance(t, list) or not all(is_int(x) and x >= 1 for x in t):
                c.error((*path, "task_ids"), "expected a list of integers >= 1")
            elif any(x > TASK_ID_MAX for x in t):
                j = next(j for j, x in enumerate(t) if x > TASK_ID_MAX)
                c.error((*path, "task_ids", j), _beyond_u64("task id", t[j]))
            else:
                task_ids = tuple(sorted(set(t)))
        worker = _worker(c, f.raw("worker"), (*path, "worker"), worker_base)
        if name is None or rng is None:
            continue
        secret_path = (*path, secret_key(secret)) if secret else path
        drafts.append(
            ShardDraft(
                name,
                path,
                rng[0],
                rng[1],
                secret,
                secret_path,
                channels,
                task_ids,
                worker,
                public_key,
            )
        )
    return drafts


def _public_key(c: Collector, f: Entry, path: FieldPath) -> str | None:
    if not f.has("public_key"):
        return None
    value = f.raw("public_key")
    if not isinstance(value, str) or not is_valid_strkey(VERSION_ACCOUNT, value.strip()):
        hint = (
            ": that is a secret seed, never put one in the config"
            if isinstance(value, str) and value.strip().startswith("S")
            else ""
        )
        c.error((*path, "public_key"), f"not a valid Stellar public key (G...){hint}")
        return None
    return value.strip()


def _pattern(c: Collector, f: Entry, key: str, path: FieldPath, **values: Any) -> str | None:
    pat = f.raw(key)
    if not isinstance(pat, str):
        c.error((*path, key), f"expected a string, got {type_name(pat)}")
        return None
    try:
        return pat.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        c.error((*path, key), f"bad pattern ({exc}); placeholders: {', '.join(values)}")
        return None


def _ref(value: str, env: bool, base_dir: Path) -> SecretRef:
    return SecretRef(env=value) if env else SecretRef(file=str((base_dir / value).resolve()))


def split(c: Collector, data: Any, base_dir: Path, worker_base: dict[str, Any]) -> list[ShardDraft]:
    path: FieldPath = ("split",)
    f = Entry(c, data, path, SPLIT)
    rng = (
        read_range(c, f.raw("range"), (*path, "range"), allow_open=False)
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
    n_channels = f.integer("channels", 0, minimum=0) or 0
    ch_env = f.has("channel_secret_env_pattern")
    ch_file = f.has("channel_secret_file_pattern")
    if n_channels and ch_env == ch_file:
        c.error(
            (*path, "channels"),
            "give exactly one of channel_secret_env_pattern or channel_secret_file_pattern",
        )
    worker = _worker(c, f.raw("worker"), (*path, "worker"), worker_base)
    if rng is None or count is None or not f.has("name_pattern") or has_env == has_file:
        return []
    first, last = rng
    assert last is not None  # a closed range (allow_open=False)
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
                secret = _ref(value, has_env, base_dir)
        channels = []
        for j in range(1, n_channels + 1):
            ckey = "channel_secret_env_pattern" if ch_env else "channel_secret_file_pattern"
            cval = _pattern(c, f, ckey, path, index=index, channel=j)
            if cval is not None:
                channels.append((_ref(cval, ch_env, base_dir), (*path, ckey)))
        if name is not None:
            shard_last = None if (open_last and i == count - 1) else end
            drafts.append(
                ShardDraft(
                    name, path, start, shard_last, secret, (*path, key), channels, None, worker
                )
            )
        start = end + 1
    return drafts
