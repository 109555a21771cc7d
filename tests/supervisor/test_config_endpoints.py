"""network.rpc_urls in the YAML config: entries, errors by field, budgets split among shards,
and no credential in any message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shard_worker.endpoint_config import EndpointConfig
from supervisor.config import ConfigError, load_config
from tests.support.supervisor import CONTRACT, PASSPHRASE, keypairs

K = keypairs(3)


def write(tmp_path: Path, network: str, shards: int = 2) -> Path:
    body = textwrap.dedent(
        f"""\
        network:
          network_passphrase: "{PASSPHRASE}"
          contract_id: "{CONTRACT}"
        """
    )
    body += textwrap.indent(textwrap.dedent(network), "  ")
    body += "shards:\n"
    for i in range(shards):
        last = "null" if i == shards - 1 else str((i + 1) * 100)
        body += f"  - {{name: s{i}, range: [{i * 100 + 1}, {last}], secret_env: KE_{i}}}\n"
    p = tmp_path / "sorotask.yaml"
    p.write_text(body)
    return p


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for i, kp in enumerate(K):
        monkeypatch.setenv(f"KE_{i}", kp.secret)
    monkeypatch.delenv("SOROTASK_HOST_INDEX", raising=False)
    return monkeypatch


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    return [str(p) for p in ei.value.problems]


def test_rpc_urls_become_each_shards_endpoints_with_its_share_of_the_budget(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    p = write(
        tmp_path,
        """\
        rpc_urls:
          - "http://127.0.0.1:8000"
          - url: "https://rpc.example.com/soroban"
            weight: 2
            max_requests_per_s: 50
            headers: {X-Api-Key: PROVIDER_KEY}
          - {url: "https://node.example.org/abc123secret", name: provider-b}
        """,
    )
    plan = load_config(p)
    assert len(plan.shards) == 2
    for sp in plan.shards:
        eps = sp.spec.rpc_endpoints
        assert [e["url"] for e in eps] == [
            "http://127.0.0.1:8000",
            "https://rpc.example.com/soroban",
            "https://node.example.org/abc123secret",
        ]
        assert eps[1]["weight"] == 2.0
        assert eps[1]["max_requests_per_s"] == 25.0  # 50 shared by the two shards
        assert eps[0]["max_requests_per_s"] is None
        assert eps[1]["headers_from_env"] == {"X-Api-Key": "PROVIDER_KEY"}
        assert sp.spec.rpc_url == "http://127.0.0.1:8000"
        assert "abc123secret" not in sp.spec.rpc_label
        assert "provider-b" in sp.spec.rpc_label
        # the entries are what the worker builds its endpoints from
        assert [EndpointConfig(**e).label for e in eps][2] == "provider-b"


def test_a_single_rpc_url_stays_valid(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    plan = load_config(write(tmp_path, 'rpc_url: "http://127.0.0.1:8000"\n'))
    assert plan.shards[0].spec.rpc_endpoints == ()
    assert plan.shards[0].spec.rpc_url == "http://127.0.0.1:8000"


def test_neither_or_both_is_an_error(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    probs = problems(write(tmp_path, ""))
    assert any("network.rpc_url: required (or rpc_urls" in p for p in probs), probs
    both = 'rpc_url: "http://a:1"\nrpc_urls: ["http://b:2"]\n'
    probs = problems(write(tmp_path, both))
    assert any("network.rpc_urls: give either rpc_url or rpc_urls" in p for p in probs), probs


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ('"ftp://x"', "entry 0: expected an http(s) URL"),
        ("{url: 'http://a:1', weight: 0}", "weight: expected a number > 0"),
        ("{url: 'http://a:1', max_requests_per_s: -1}", "max_requests_per_s"),
        ("{url: 'http://a:1', headers: {X-Key: 'not a var'}}", "environment variable"),
        ("{url: 'http://a:1', color: red}", "unknown key 'color'"),
        ("{weight: 2}", "url: expected an http(s) URL"),
    ],
)
def test_bad_entries_are_reported_by_field(
    tmp_path: Path, env: pytest.MonkeyPatch, entry: str, fragment: str
) -> None:
    probs = problems(write(tmp_path, f"rpc_urls: [{entry}]\n"))
    assert any("rpc_urls" in p and fragment in p for p in probs), probs


def test_empty_list_and_duplicate_labels(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    probs = problems(write(tmp_path, "rpc_urls: []\n"))
    assert any("non-empty list" in p for p in probs), probs
    dup = 'rpc_urls: ["http://u:secret@h:1/", "http://h:1/?key=other"]\n'
    probs = problems(write(tmp_path, dup))
    assert any("give one of them a name" in p for p in probs), probs
    assert not any("secret" in p or "other" in p for p in probs), probs
