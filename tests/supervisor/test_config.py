"""Unit tests of supervisor.config: every error kind names file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from supervisor.config import ConfigError, Plan, load_config
from tests.support.supervisor import CONTRACT, PASSPHRASE, keypairs

K = keypairs(6)


def write(tmp_path: Path, body: str, name: str = "sorotask.yaml") -> Path:
    head = textwrap.dedent(
        f"""\
        network:
          rpc_url: "http://127.0.0.1:8000"
          network_passphrase: "{PASSPHRASE}"
          contract_id: "{CONTRACT}"
        """
    )
    p = tmp_path / name
    p.write_text(head + textwrap.dedent(body))
    return p


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for i, kp in enumerate(K):
        monkeypatch.setenv(f"KS_{i}", kp.secret)
    monkeypatch.delenv("SOROTASK_HOST_INDEX", raising=False)
    return monkeypatch


def problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config(path, **kw)  # type: ignore[arg-type]
    return [str(p) for p in ei.value.problems]


def one(probs: list[str], fragment: str) -> str:
    hits = [p for p in probs if fragment in p]
    assert hits, f"no problem mentions {fragment!r}: {probs}"
    return hits[0]


class TestValidConfig:
    def test_listed_shards_resolve_to_specs_and_public_keys(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            worker: {poll_interval_s: 2, max_concurrent_reads: 4}
            supervisor: {status_address: "127.0.0.1:9200", log_dir: ./lg}
            shards:
              - {name: a, range: [1, 1000], secret_env: KS_0}
              - name: b
                range: [1001, null]
                secret_env: KS_1
                channels: [{secret_env: KS_2}]
                worker: {poll_interval_s: 1}
            """,
        )
        plan = load_config(p)
        assert isinstance(plan, Plan)
        a, b = plan.shards
        assert (a.spec.range_first, a.spec.range_last) == (1, 1000)
        assert (b.spec.range_first, b.spec.range_last) == (1001, None)
        assert a.keeper_public_key == K[0].public_key
        assert b.channel_public_keys == (K[2].public_key,)
        assert a.spec.poll_interval_s == 2 and b.spec.poll_interval_s == 1
        assert a.spec.max_concurrent_reads == 4
        assert b.spec.channel_secrets[0].env == "KS_2"
        assert plan.settings.log_dir == str((tmp_path / "lg").resolve())
        assert plan.settings.status_host_port() == ("127.0.0.1", 9200)
        assert plan.warnings == ()

    def test_split_cuts_range_into_equal_disjoint_shards(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            split: {range: [1, 3001], count: 3, name_pattern: "s{index}",
                    secret_env_pattern: "KS_{index}", open_last: true}
            """,
        )
        plan = load_config(p)
        got = [(s.name, s.spec.range_first, s.spec.range_last) for s in plan.shards]
        assert got == [("s1", 1, 1001), ("s2", 1002, 2001), ("s3", 2002, None)]
        assert [s.keeper_public_key for s in plan.shards] == [k.public_key for k in K[1:4]]

    def test_secret_file_is_read_and_never_stored_in_the_spec(self, tmp_path: Path, env) -> None:
        sf = tmp_path / "a.secret"
        sf.write_text(K[0].secret + "\n")
        sf.chmod(0o600)
        p = write(tmp_path, "shards: [{name: a, range: [1, null], secret_file: a.secret}]\n")
        plan = load_config(p)
        assert plan.shards[0].keeper_public_key == K[0].public_key
        assert K[0].secret not in repr(plan)
        assert plan.shards[0].spec.secret.file == str(sf.resolve())

    def test_gap_in_coverage_is_a_warning(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            shards:
              - {name: a, range: [1, 100], secret_env: KS_0}
              - {name: b, range: [201, 300], secret_env: KS_1}
            """,
        )
        plan = load_config(p)
        w = [str(x) for x in plan.warnings]
        assert one(w, "101..200").startswith(f"{p}:7: shards[1].range")
        one(w, "from 301 on")


class TestConfigErrors:
    def test_unknown_key_names_file_line_and_field(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            worker:
              poll_intervl_s: 3
            shards: [{name: a, range: [1, null], secret_env: KS_0}]
            """,
        )
        msg = one(problems(p), "unknown key")
        assert msg.startswith(f"{p}:6: worker.poll_intervl_s: unknown key")
        assert "poll_interval_s" in msg  # the suggestion

    def test_overlapping_ranges_are_reported_with_both_shards(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            shards:
              - {name: a, range: [1, 100], secret_env: KS_0}
              - {name: b, range: [50, 150], secret_env: KS_1}
            """,
        )
        msg = one(problems(p), "overlaps")
        assert msg.startswith(f"{p}:7: shards[1].range")
        assert "'a'" in msg and "'b'" in msg

    def test_open_range_overlaps_everything_after_it(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            shards:
              - {name: a, range: [1, null], secret_env: KS_0}
              - {name: b, range: [5000, 6000], secret_env: KS_1}
            """,
        )
        one(problems(p), "overlaps")

    def test_duplicate_shard_names(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            shards:
              - {name: a, range: [1, 100], secret_env: KS_0}
              - {name: a, range: [101, 200], secret_env: KS_1}
            """,
        )
        msg = one(problems(p), "duplicate shard name")
        assert msg.startswith(f"{p}:7: shards[1].name") and "line 6" in msg

    def test_same_keypair_in_two_shards_without_printing_it(
        self, tmp_path: Path, env: pytest.MonkeyPatch
    ) -> None:
        env.setenv("KS_COPY", K[0].secret)
        p = write(
            tmp_path,
            """\
            shards:
              - {name: a, range: [1, 100], secret_env: KS_0}
              - {name: b, range: [101, 200], secret_env: KS_COPY}
            """,
        )
        probs = problems(p)
        msg = one(probs, "sequence numbers collide")
        assert msg.startswith(f"{p}:7: shards[1]")
        assert K[0].public_key in msg
        assert all(K[0].secret not in x for x in probs)

    def test_same_secret_variable_in_two_shards(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            shards:
              - {name: a, range: [1, 100], secret_env: KS_0}
              - {name: b, range: [101, 200], secret_env: KS_1, channels: [{secret_env: KS_0}]}
            """,
        )
        msg = one(problems(p), "is also used by shard 'a'")
        assert msg.startswith(f"{p}:7: shards[1].channels[0]")

    def test_missing_secret_variable(self, tmp_path: Path, env) -> None:
        p = write(tmp_path, "shards: [{name: a, range: [1, null], secret_env: NOPE_NOT_SET}]\n")
        msg = one(problems(p), "NOPE_NOT_SET is not set")
        assert msg.startswith(f"{p}:5: shards[0]")

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o400 | 0o040])
    def test_secret_file_readable_by_group_or_others_is_refused_with_the_chmod(
        self, tmp_path: Path, env, mode: int
    ) -> None:
        sf = tmp_path / "a.secret"
        sf.write_text(K[0].secret)
        sf.chmod(mode)
        p = write(tmp_path, "shards: [{name: a, range: [1, null], secret_file: a.secret}]\n")
        probs = problems(p)
        msg = one(probs, f"chmod 600 {sf}")
        assert msg.startswith(f"{p}:5: shards[0].secret_file")
        assert f"mode {mode:04o}" in msg
        assert all(K[0].secret not in x for x in probs)
        sf.chmod(0o600)
        assert load_config(p).shards[0].keeper_public_key == K[0].public_key

    def test_ranges_and_ids_beyond_u64_are_refused_at_their_field(
        self, tmp_path: Path, env
    ) -> None:
        p = write(
            tmp_path,
            """\
            shards:
              - {name: a, range: [1, 18446744073709551616], secret_env: KS_0}
              - {name: b, range: [18446744073709551616, null], secret_env: KS_1}
              - name: c
                range: [1, 18446744073709551615]
                task_ids: [5, 18446744073709551617]
                secret_env: KS_2
            """,
        )
        probs = problems(p)
        assert one(probs, "last 18446744073709551616 is beyond u64").startswith(
            f"{p}:6: shards[0].range[1]"
        )
        assert one(probs, "first 18446744073709551616 is beyond u64").startswith(
            f"{p}:7: shards[1].range[0]"
        )
        assert one(probs, "task id 18446744073709551617 is beyond u64").startswith(
            f"{p}:10: shards[2].task_ids[1]"
        )
        assert all("18446744073709551615 is beyond" not in x for x in probs)

    def test_split_range_beyond_u64_is_refused(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            split:
              range: [1, 99999999999999999999]
              count: 2
              name_pattern: "s-{index}"
              secret_env_pattern: "KS_{index}"
            """,
        )
        msg = one(problems(p), "beyond u64 (18446744073709551615)")
        assert msg.startswith(f"{p}:6: split.range[1]")

    def test_missing_secret_file(self, tmp_path: Path, env) -> None:
        p = write(tmp_path, "shards: [{name: a, range: [1, null], secret_file: gone.secret}]\n")
        one(problems(p), "does not exist")

    def test_malformed_secret_is_rejected_without_echoing_it(
        self, tmp_path: Path, env: pytest.MonkeyPatch
    ) -> None:
        bad = "SNOTAVALIDSEEDXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
        env.setenv("KS_BAD", bad)
        p = write(tmp_path, "shards: [{name: a, range: [1, null], secret_env: KS_BAD}]\n")
        probs = problems(p)
        one(probs, "not hold a valid Stellar secret seed")
        assert all(bad not in x for x in probs)

    def test_wrong_types_name_field_and_type(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            worker: {poll_interval_s: "fast", max_concurrent_reads: 2.5, read_mode: turbo}
            supervisor: {json_logs: "yes", status_address: "nohostport"}
            shards: [{name: a, range: [1, null], secret_env: KS_0}]
            """,
        )
        probs = problems(p)
        assert one(probs, "worker.poll_interval_s").endswith("expected a number, got string")
        one(probs, "worker.max_concurrent_reads: expected an integer, got number")
        one(probs, "worker.read_mode: must be one of events, ledger_entries, simulate")
        assert one(probs, "supervisor.json_logs").startswith(f"{p}:6:")
        one(probs, "supervisor.status_address: expected 'host:port'")

    def test_fee_settings_that_do_not_fit_together(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            worker: {fee_floor: 5000, fee_max_inclusion: 1000, fee_percentile: 75}
            shards:
              - {name: a, range: [1, 10], secret_env: KS_0}
              - name: b
                range: [11, null]
                secret_env: KS_1
                worker: {fee_floor: 100, fee_max_inclusion: 9000, fee_max_total: 9000}
            """,
        )
        probs = problems(p)
        one(probs, "worker.fee_percentile: must be one of 10, 20, 30")
        one(probs, "worker: fee_max_inclusion (1000) is below fee_floor (5000)")
        one(probs, "shards[1].worker: fee_max_total (9000) must be above fee_max_inclusion (9000)")

    def test_bad_range_shapes(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            shards:
              - {name: a, range: [10, 5], secret_env: KS_0}
              - {name: b, range: [0, 20], secret_env: KS_1}
              - {name: c, range: 7, secret_env: KS_2}
            """,
        )
        probs = problems(p)
        one(probs, "last (5) is below first (10)")
        one(probs, "shards[1].range[0]: first must be an integer >= 1")
        one(probs, "shards[2].range: expected [first, last]")

    def test_yaml_syntax_error_has_a_line(self, tmp_path: Path, env) -> None:
        p = tmp_path / "broken.yaml"
        p.write_text("network:\n  rpc_url: [unclosed\nshards: {\n")
        msg = one(problems(p), "YAML syntax error")
        assert msg.startswith(f"{p}:")
        assert msg.split(":")[1].isdigit()

    def test_duplicate_yaml_key_is_an_error(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            worker: {poll_interval_s: 1}
            worker: {poll_interval_s: 2}
            shards: [{name: a, range: [1, null], secret_env: KS_0}]
            """,
        )
        assert one(problems(p), "duplicate key").startswith(f"{p}:6: worker")

    def test_secret_env_and_file_together(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            "shards: [{name: a, range: [1, null], secret_env: KS_0, secret_file: x}]\n",
        )
        one(problems(p), "exactly one of secret_env or secret_file")

    def test_every_problem_is_collected_in_one_error(self, tmp_path: Path, env) -> None:
        p = write(
            tmp_path,
            """\
            colour: blue
            shards:
              - {name: a, range: [1, 100], secret_env: MISSING_A}
              - {name: "bad name", range: [50, 60], secret_env: KS_1}
              - {name: c, range: [90, 95]}
            """,
        )
        probs = problems(p)
        for frag in (
            "colour: unknown key",
            "MISSING_A is not set",
            "must match",
            "missing secret_env or secret_file",
            "overlaps",
        ):
            one(probs, frag)

    def test_missing_network_and_shards(self, tmp_path: Path, env) -> None:
        p = tmp_path / "empty.yaml"
        p.write_text("supervisor: {log_dir: x}\n")
        probs = problems(p)
        one(probs, "network: required")
        one(probs, "shards: required")

    def test_missing_config_file(self, tmp_path: Path) -> None:
        one(problems(tmp_path / "nope.yaml"), "does not exist")


class TestHosts:
    DOC = """\
        supervisor: {host_count: 2, host_index: auto}
        split: {range: [1, 400], count: 4, name_pattern: "s{index}",
                secret_env_pattern: "KS_{index}"}
        """

    def test_host_index_from_environment_takes_every_other_shard(
        self, tmp_path: Path, env: pytest.MonkeyPatch
    ) -> None:
        env.setenv("SOROTASK_HOST_INDEX", "1")
        env.delenv("KS_1")  # host 1 does not hold shard s1's key: not needed there
        plan = load_config(write(tmp_path, self.DOC))
        assert [s.name for s in plan.local_shards] == ["s2", "s4"]
        assert [s.host for s in plan.shards] == [0, 1, 0, 1]
        assert plan.shards[0].keeper_public_key is None

    def test_host_index_override_and_out_of_range(self, tmp_path: Path, env) -> None:
        p = write(tmp_path, self.DOC)
        assert [s.name for s in load_config(p, host_index=0).local_shards] == ["s1", "s3"]
        one(problems(p, host_index=5), "outside 0..1")

    def test_hostname_ordinal(self, tmp_path: Path, env, monkeypatch) -> None:
        import socket

        monkeypatch.setattr(socket, "gethostname", lambda: "sorotask-1")
        plan = load_config(write(tmp_path, self.DOC))
        assert plan.settings.host_index == 1


class TestExampleConfigs:
    ROOT = Path(__file__).resolve().parents[2] / "deploy"

    def test_commented_example_passes_with_its_secret_variables_set(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for i, kp in enumerate(keypairs(5)):
            monkeypatch.setenv(
                f"KEEPER_SECRET_{'ABCD'[i]}" if i < 4 else "KEEPER_CHANNEL_D1", kp.secret
            )
        plan = load_config(self.ROOT / "examples" / "sorotask.example.yaml")
        assert [s.name for s in plan.shards] == ["a", "b", "c", "d"]
        assert all(s.keeper_public_key for s in plan.shards)

    def test_every_example_is_structurally_valid(self) -> None:
        files = sorted((self.ROOT / "examples").glob("*.yaml"))
        assert files
        for f in files:
            plan = load_config(f, check_secrets=False, host_index=0)
            assert plan.shards, f


class TestHostileYaml:
    def test_recursive_alias_is_an_error_not_a_hang(self, tmp_path: Path, env) -> None:
        p = tmp_path / "rec.yaml"
        p.write_text("network: &x {a: *x}\n")
        one(problems(p), "recursive alias")

    def test_alias_bomb_is_not_expanded(self, tmp_path: Path, env) -> None:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 30):
            prev = f"*a{i - 1}"
            lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
        p = tmp_path / "bomb.yaml"
        p.write_text("\n".join(lines) + "\n")
        probs = problems(p)  # returns quickly with the unknown keys
        one(probs, "a29: unknown key")
