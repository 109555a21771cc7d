"""The settings declarations (sorotask_core.settings) and what is built from them: the worker
spec and the supervisor's settings carry exactly the declared fields, types and defaults."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from typing import Any

import pytest

from shard_worker.spec import WorkerSpec
from sorotask_core import settings as s
from supervisor.config import RestartPolicy, SupervisorSettings

ALL = [(section, setting) for section in s.SECTIONS for setting in section]


def _ids(case: tuple[s.Section, s.Setting]) -> str:
    return f"{case[0].path}.{case[1].name}"


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _accepts(annotation: Any, setting: s.Setting) -> bool:
    """Whether a dataclass field's annotation is the declared type (nullable: ``| None``)."""
    args = set(typing.get_args(annotation)) or {annotation}
    if typing.get_origin(annotation) is typing.Literal:
        return setting.choices == typing.get_args(annotation)
    want = {setting.type} | ({type(None)} if setting.nullable else set())
    literal = [a for a in args if typing.get_origin(a) is typing.Literal]
    return args == want or bool(literal and setting.choices)


def _declared_fields(cls: type, section: s.Section) -> None:
    """Every declared setting of ``section`` is a field of ``cls`` with its type and default."""
    names = {x.name for x in section}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name in names}
    types = _field_types(cls)
    assert set(fields) == names
    for setting in section:
        f = fields[setting.name]
        assert f.default == setting.default, setting.name
        assert _accepts(types[setting.name], setting), (setting.name, types[setting.name])


class TestDeclarations:
    def test_names_are_unique_in_each_block(self) -> None:
        for section in s.SECTIONS:
            names = [x.name for x in section]
            assert len(names) == len(set(names)), section.path

    @pytest.mark.parametrize("case", ALL, ids=_ids)
    def test_default_is_a_valid_value_of_its_own_setting(
        self, case: tuple[s.Section, s.Setting]
    ) -> None:
        _, setting = case
        if setting.required:
            return
        value = setting.default
        if value is None:
            assert setting.nullable
        else:
            assert isinstance(value, setting.type) and not (
                setting.type is not bool and isinstance(value, bool)
            )
            assert setting.problem(value) is None

    @pytest.mark.parametrize("case", ALL, ids=_ids)
    def test_doc_is_one_line(self, case: tuple[s.Section, s.Setting]) -> None:
        doc = case[1].doc
        assert doc and "\n" not in doc and len(doc) <= 100

    def test_bounds_choices_and_rules_name_the_problem(self) -> None:
        w, sup, r = s.WORKER, s.SUPERVISOR, s.RESTART
        assert w["max_concurrent_reads"].problem(0) == "must be >= 1, got 0"
        assert w["poll_interval_s"].problem(0.0) == "must be > 0, got 0"
        assert w["poll_interval_s"].problem(2.5) is None
        assert r["jitter"].problem(1.0) == "must be < 1, got 1"
        assert w["read_mode"].problem("turbo") == (
            "must be one of events, ledger_entries, simulate, got 'turbo'"
        )
        assert sup["log_level"].problem("debug") is None
        assert "must be one of TRACE" in str(sup["log_level"].problem("LOUD"))
        address = sup["status_address"]
        assert address.problem("nohost") == "expected 'host:port', got 'nohost'"
        assert address.problem("h:99999") == "port must be <= 65535"
        assert address.problem(None) is None  # null turns the server off
        assert sup["host_index"].problem("auto") is None
        assert sup["host_index"].expected == "an integer or 'auto'"
        assert s.NETWORK["rpc_url"].problem("ftp://x") == "expected an http(s) URL"
        # a URL may hold an API key: the problem never echoes it
        assert "k3y" not in s.NETWORK["rpc_url"].problem("ftp://x/?apikey=k3yk3yk3y")
        bad_port = s.NETWORK["rpc_url"].problem("http://h:99999/?apikey=k3yk3yk3y")
        assert bad_port == "expected an http(s) URL (bad host or port)"

    def test_importing_the_declarations_loads_nothing_else_of_ours_nor_pydantic(self) -> None:
        code = (
            "import sys, sorotask_core.settings; "
            "ours = ('shard_worker', 'supervisor', 'devnet', 'sorotask.', 'pydantic'); "
            "print(sorted(m for m in sys.modules if m.startswith(ours) or m == 'sorotask'))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert out.stdout.strip() == "[]"


class TestBuiltFromTheDeclarations:
    def test_worker_spec_has_every_worker_setting_with_its_type_and_default(self) -> None:
        _declared_fields(WorkerSpec, s.WORKER)

    def test_worker_spec_has_no_undeclared_setting(self) -> None:
        shard = {
            "name",
            "rpc_url",
            "network_passphrase",
            "contract_id",
            "secret",
            "range_first",
            "range_last",
            "task_ids",
            "channel_secrets",
            "rpc_endpoints",
            "public_key",
            "dry_run",
        }
        names = {f.name for f in dataclasses.fields(WorkerSpec)}
        assert names - shard == {x.name for x in s.WORKER}

    def test_supervisor_settings_are_the_supervisor_block(self) -> None:
        _declared_fields(SupervisorSettings, s.SUPERVISOR)
        assert {f.name for f in dataclasses.fields(SupervisorSettings)} == s.SUPERVISOR.keys()

    def test_restart_policy_is_the_restart_block(self) -> None:
        _declared_fields(RestartPolicy, s.RESTART)
        assert {f.name for f in dataclasses.fields(RestartPolicy)} == s.RESTART.keys()
