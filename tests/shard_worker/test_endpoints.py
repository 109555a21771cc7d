"""Several RPC endpoints: labels and secrets, health (failures, throttling, lag, the breaker),
the choice of an endpoint, budgets, the freshest ledger, probes and the network check.

Pure logic: a fake clock, no network, no sleeping (``acquire`` is given a sleep that moves
the fake clock).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections import Counter
from typing import Any

import pytest

from shard_worker.endpoint_config import (
    EndpointConfig,
    endpoint_label,
    resolve_headers,
    scrub_url,
)
from shard_worker.endpoint_pool import (
    POLL,
    READ,
    SEND,
    EndpointPool,
    NoEndpointError,
    WrongNetworkError,
    check_networks,
    purpose_of,
)
from shard_worker.endpoints import (
    LATENCY_BUCKETS_S,
    HealthPolicy,
    LatencyHistogram,
    classify_error,
    parse_retry_after,
)
from shard_worker.errors import (
    FatalConfigError,
    RpcMalformedError,
    RpcResponseError,
    RpcTransportError,
    SecretError,
)

PASSPHRASE = "SoroTask Devnet ; September 2025"


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def make_pool(
    *specs: Any,
    clock: Clock | None = None,
    verified: bool = True,
    environ: dict[str, str] | None = None,
    **policy: Any,
) -> tuple[EndpointPool, Clock]:
    """A pool of endpoints ``a``, ``b``, ... (a spec is a URL, or a dict of EndpointConfig
    arguments), verified unless told otherwise."""
    clock = clock or Clock()
    configs = []
    for i, spec in enumerate(specs):
        if isinstance(spec, str):
            spec = {"url": spec}
        spec.setdefault("url", f"http://{chr(ord('a') + i)}.example:8000/")
        configs.append(EndpointConfig(**spec))
    pool = EndpointPool(configs, policy=HealthPolicy(**policy), environ=environ or {}, clock=clock)
    for ep in pool.endpoints:
        ep.verified = verified
    return pool, clock


def names(pool: EndpointPool, purpose: str = READ, n: int = 1) -> list[str]:
    out = []
    for _ in range(n):
        ep = pool.pick(purpose)
        out.append("-" if ep is None else ep.label.split("//")[1].split(".")[0].split("/")[0])
    return out


# ---------------------------------------------------------------------- labels and secrets


class TestLabels:
    def test_label_drops_userinfo_query_and_fragment(self) -> None:
        url = "https://user:pa55@rpc.example.com:8443/soroban/rpc?apikey=k3y#frag"
        assert endpoint_label(url) == "https://rpc.example.com:8443/soroban/rpc"

    def test_label_keeps_an_ipv6_host_in_brackets(self) -> None:
        assert endpoint_label("http://[::1]:8000/") == "http://[::1]:8000/"

    @pytest.mark.parametrize(
        "key",
        ["9f3c0e5a41b2d7e8aa01c3d4", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "Zx9_Lm2-Qw8eRt5yUi"],
    )
    def test_a_key_like_path_segment_is_shown_as_stars(self, key: str) -> None:
        assert endpoint_label(f"https://h.example/v2/{key}/") == "https://h.example/v2/***/"
        # a long word without a digit, and a short one, are path, not keys
        assert (
            endpoint_label("https://h/soroban-mainnet-rpc/v1") == "https://h/soroban-mainnet-rpc/v1"
        )

    def test_a_name_replaces_the_url_when_the_key_is_in_the_path(self) -> None:
        cfg = EndpointConfig("https://x.quiknode.pro/T0KEN/", name="quicknode")
        assert cfg.label == "quicknode"
        assert "T0KEN" not in repr(cfg)

    @pytest.mark.parametrize(
        "text",
        [
            "TooManyRedirects: 0, message='', url='{url}'",
            "InvalidUrlClientError: {url}",
            "to {url} (decoded: http://127.0.0.1:1/v2/9f3c0e5a41b2d7e8aa01?apikey=Qk3y+7788)",
            "header X-Api-Key: hdr-s3cret-99 refused",
        ],
    )
    def test_scrub_leaves_no_part_of_a_credential_bearing_url(self, text: str) -> None:
        url = "http://u:pa55word@127.0.0.1:1/v2/9f3c0e5a41b2d7e8aa01?apikey=Qk3y%2B7788#frag"
        out = scrub_url(text.format(url=url), url, secrets=["hdr-s3cret-99"])
        for secret in ("pa55word", "9f3c0e5a41b2d7e8aa01", "Qk3y", "7788", "hdr-s3cret-99"):
            assert secret not in out
        if "url" in text:
            assert "http://127.0.0.1:1/v2/***" in out  # the label in place of the URL

    def test_scrub_shows_a_given_label_and_leaves_other_text_alone(self) -> None:
        url = "https://x.quiknode.pro/T0KEN/?k=abcdef123"
        text = f"getHealth: transport error ({url}): Connection refused"
        assert scrub_url(text, url, "quicknode") == (
            "getHealth: transport error (quicknode): Connection refused"
        )

    @pytest.mark.parametrize(
        "url", ["ftp://u:s3cret@h/", "https://u:s3cret@h:99999/", "https://?k=s3cret", "s3cret"]
    )
    def test_a_malformed_url_is_refused_without_echoing_it(self, url: str) -> None:
        with pytest.raises(ValueError) as info:
            EndpointConfig(url)
        assert "s3cret" not in str(info.value)

    @pytest.mark.parametrize(
        ("kwargs", "words"),
        [
            ({"weight": 0}, "weight must be > 0"),
            ({"max_requests_per_s": 0}, "max_requests_per_s must be > 0"),
            ({"headers_from_env": {"X Key": "E"}}, "not a valid header name"),
            ({"headers_from_env": {"Content-Type": "E"}}, "set by the keeper"),
            ({"headers_from_env": {"X-Key": "1BAD"}}, "not an environment variable name"),
            ({"name": " "}, "name must not be empty"),
        ],
    )
    def test_bad_settings_are_refused_naming_the_endpoint(
        self, kwargs: dict[str, Any], words: str
    ) -> None:
        with pytest.raises(ValueError, match=words) as info:
            EndpointConfig("https://u:s3cret@rpc.example/?key=s3cret", **kwargs)
        assert "https://rpc.example/" in str(info.value)
        assert "s3cret" not in str(info.value)

    def test_two_endpoints_with_one_label_are_refused(self) -> None:
        with pytest.raises(ValueError, match="give one of them a name"):
            make_pool("https://h/?key=1", "https://h/?key=2")

    def test_a_pool_needs_an_endpoint(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            EndpointPool([], clock=Clock())


class TestHeaderSecrets:
    def test_header_values_come_from_the_environment(self) -> None:
        cfg = EndpointConfig("https://h/", headers_from_env={"X-Api-Key": "RPC_KEY"})
        assert resolve_headers(cfg, {"RPC_KEY": " abc \n"}) == {"X-Api-Key": "abc"}

    @pytest.mark.parametrize(
        ("environ", "words"),
        [
            ({}, "RPC_KEY, which is not set"),
            ({"RPC_KEY": "  "}, r"RPC_KEY \(header X-Api-Key\) is empty"),
            ({"RPC_KEY": "ab\r\nX-Evil: s3cret"}, "line break"),
        ],
    )
    def test_a_missing_or_bad_variable_is_a_secret_error_without_the_value(
        self, environ: dict[str, str], words: str
    ) -> None:
        cfg = EndpointConfig("https://h/", headers_from_env={"X-Api-Key": "RPC_KEY"})
        with pytest.raises(SecretError, match=words) as info:
            resolve_headers(cfg, environ)
        assert "https://h/" in str(info.value)
        assert "s3cret" not in str(info.value)
        assert isinstance(info.value, FatalConfigError)

    def test_no_secret_in_any_repr_status_or_error(self) -> None:
        url = "https://user:pw-SECRET1@rpc.example:8443/rpc?apikey=SECRET2"
        pool, _clock = make_pool(
            {"url": url, "headers_from_env": {"X-Api-Key": "RPC_KEY"}},
            {"url": "http://other.example/", "headers_from_env": {"Authorization": "AUTH"}},
            environ={"RPC_KEY": "SECRET3", "AUTH": "Bearer SECRET4"},
            failure_threshold=1,
        )
        ep, other = pool.endpoints
        # the values are there for the HTTP client (positive control)
        assert ep.headers == {"X-Api-Key": "SECRET3"} and ep.url == url
        assert other.headers == {"Authorization": "Bearer SECRET4"}
        pool.record_error(ep, RpcTransportError("getHealth", "timeout"), 0.1)
        pool.record_error(other, "http_429", 0.1, retry_after_s=5)
        shown = [repr(pool), str(pool), repr(ep), str(ep), repr(ep.config), str(ep.config)]
        shown += [pool.describe(), json.dumps(pool.status())]
        with pytest.raises(NoEndpointError) as no_endpoint:
            asyncio.run(pool.acquire("getLedgerEntries", max_wait_s=0))
        shown.append(str(no_endpoint.value))
        with pytest.raises(WrongNetworkError) as wrong:
            pool.verify_network(ep, {"passphrase": "other"}, PASSPHRASE, 0.01)
        shown.append(str(wrong.value))
        for text in shown:
            assert "SECRET" not in text, text
            assert "pw-" not in text and "apikey" not in text
        assert "https://rpc.example:8443/rpc" in pool.describe()


# ---------------------------------------------------------------------- small pieces


class TestRetryAfter:
    def test_delay_seconds(self) -> None:
        assert parse_retry_after("7", 0.0) == 7.0
        assert parse_retry_after(" 0 ", 0.0) == 0.0

    def test_http_date_counts_from_the_wall_clock(self) -> None:
        now = 1_750_000_000.0
        header = email.utils.formatdate(now + 12, usegmt=True)
        assert parse_retry_after(header, now) == pytest.approx(12.0)
        past = email.utils.formatdate(now - 60, usegmt=True)
        assert parse_retry_after(past, now) == 0.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-3", "1.5", "Mon, 99 Foo 2025"])
    def test_unreadable_values_are_ignored(self, value: str | None) -> None:
        assert parse_retry_after(value, 0.0) is None


class TestClassify:
    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            (RpcTransportError("m", "HTTP 429", status=429), "http_429"),
            (RpcTransportError("m", "HTTP 503", status=503), "http_503"),
            (RpcTransportError("m", "HTTP 502", status=502), "http_error"),
            (RpcTransportError("m", "HTTP 401", status=401), "http_error"),
            (RpcTransportError("m", "timeout (ReadTimeout)"), "timeout"),
            (RpcTransportError("m", "transport error (ConnectError: refused)"), "transport"),
            (RpcResponseError("m", -32098, "queue full"), "queue_full"),
            (RpcResponseError("m", -32001, "deadline"), "exec_timeout"),
            (RpcResponseError("m", -32603, "internal"), "internal"),
            (RpcResponseError("m", -32602, "invalid params"), "rpc_error"),
            (RpcMalformedError("m", "not JSON"), "malformed"),
            (TimeoutError(), "timeout"),
        ],
    )
    def test_each_failure_has_its_kind(self, error: BaseException, kind: str) -> None:
        assert classify_error(error) == kind

    def test_a_bug_is_not_an_rpc_failure(self) -> None:
        with pytest.raises(TypeError):
            classify_error(KeyError("x"))

    def test_purpose_of_a_method(self) -> None:
        assert purpose_of("sendTransaction") == SEND
        assert purpose_of("getTransaction") == POLL
        assert purpose_of("getLedgerEntries") == READ


class TestHistogram:
    def test_latency_buckets_are_cumulative_with_inf(self) -> None:
        h = LatencyHistogram()
        for s in (0.001, 0.005, 0.04, 0.3, 99.0):
            h.observe(s)
        buckets = dict(h.cumulative())
        assert buckets["0.005"] == 2  # le: 0.005 itself is in its bucket
        assert buckets["0.05"] == 3
        assert buckets["0.5"] == 4
        assert buckets["10.0"] == 4
        assert buckets["+Inf"] == 5 == h.count
        assert len(buckets) == len(LATENCY_BUCKETS_S) + 1
        assert h.sum_s == pytest.approx(99.346)


# ---------------------------------------------------------------------- health


class TestHealth:
    def test_a_failure_demotes_for_a_while_then_the_endpoint_is_up_again(self) -> None:
        pool, clock = make_pool("http://a/", error_demote_s=5.0)
        (ep,) = pool.endpoints
        assert ep.state(clock()) == "up"
        pool.record_error(ep, RpcTransportError("getHealth", "timeout"), 2.0)
        assert ep.state(clock()) == "demoted" and ep.reasons(clock()) == ["failing"]
        clock.advance(5.0)
        assert ep.state(clock()) == "up"
        assert ep.errors == {"timeout": 1} and ep.requests == 1

    def test_failures_in_a_row_open_the_breaker_and_a_success_between_resets_the_count(
        self,
    ) -> None:
        pool, clock = make_pool("http://a/", failure_threshold=3)
        (ep,) = pool.endpoints
        for _ in range(2):
            pool.record_error(ep, "transport", 0.01)
        pool.record_success(ep, 0.01)
        for _ in range(2):
            pool.record_error(ep, "transport", 0.01)
        assert ep.state(clock()) == "demoted"
        pool.record_error(ep, "malformed", 0.01)
        assert ep.state(clock()) == "open" and ep.opens == 1
        assert ep.reasons(clock())[0] == "breaker_open"

    def test_the_breaker_half_opens_after_its_cool_off_and_a_good_probe_closes_it(
        self,
    ) -> None:
        pool, clock = make_pool("http://a/", failure_threshold=1, open_s=10.0)
        (ep,) = pool.endpoints
        pool.record_error(ep, "timeout", 1.0)
        assert pool.pick() is None
        assert pool.wait_s() == pytest.approx(10.0)
        clock.advance(10.0)
        assert ep.state(clock()) == "open" and "half_open" in ep.reasons(clock())
        assert pool.pick() is ep  # the one probe
        assert pool.pick() is None  # no second request while it is in flight
        pool.record_success(ep, 0.02)
        assert ep.state(clock()) == "up"
        assert pool.pick() is ep

    def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_maximum(self) -> None:
        pool, clock = make_pool("http://a/", failure_threshold=1, open_s=10.0, open_max_s=30.0)
        (ep,) = pool.endpoints
        pool.record_error(ep, "timeout", 1.0)
        cool_offs = []
        for _ in range(4):
            opened = clock()
            assert ep.open_until is not None
            cool_offs.append(ep.open_until - opened)
            clock.advance(ep.open_until - opened)
            assert pool.pick() is ep
            pool.record_error(ep, "transport", 0.01)
        assert cool_offs == [10.0, 20.0, 30.0, 30.0]
        assert ep.opens == 5

    def test_a_late_failure_while_open_does_not_lengthen_the_cool_off(self) -> None:
        pool, clock = make_pool("http://a/", failure_threshold=1, open_s=10.0)
        (ep,) = pool.endpoints
        pool.record_error(ep, "timeout", 1.0)
        clock.advance(3.0)
        pool.record_error(ep, "timeout", 4.0)
        assert ep.open_until == pytest.approx(1010.0) and ep.opens == 1

    def test_429_keeps_requests_away_until_retry_after_and_does_not_open_the_breaker(
        self,
    ) -> None:
        pool, clock = make_pool("http://a/", "http://b/", failure_threshold=1)
        a, _b = pool.endpoints
        err = RpcTransportError("getLedgerEntries", "HTTP 429", status=429)
        err.retry_after_s = 3.0  # type: ignore[attr-defined]
        assert pool.record_error(a, err, 0.01) == "http_429"
        assert a.state(clock()) == "demoted" and a.reasons(clock()) == ["throttled"]
        assert a.open_until is None
        assert names(pool, n=4) == ["b"] * 4
        clock.advance(2.9)
        assert a not in {pool.pick() for _ in range(4)}
        clock.advance(0.1)
        assert a.state(clock()) == "up"
        assert "a" in names(pool, n=2)

    def test_a_retry_after_beyond_the_maximum_is_cut(self) -> None:
        pool, _clock = make_pool("http://a/", max_retry_after_s=60.0)
        (ep,) = pool.endpoints
        pool.record_error(ep, "http_429", 0.01, retry_after_s=86_400)
        assert pool.wait_s() == pytest.approx(60.0)

    @pytest.mark.parametrize("kind", ["http_503", "queue_full", "exec_timeout", "http_429"])
    def test_throttling_without_retry_after_waits_longer_each_time(self, kind: str) -> None:
        pool, clock = make_pool(
            "http://a/", throttle_first_s=1.0, throttle_max_s=4.0, failure_threshold=1
        )
        (ep,) = pool.endpoints
        waits = []
        for _ in range(4):
            pool.record_error(ep, kind, 0.01)
            wait = pool.wait_s()
            assert wait is not None
            waits.append(wait)
            clock.advance(wait)
        assert waits == [1.0, 2.0, 4.0, 4.0]
        assert ep.open_until is None and ep.errors == {kind: 4}
        pool.record_success(ep, 0.01)
        pool.record_error(ep, kind, 0.01)
        assert pool.wait_s() == 1.0  # an answer in between starts again from the first wait

    def test_a_json_rpc_error_about_the_request_counts_but_keeps_the_endpoint_up(self) -> None:
        pool, clock = make_pool("http://a/", failure_threshold=1)
        (ep,) = pool.endpoints
        kind = pool.record_error(ep, RpcResponseError("getEvents", -32600, "startLedger"), 0.01)
        assert kind == "rpc_error"
        assert ep.state(clock()) == "up" and ep.errors == {"rpc_error": 1}

    def test_lag_beyond_the_maximum_demotes_and_catching_up_restores(self) -> None:
        pool, clock = make_pool("http://a/", "http://b/", max_lag_ledgers=2)
        a, b = pool.endpoints
        pool.record_success(a, 0.01, ledger=1005)
        assert pool.record_success(b, 0.01, ledger=1003) == 2
        assert b.state(clock()) == "up"  # within the tolerance
        assert pool.record_success(b, 0.01, ledger=1000) == 5
        assert b.state(clock()) == "demoted" and b.reasons(clock()) == ["lagging"]
        assert b.errors == {"stale": 1} and b.latest_ledger == 1003
        pool.record_success(b, 0.01, ledger=1005)
        assert b.state(clock()) == "up" and b.lag_ledgers == 0

    def test_status_has_every_figure_the_metrics_need(self) -> None:
        pool, _clock = make_pool({"url": "http://a/", "weight": 2, "max_requests_per_s": 5})
        (ep,) = pool.endpoints
        pool.record_success(ep, 0.02, ledger=1000, close_time=5000)
        pool.record_error(ep, "timeout", 3.0)
        pool.record_error(ep, "http_429", 0.01, retry_after_s=2)
        status = pool.status()
        assert status["freshest_ledger"] == 1000 and status["freshest_close_time"] == 5000
        (s,) = status["endpoints"]
        assert s["endpoint"] == "http://a/" and s["state"] == "demoted"
        assert s["reasons"] == ["throttled", "failing"]
        assert s["weight"] == 2 and s["max_requests_per_s"] == 5
        assert s["requests"] == 3
        assert s["errors"] == {"http_429": 1, "timeout": 1}
        assert s["latency"]["count"] == 3 and s["latency"]["sum_s"] == pytest.approx(3.03)
        assert s["latency"]["buckets"][-1] == ("+Inf", 3)
        assert s["latest_ledger"] == 1000 and s["lag_ledgers"] == 0
        assert s["consecutive_failures"] == 1 and s["breaker_opens"] == 0
        assert s["retry_in_s"] == pytest.approx(2.0)
        json.dumps(status)


# ---------------------------------------------------------------------- choosing


class TestChoosing:
    def test_reads_are_spread_by_weight(self) -> None:
        pool, _ = make_pool({"weight": 2}, {"weight": 1}, {"weight": 1})
        counts = Counter(names(pool, n=400))
        assert counts == {"a": 200, "b": 100, "c": 100}
        # smooth: the heavy endpoint never gets more than two in a row
        run = names(pool, n=8)
        assert "aaa" not in "".join(run)

    def test_reads_skip_failing_endpoints_while_one_is_up_and_fall_back_to_them(self) -> None:
        pool, _clock = make_pool("http://a/", "http://b/", failure_threshold=5)
        a, b = pool.endpoints
        pool.record_error(a, "transport", 0.01)
        assert names(pool, n=3) == ["b"] * 3
        pool.record_error(b, "transport", 0.01)
        assert set(names(pool, n=4)) == {"a", "b"}  # both failing: still better than nothing

    def test_a_lagging_endpoint_gets_no_read_or_send_but_polls_as_a_last_resort(self) -> None:
        pool, _clock = make_pool("http://a/", "http://b/", max_lag_ledgers=1)
        a, b = pool.endpoints
        pool.record_success(a, 0.01, ledger=1010)
        pool.record_success(b, 0.01, ledger=1005)
        for purpose in (READ, SEND, POLL):
            assert set(names(pool, purpose, n=3)) == {"a"}
        pool.record_error(a, "http_503", 0.01)
        assert pool.pick(READ) is None and pool.pick(SEND) is None
        assert pool.pick(POLL) is b
        assert pool.wait_s(READ) == pytest.approx(1.0)  # a's throttle

    def test_only_lagging_endpoints_left_means_waiting_for_a_probe(self) -> None:
        pool, _clock = make_pool("http://a/", "http://b/", max_lag_ledgers=0)
        a, b = pool.endpoints
        pool.record_success(a, 0.01, ledger=1010)
        pool.record_success(b, 0.01, ledger=1009)
        pool.record_success(a, 0.01, ledger=1009)  # a node behind a load balancer
        assert a.lagging and b.lagging
        assert pool.pick() is None
        assert pool.wait_s() == pool.policy.probe_interval_s

    def test_a_send_never_goes_to_a_half_open_endpoint(self) -> None:
        pool, clock = make_pool("http://a/", failure_threshold=1, open_s=1.0)
        (ep,) = pool.endpoints
        pool.record_error(ep, "timeout", 0.01)
        clock.advance(1.0)
        assert pool.pick(SEND) is None
        assert pool.pick(READ) is ep

    def test_a_retry_can_exclude_the_endpoint_that_just_failed(self) -> None:
        pool, _ = make_pool("http://a/", "http://b/")
        a, b = pool.endpoints
        assert {pool.pick(SEND, exclude=[a]) for _ in range(3)} == {b}
        assert pool.pick(SEND, exclude=[a, b]) is None
        assert pool.wait_s(SEND, exclude=[a, b]) is None

    def test_an_endpoint_not_verified_gets_no_request(self) -> None:
        pool, _ = make_pool("http://a/", "http://b/", verified=False)
        _a, b = pool.endpoints
        assert pool.pick() is None and pool.wait_s() is None
        b.verified = True
        assert names(pool, n=2) == ["b", "b"]

    def test_requests_per_endpoint_stay_under_its_budget(self) -> None:
        pool, clock = make_pool(
            {"max_requests_per_s": 2}, {"max_requests_per_s": 5}, {"max_requests_per_s": None}
        )
        a, b, c = pool.endpoints
        c.verified = False  # only the two budgeted endpoints
        got: Counter[str] = Counter()
        for _ in range(1000):  # 10 s in 10 ms steps, as fast as the budgets allow
            while (ep := pool.pick()) is not None:
                got[ep.label] += 1
            clock.advance(0.01)
        # burst (one second) + rate x 10 s
        assert got[a.label] <= 2 + 2 * 10 and got[a.label] >= 2 * 10
        assert got[b.label] <= 5 + 5 * 10 and got[b.label] >= 5 * 10

    def test_a_budget_exhausted_endpoint_spills_to_another_of_its_tier(self) -> None:
        pool, _clock = make_pool({"max_requests_per_s": 1}, {})
        a, b = pool.endpoints
        picked = [pool.pick() for _ in range(4)]
        assert picked.count(a) == 1 and picked.count(b) == 3

    def test_all_budgets_spent_means_waiting_for_the_next_token(self) -> None:
        pool, _clock = make_pool({"max_requests_per_s": 4})
        for _ in range(4):
            assert pool.pick() is not None
        assert pool.pick() is None
        assert pool.wait_s() == pytest.approx(0.25)


class TestAcquire:
    def test_acquire_waits_out_a_retry_after(self) -> None:
        pool, clock = make_pool("http://a/")
        (ep,) = pool.endpoints
        pool.record_error(ep, "http_429", 0.01, retry_after_s=2.5)
        slept: list[float] = []

        async def sleep(s: float) -> None:
            slept.append(s)
            clock.advance(s)

        got = asyncio.run(pool.acquire("getLedgerEntries", sleep=sleep))
        assert got is ep and sum(slept) == pytest.approx(2.5)

    def test_acquire_gives_up_after_its_wait_naming_each_endpoint_state(self) -> None:
        pool, clock = make_pool("http://a/", "http://b/", failure_threshold=1, open_s=60.0)
        a, b = pool.endpoints
        pool.record_error(a, "timeout", 0.01)
        pool.record_error(b, "http_429", 0.01, retry_after_s=40)
        slept: list[float] = []

        async def sleep(s: float) -> None:
            slept.append(s)
            clock.advance(s)

        with pytest.raises(NoEndpointError) as info:
            asyncio.run(pool.acquire("sendTransaction", max_wait_s=30.0, sleep=sleep))
        text = str(info.value)
        assert text.startswith("sendTransaction: no RPC endpoint available")
        assert "http://a/: open (breaker_open" in text
        assert "http://b/: demoted (throttled)" in text
        assert slept == []  # the first wait (40 s) is already past the 30 s allowed
        assert isinstance(info.value, RpcTransportError)


# ---------------------------------------------------------------------- freshest ledger


class TestFreshestLedger:
    def test_the_freshest_ledger_only_moves_forward(self) -> None:
        pool, _ = make_pool("http://a/", "http://b/")
        a, b = pool.endpoints
        assert pool.freshest_ledger is None
        pool.observe_ledger(a, 1000, close_time=5000)
        pool.observe_ledger(b, 1004, close_time=5020)
        pool.observe_ledger(a, 1001, close_time=5005)
        assert pool.freshest_ledger == 1004 and pool.freshest_close_time == 5020
        pool.observe_ledger(a, 1004)
        assert pool.freshest_close_time == 5020

    def test_a_lagging_endpoint_never_moves_the_time_source_back(self) -> None:
        pool, _ = make_pool("http://a/", "http://b/", max_lag_ledgers=2)
        a, b = pool.endpoints
        pool.record_success(a, 0.01, ledger=1010, close_time=5050)
        lag = pool.record_success(b, 0.01, ledger=1005, close_time=5025)
        assert lag == 5 and b.lagging
        assert pool.freshest_ledger == 1010 and pool.freshest_close_time == 5050


# ---------------------------------------------------------------------- probes


class TestProbes:
    def test_probes_verify_new_endpoints_and_check_idle_and_half_open_ones(self) -> None:
        pool, clock = make_pool(
            "http://a/", "http://b/", "http://c/", "http://d/",
            failure_threshold=1, open_s=10.0, probe_interval_s=5.0,
        )  # fmt: skip
        a, b, c, d = pool.endpoints
        a.verified = False
        pool.record_success(b, 0.01, ledger=1000)
        pool.record_error(c, "timeout", 0.01)
        pool.record_success(d, 0.01, ledger=1000)
        assert [(e.label, m) for e, m in pool.take_probes()] == [("http://a/", "getNetwork")]
        assert pool.take_probes() == []  # in flight: not sent twice
        clock.advance(5.0)
        pool.record_success(d, 0.01, ledger=1001)  # d was heard from: no probe needed
        assert [(e.label, m) for e, m in pool.take_probes()] == [("http://b/", "getLatestLedger")]
        clock.advance(5.0)
        probes = [(e.label, m) for e, m in pool.take_probes()]
        assert ("http://c/", "getLatestLedger") in probes  # half-open
        assert pool.pick() is not c  # its probe is in flight

    def test_a_throttled_endpoint_is_not_probed_before_its_wait_is_over(self) -> None:
        pool, clock = make_pool("http://a/", probe_interval_s=1.0)
        (ep,) = pool.endpoints
        pool.record_error(ep, "http_429", 0.01, retry_after_s=4)
        clock.advance(3.0)
        assert pool.take_probes() == []
        clock.advance(1.0)
        assert [m for _, m in pool.take_probes()] == ["getLatestLedger"]

    def test_a_probe_takes_a_token_and_none_is_sent_without_one(self) -> None:
        pool, clock = make_pool({"max_requests_per_s": 1}, probe_interval_s=1.0)
        (ep,) = pool.endpoints
        assert pool.pick() is ep
        assert pool.take_probes() == []
        clock.advance(1.0)
        assert len(pool.take_probes()) == 1
        assert pool.pick() is None


# ---------------------------------------------------------------------- the network


class TestNetworkCheck:
    def test_an_endpoint_on_another_network_is_refused_by_name(self) -> None:
        pool, _ = make_pool(
            "http://good.example/", "https://u:s3cret@testnet.example/rpc?key=s3cret",
            verified=False,
        )  # fmt: skip
        answers = {
            "http://good.example/": {"passphrase": PASSPHRASE},
            "https://testnet.example/rpc": {"passphrase": "Test SDF Network ; September 2015"},
        }

        async def call(ep: Any, method: str) -> Any:
            assert method == "getNetwork"
            return answers[ep.label]

        with pytest.raises(WrongNetworkError) as info:
            asyncio.run(check_networks(pool, call, PASSPHRASE))
        text = str(info.value)
        assert "RPC endpoint https://testnet.example/rpc serves network " in text
        assert "'Test SDF Network ; September 2015'" in text
        assert f"configured for {PASSPHRASE!r}" in text
        assert "good.example" not in text and "s3cret" not in text
        assert isinstance(info.value, FatalConfigError)

    def test_an_endpoint_down_at_start_stays_unverified_until_a_probe_passes(self) -> None:
        pool, _ = make_pool("http://a/", "http://b/", "http://c/", verified=False)
        a, b, c = pool.endpoints

        async def call(ep: Any, method: str) -> Any:
            if ep is b:
                raise RpcTransportError(method, "transport error (ConnectError)")
            if ep is c:
                return {"friendbotUrl": "x"}  # no passphrase
            return {"passphrase": PASSPHRASE, "protocolVersion": 23}

        unreachable = asyncio.run(check_networks(pool, call, PASSPHRASE))
        assert unreachable == [b, c]
        assert a.verified and not b.verified and not c.verified
        assert b.errors == {"transport": 1} and c.errors == {"malformed": 1}
        assert {pool.pick() for _ in range(3)} == {a}
        probes = pool.take_probes()
        assert [(e, m) for e, m in probes if m == "getNetwork"] == [
            (b, "getNetwork"),
            (c, "getNetwork"),
        ]
        pool.verify_network(b, {"passphrase": PASSPHRASE}, PASSPHRASE, 0.01)
        assert b.verified
        assert {pool.pick() for _ in range(4)} == {a, b}

    def test_a_getnetwork_answer_without_a_passphrase_is_malformed(self) -> None:
        pool, _ = make_pool("http://a/", verified=False)
        (ep,) = pool.endpoints
        with pytest.raises(RpcMalformedError, match="endpoint http://a/: no passphrase"):
            pool.verify_network(ep, ["not", "a", "dict"], PASSPHRASE, 0.01)
        assert not ep.verified
