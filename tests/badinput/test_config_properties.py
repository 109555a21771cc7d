"""Property-based tests of the YAML config loader (hypothesis): generated valid files give a
plan with disjoint ranges; generated invalid files give a :class:`ConfigError` whose problems
name the broken field and its line, never a traceback."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair

from supervisor.cli import check_config_main
from supervisor.config import ConfigError, Plan, parse_config

CONTRACT = "CA3D5KRYM6CB7OWQ6TWYRR3Z4T7GNZLKERYNZGGA5SOAOPIFY6YQGAXE"
KEYS = [Keypair.random() for _ in range(8)]
# derandomized: CI runs the same examples every time (set SOROTASK_HYPOTHESIS_RANDOM=1 to explore)
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=not os.environ.get("SOROTASK_HYPOTHESIS_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for i, kp in enumerate(KEYS):
        monkeypatch.setenv(f"KP_{i}", kp.secret)
    monkeypatch.delenv("SOROTASK_HOST_INDEX", raising=False)


# ------------------------------------------------------------------ strategies

worker_values = st.fixed_dictionaries(
    {},
    optional={
        "poll_interval_s": st.floats(0.05, 60, allow_nan=False),
        "read_mode": st.sampled_from(["events", "ledger_entries", "simulate"]),
        "max_concurrent_reads": st.integers(1, 64),
        "max_concurrent_executions": st.integers(1, 16),
        "tx_timeout_s": st.integers(15, 300),  # valid from 2 ledgers + 5 s
        "base_fee": st.integers(100, 10_000),
    },
)


@st.composite
def listed_shards(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 6))
    cuts = sorted(draw(st.sets(st.integers(1, 10_000), min_size=2 * n, max_size=2 * n)))
    open_last = draw(st.booleans())
    shards = []
    for i in range(n):
        first, last = cuts[2 * i], cuts[2 * i + 1]
        shard: dict[str, Any] = {
            "name": f"s-{i}",
            "range": [first, None if open_last and i == n - 1 else last],
            "secret_env": f"KP_{i}",
        }
        if draw(st.booleans()):
            shard["worker"] = draw(worker_values)
        shards.append(shard)
    return shards


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "network": {
            "rpc_url": "http://127.0.0.1:8000",
            "network_passphrase": "Standalone Network ; February 2017",
            "contract_id": CONTRACT,
        },
        "worker": draw(worker_values),
        "supervisor": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "heartbeat_timeout_s": st.floats(0.5, 600, allow_nan=False),
                    "kill_grace_s": st.floats(0.1, 60, allow_nan=False),
                    "log_level": st.sampled_from(["DEBUG", "INFO", "WARNING"]),
                    "json_logs": st.booleans(),
                },
            )
        ),
    }
    if draw(st.booleans()):
        doc["shards"] = draw(listed_shards())
    else:
        count = draw(st.integers(1, 6))
        first = draw(st.integers(1, 1000))
        doc["split"] = {
            "range": [first, first + draw(st.integers(count, 50_000))],
            "count": count,
            "name_pattern": "shard-{index}",
            "secret_env_pattern": "KP_{index}",
            "open_last": draw(st.booleans()),
        }
    return doc


#: (field path, how to break it) -- each mutation breaks exactly that field
def _set(path: tuple[Any, ...], value: Any):
    def apply(doc: dict[str, Any]) -> str | None:
        node: Any = doc
        if path[0] in ("shards", "split") and path[0] not in doc:
            return None  # a shards mutation on a split config or the reverse: nothing to break
        for part in path[:-1]:
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    return None
            elif part not in node:
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
        out = ""
        for part in path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out

    return apply


BAD_VALUES: list[tuple[tuple[Any, ...], list[Any]]] = [
    (("worker", "poll_interval_s"), ["soon", -1, 0, [1]]),
    (("worker", "read_mode"), ["bogus", 5]),
    (("worker", "max_concurrent_reads"), [0, "many", 1.5]),
    (("worker", "pol_interval_s"), [5]),  # unknown key (a typo)
    (("supervisor", "heartbeat_timeout_s"), ["x", -3]),
    (("supervisor", "restart", "max_restarts"), [-1, "lots"]),
    (("supervisor", "status_address"), ["nohost", 9100]),
    (("network", "contract_id"), [123, None]),
    (("network", "rpc_url"), [42]),
    (("shards", 0, "range"), [[5, 2], "abc", [1], [0, 5], ["a", "b"]]),
    (("shards", 0, "secret_env"), ["NOT_SET_ANYWHERE", 7]),
    (("shards", 0, "name"), ["a b", "", 3]),
    (("shards", 0, "worker", "read_mode"), ["bogus"]),
    (("split", "count"), [0, "two"]),
    (("split", "range"), [[9, 1], "x"]),
]

mutations = st.sampled_from(BAD_VALUES).flatmap(
    lambda fv: st.sampled_from(fv[1]).map(lambda v: _set(fv[0], v))
)


def _load(doc: dict[str, Any]) -> tuple[str, Plan | ConfigError]:
    text = yaml.safe_dump(doc, sort_keys=False)
    try:
        return text, parse_config(text, file="gen.yaml", base_dir=Path("/tmp"))
    except ConfigError as exc:
        return text, exc


def _disjoint(plan: Plan) -> bool:
    spans = [(s.spec.range_first, s.spec.range_last or 10**18) for s in plan.shards]
    return all(a[1] < b[0] or b[1] < a[0] for a, b in itertools.combinations(spans, 2))


class TestGeneratedConfigs:
    @SETTINGS
    @given(valid_configs())
    def test_every_valid_config_gives_a_plan_with_disjoint_ranges(self, doc: dict) -> None:
        text, out = _load(doc)
        assert isinstance(out, Plan), f"{text}\n{out}"
        assert out.shards and _disjoint(out)
        names = [s.name for s in out.shards]
        assert len(set(names)) == len(names)
        keepers = [s.keeper_public_key for s in out.shards]
        assert len(set(keepers)) == len(keepers)

    @SETTINGS
    @given(valid_configs(), mutations)
    def test_every_broken_field_is_named_with_its_line(self, doc: dict, mutate) -> None:
        field = mutate(doc)
        if field is None:  # e.g. a shards[0] mutation on a split config: nothing broken
            return
        text, out = _load(doc)
        assert isinstance(out, ConfigError), f"accepted:\n{text}"
        n_lines = len(text.splitlines())
        for p in out.problems:
            assert p.file == "gen.yaml" and p.message
            assert p.line is None or 1 <= p.line <= n_lines + 1
        named = [
            p
            for p in out.problems
            if p.field == field or p.field.startswith((field + ".", field + "["))
        ]
        assert named, f"no problem names {field}: {[str(p) for p in out.problems]}\n{text}"
        assert all(p.line is not None for p in named)

    @SETTINGS
    @given(valid_configs(), valid_configs())
    def test_overlapping_listed_ranges_are_reported(self, a: dict, b: dict) -> None:
        if "shards" not in a:
            return
        shards = a["shards"]
        dup = dict(shards[0], name="overlapper", secret_env="KP_7")
        dup["range"] = [shards[0]["range"][0], shards[0]["range"][0]]
        shards.append(dup)
        text, out = _load(a)
        assert isinstance(out, ConfigError), text
        assert any("overlap" in p.message for p in out.problems), [str(p) for p in out.problems]


yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["network", "worker", "supervisor", "shards", "split", "range", "name", "x"]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


class TestArbitraryInput:
    @SETTINGS
    @given(yaml_values)
    def test_arbitrary_yaml_structures_never_raise_anything_but_config_error(self, v) -> None:
        text = yaml.safe_dump(v)
        try:
            parse_config(text, file="gen.yaml", base_dir=Path("/tmp"))
        except ConfigError as exc:
            assert exc.problems and all(str(p) for p in exc.problems)

    @SETTINGS
    @given(st.text(max_size=300))
    def test_arbitrary_text_never_raises_anything_but_config_error(self, text: str) -> None:
        with contextlib.suppress(ConfigError):
            parse_config(text, file="gen.yaml", base_dir=Path("/tmp"))

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=not os.environ.get("SOROTASK_HYPOTHESIS_RANDOM"),
    )
    @given(valid_configs(), mutations)
    def test_check_config_prints_problems_and_exits_78_without_a_traceback(
        self, tmp_path_factory: pytest.TempPathFactory, doc: dict, mutate
    ) -> None:
        if mutate(doc) is None:
            return
        path = tmp_path_factory.mktemp("cfg") / "c.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = check_config_main([str(path)])
        assert code == 78
        assert "Traceback" not in err.getvalue()
        assert f"{path}:" in err.getvalue()
        assert all(kp.secret not in err.getvalue() for kp in KEYS)


class TestControlCharacters:
    def test_control_character_is_a_syntax_error_with_its_line_not_a_traceback(
        self, tmp_path: Path
    ) -> None:
        # found by the property test above: PyYAML's reader raised before parsing began
        path = tmp_path / "c.yaml"
        path.write_text("network:\n  rpc_url: \x08\n")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = check_config_main([str(path)])
        assert code == 78
        assert f"{path}:2: <top>: YAML syntax error: character U+0008" in err.getvalue()
