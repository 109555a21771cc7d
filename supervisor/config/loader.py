"""Load a YAML config file, validate it and resolve it into a :class:`Plan`.

Order of work: YAML with lines; the ``network``, ``supervisor`` and ``worker`` blocks (schema
from the declarations); the shards (listed or split); then the checks across shards (unique
names, disjoint ranges, coverage gaps as warnings, one account per shard); then the secrets
of this host's shards and the worker specs. Every problem is collected and raised together.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from shard_worker.endpoint_config import EndpointConfig
from shard_worker.spec import WorkerSpec
from sorotask_core.settings import NETWORK, RESTART, SUPERVISOR, TOP, WORKER, Key
from supervisor.config.plan import Plan, RestartPolicy, ShardPlan, SupervisorSettings
from supervisor.config.problems import Collector, ConfigError, FieldPath, Problem, type_name
from supervisor.config.schema import read_block
from supervisor.config.secrets import check_secret
from supervisor.config.shards import Entry, ShardDraft, check_fees, shard_list, split
from supervisor.config.yamlsource import compose

HOST_INDEX_ENV = "SOROTASK_HOST_INDEX"


def load_config(
    path: str | os.PathLike[str],
    *,
    check_secrets: bool = True,
    host_index: int | None = None,
    dry_run: bool = False,
) -> Plan:
    """Load and validate ``path``; raise :class:`ConfigError` listing every problem.

    ``dry_run``: for ``sorotask run --dry-run``: a shard may give only its ``public_key``
    (then no secret of it is read), and every spec says ``dry_run``."""
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
        dry_run=dry_run,
    )


def parse_config(
    text: str,
    *,
    file: str = "<config>",
    base_dir: Path | None = None,
    check_secrets: bool = True,
    host_index: int | None = None,
    dry_run: bool = False,
) -> Plan:
    """Validate YAML text into a :class:`Plan` (keys: README's configuration reference)."""
    base_dir = base_dir or Path.cwd()
    data, lines, problems = compose(text, file)
    c = Collector(file, lines)
    c.errors.extend(problems)
    if problems and data is None:
        raise ConfigError(c.errors)
    if not isinstance(data, dict):
        c.error((), f"expected a mapping at the top level, got {type_name(data)}")
        raise ConfigError(c.errors)
    top = Entry(c, data, (), tuple(Key((k,), "") for k in TOP))

    if top.has("network"):
        network = read_block(c, top.raw("network"), ("network",), NETWORK, {})[0]
        given = top.raw("network") if isinstance(top.raw("network"), dict) else {}
        has_url, has_urls = (given.get(k) is not None for k in ("rpc_url", "rpc_urls"))
        if not has_url and not has_urls:
            c.error(("network", "rpc_url"), "required (or rpc_urls: several endpoints)")
        elif has_url and has_urls:
            c.error(("network", "rpc_urls"), "give either rpc_url or rpc_urls, not both")
    else:
        c.error(("network",), "required")
        network = {}
    settings = _supervisor(c, top.raw("supervisor"), base_dir, host_index)
    worker_base = {s.name: s.default for s in WORKER.yaml_settings()}
    worker_base = read_block(c, top.raw("worker"), ("worker",), WORKER, worker_base)[0]
    check_fees(c, worker_base, ("worker",))

    if top.has("shards") and top.has("split"):
        c.error(("split",), "give either shards or split, not both")
        drafts: list[ShardDraft] = []
    elif top.has("shards"):
        drafts = shard_list(c, top.raw("shards"), base_dir, worker_base)
    elif top.has("split"):
        drafts = split(c, top.raw("split"), base_dir, worker_base)
    else:
        c.error(("shards",), "required (a list of shards, or a split block)")
        drafts = []

    _check_names(c, drafts)
    _check_overlaps(c, drafts)
    _warn_gaps(c, drafts)
    _check_secret_refs(c, drafts)
    if settings.host_count > 1 and len(drafts) < settings.host_count:
        c.warn(
            ("supervisor", "host_count"),
            f"{settings.host_count} hosts for {len(drafts)} shards: some hosts run nothing",
        )
    endpoints = rpc_endpoints(c, network, len(drafts))
    shard_plans = _shard_plans(c, drafts, network, endpoints, settings, check_secrets, dry_run)

    c.errors = list(dict.fromkeys(c.errors))
    c.warnings = list(dict.fromkeys(c.warnings))
    if c.errors:
        raise ConfigError(c.errors)
    if settings.host_count > 1 and not any(s.host == settings.host_index for s in shard_plans):
        c.warn(("supervisor", "host_index"), f"host {settings.host_index} has no shards")
    return Plan(
        file=file,
        settings=settings,
        shards=tuple(shard_plans),
        warnings=tuple(c.warnings),
        dry_run=dry_run,
    )


# --------------------------------------------------------------------------- supervisor block


def _resolve_host_index(raw: int | str, c: Collector, override: int | None) -> int:
    if override is not None:
        return override
    if raw != "auto":
        return int(raw)
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


def _supervisor(
    c: Collector, data: Any, base_dir: Path, host_index_override: int | None
) -> SupervisorSettings:
    path: FieldPath = ("supervisor",)
    values, blocks = read_block(c, data, path, SUPERVISOR, SUPERVISOR.defaults())
    restart = read_block(c, blocks["restart"], (*path, "restart"), RESTART, RESTART.defaults())[0]
    host_index = _resolve_host_index(values.pop("host_index"), c, host_index_override)
    host_count = values["host_count"]
    if host_index < 0 or host_index >= host_count:
        c.error(
            (*path, "host_index"),
            f"host index {host_index} is outside 0..{host_count - 1} (host_count {host_count})",
        )
    values["log_dir"] = str((base_dir / values["log_dir"]).resolve())
    values["state_dir"] = str((base_dir / values["state_dir"]).resolve())
    return SupervisorSettings(**values, restart=RestartPolicy(**restart), host_index=host_index)


# --------------------------------------------------------------------------- across shards


def _check_names(c: Collector, drafts: list[ShardDraft]) -> None:
    seen: dict[str, ShardDraft] = {}
    for d in drafts:
        if d.name in seen:
            other = seen[d.name]
            c.error(
                (*d.path, "name"),
                f"duplicate shard name {d.name!r} (also at line {c.line_of(other.path)})",
            )
        else:
            seen[d.name] = d


def _ids_overlap(a: ShardDraft, b: ShardDraft) -> bool:
    """Whether two shards share a task id (their effective ids when task_ids are given)."""
    a_last = a.last if a.last is not None else float("inf")
    b_last = b.last if b.last is not None else float("inf")
    if max(a.first, b.first) > min(a_last, b_last):
        return False
    if a.task_ids is not None and b.task_ids is not None:
        return bool(set(a.task_ids) & set(b.task_ids))
    return True


def _check_overlaps(c: Collector, drafts: list[ShardDraft]) -> None:
    for i, a in enumerate(drafts):
        for b in drafts[i + 1 :]:
            if _ids_overlap(a, b):
                c.error(
                    (*b.path, "range"),
                    f"range of shard {b.name!r} overlaps shard {a.name!r} "
                    f"(line {c.line_of((*a.path, 'range'))}): a task would be executed twice",
                )


def _warn_gaps(c: Collector, drafts: list[ShardDraft]) -> None:
    expect: int | None = 1
    for d in sorted(drafts, key=lambda d: d.first):
        assert expect is not None
        if d.first > expect:
            c.warn((*d.path, "range"), f"task ids {expect}..{d.first - 1} are covered by no shard")
        if d.last is None:
            expect = None
            break
        expect = max(expect, d.last + 1)
    if drafts and expect is not None:
        c.warn(("shards",), f"task ids from {expect} on are covered by no shard (no open range)")


def _check_secret_refs(c: Collector, drafts: list[ShardDraft]) -> None:
    """The same secret reference (variable or file) in two places is an error."""
    refs: dict[tuple[str | None, str | None], str] = {}
    for d in drafts:
        all_refs = ([(d.secret, d.secret_path)] if d.secret else []) + d.channels
        for ref, rpath in all_refs:
            k = (ref.env, ref.file)
            if k in refs and refs[k] != f"{d.name}:{rpath}":
                c.error(
                    rpath,
                    f"{ref.describe()} is also used by shard {refs[k].split(':')[0]!r}: "
                    "two accounts' sequence numbers would collide",
                )
            else:
                refs[k] = f"{d.name}:{rpath}"


# --------------------------------------------------------------------------- plans


def rpc_endpoints(c: Collector, network: dict[str, Any], shards: int) -> tuple[dict[str, Any], ...]:
    """``network.rpc_urls`` as worker-spec entries (empty for a single ``rpc_url``). Each
    endpoint's ``max_requests_per_s`` is the provider's budget for the whole file, so every
    shard gets an equal share of it (``shards`` share each endpoint)."""
    raw = network.get("rpc_urls")
    if not raw:
        return ()
    out: list[dict[str, Any]] = []
    labels: dict[str, int] = {}
    for i, entry in enumerate(raw):
        item = {"url": entry} if isinstance(entry, str) else dict(entry)
        rate = item.get("max_requests_per_s")
        spec_entry = {
            "url": item["url"],
            "weight": float(item.get("weight", 1.0)),
            "max_requests_per_s": None if rate is None else float(rate) / max(1, shards),
            "headers_from_env": dict(item.get("headers") or {}),
            "name": item.get("name"),
        }
        try:
            label = EndpointConfig(**spec_entry).label
        except ValueError as exc:
            c.error(("network", "rpc_urls", i), str(exc))
            continue
        if label in labels:
            c.error(
                ("network", "rpc_urls", i),
                f"shown as {label}, like entry {labels[label]}: give one of them a name",
            )
        labels[label] = i
        out.append(spec_entry)
    return tuple(out)


def _shard_plans(
    c: Collector,
    drafts: list[ShardDraft],
    network: dict[str, Any],
    endpoints: tuple[dict[str, Any], ...],
    settings: SupervisorSettings,
    check_secrets: bool,
    dry_run: bool = False,
) -> list[ShardPlan]:
    """Secrets checked for this host's shards only (one account per place), then the specs.

    A dry run reads no secret of a shard that gives its ``public_key``; a real run refuses a
    shard that gives only that."""
    plans: list[ShardPlan] = []
    seen_keys: dict[str, str] = {}
    for i, d in enumerate(drafts):
        host = i % settings.host_count
        keeper_pk = None
        ch_pks: list[str | None] = [None] * len(d.channels)
        watch_only = dry_run and d.public_key is not None
        if d.secret is None and d.public_key is not None and not dry_run:
            c.error(
                (*d.path, "public_key"),
                "a public_key without a secret can only dry-run (sorotask run --dry-run): "
                "give secret_env or secret_file to execute tasks",
            )
        if watch_only:
            keeper_pk = d.public_key
        elif check_secrets and host == settings.host_index and d.secret is not None:
            keeper_pk = check_secret(c, d.secret, d.secret_path)
            if not dry_run:  # a dry run does not use the channel accounts
                ch_pks = [check_secret(c, ref, cpath) for ref, cpath in d.channels]
            if keeper_pk and d.public_key and keeper_pk != d.public_key:
                c.error(
                    d.secret_path,
                    f"the secret is the key of {keeper_pk}, not of public_key {d.public_key}",
                )
                keeper_pk = None
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
        if d.worker["stop_grace_s"] >= settings.shutdown_grace_s:
            c.warn(
                (*d.path, "worker", "stop_grace_s"),
                f"stop_grace_s ({d.worker['stop_grace_s']}) >= supervisor.shutdown_grace_s "
                f"({settings.shutdown_grace_s}): in-flight transactions may be cut off",
            )
        if d.secret is None and not watch_only:
            continue
        spec = WorkerSpec(
            name=d.name,
            rpc_url=network.get("rpc_url") or (endpoints[0]["url"] if endpoints else ""),
            rpc_endpoints=endpoints,
            network_passphrase=network.get("network_passphrase") or "",
            contract_id=network.get("contract_id") or "",
            secret=d.secret,
            range_first=d.first,
            range_last=d.last,
            task_ids=d.task_ids,
            # a dry run sends from the keeper's account only: channel secrets are not read
            channel_secrets=() if dry_run else tuple(r for r, _ in d.channels),
            state_dir=str(Path(settings.state_dir) / d.name),
            public_key=d.public_key,
            dry_run=dry_run,
            **d.worker,
        )
        plans.append(ShardPlan(spec, keeper_pk, tuple(ch_pks), host, c.line_of(d.path)))
    return plans
