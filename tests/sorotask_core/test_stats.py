"""The cycle-stats field registry (sorotask_core.stats) and what is derived from it: the
keeper's CycleStats, the pipe check, the totals, the summary columns and the log line."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shard_worker.spec import CycleStats
from sorotask_core import stats
from sorotask_core.stats import CYCLE_FIELDS, FIELDS_BY_NAME, format_cycle, problem
from supervisor.messages import ProtocolError, decode_from_worker, encode
from supervisor.stats import SUMMARY_FIELDS

ROOT = Path(__file__).resolve().parents[2]

METRIC_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def a_cycle(**fields: object) -> CycleStats:
    base = {"shard": "a", "cycle": 7, "ledger": 90, "ledger_time": 5, "started_at": 1.0}
    return CycleStats(**{**base, "duration_s": 0.25, **fields})


class TestDeclarations:
    def test_names_are_unique_and_identifiers(self) -> None:
        names = [f.name for f in CYCLE_FIELDS]
        assert len(names) == len(set(names)) == len(FIELDS_BY_NAME)
        assert all(n.isidentifier() for n in names)

    def test_required_fields_come_first(self) -> None:
        flags = [f.required for f in CYCLE_FIELDS]
        assert flags == sorted(flags, reverse=True) and flags[0]

    def test_each_has_a_kind_a_type_and_one_line_of_help(self) -> None:
        for f in CYCLE_FIELDS:
            assert f.kind in ("counter", "gauge", "cycle", "histogram"), f.name
            assert bool(f.buckets) == (f.kind == "histogram"), f.name
            assert list(f.buckets) == sorted(set(f.buckets)), f.name
            assert f.type in (int, float, bool, str), f.name
            assert f.help and "\n" not in f.help and f.help[0].isupper(), f.name

    def test_exported_metric_names_are_unique_and_valid(self) -> None:
        names = [f.metric_name for f in stats.TOTALLED]
        assert len(names) == len(set(names))
        assert all(METRIC_NAME.fullmatch(n) and n.startswith("sorotask_") for n in names)
        assert not any(n.endswith("_total") for n in names)  # the client adds it to counters

    def test_totalled_fields_are_numbers(self) -> None:
        for f in stats.TOTALLED:
            assert f.type in (int, float) and not f.nullable and not f.required, f.name

    def test_summary_and_outcome_fields_are_plain_numbers(self) -> None:
        for f in CYCLE_FIELDS:
            if f.outcome:
                assert f.kind == "counter" and not f.labelled and f.type is int, f.name
            if f.summary:
                assert f.kind in ("counter", "gauge") and not f.labelled, f.name
                assert f.type is int, f.name
        # "due now" and the oldest overdue, not the due count summed over cycles (issue 15)
        assert stats.SUMMARY == (
            "checked",
            "due_now",
            "oldest_overdue_ledgers",
            "executed",
            "failed",
        )
        assert SUMMARY_FIELDS == (
            "cycles",
            "checked",
            "due_now",
            "oldest_overdue_ledgers",
            "executed",
            "failed",
            "restarts",
        )
        assert FIELDS_BY_NAME["oldest_overdue_ledgers"].across == "max"
        assert stats.OUTCOMES == ("executed", "failed", "not_sent_by_simulation", "fees_spent")

    def test_one_counter_name_is_written_once(self) -> None:
        declared = [f for f in CYCLE_FIELDS if f.name == "not_sent_by_simulation"]
        assert len(declared) == 1 and declared[0].kind == "counter"


class TestCycleStatsClass:
    def test_has_one_attribute_per_field_in_declaration_order(self) -> None:
        assert [f.name for f in dataclasses.fields(CycleStats)] == [f.name for f in CYCLE_FIELDS]

    def test_required_fields_have_no_default(self) -> None:
        with pytest.raises(TypeError):
            CycleStats(shard="a")  # type: ignore[call-arg]

    def test_defaults_and_counting(self) -> None:
        s, t = a_cycle(), a_cycle()
        s.executed += 1
        s.skipped["not_due"] = 3
        assert (s.executed, t.executed, t.skipped, t.cycle_error) == (1, 0, {}, None)
        assert t.new_ledger is True and t.mean_execution_s == 0.0
        with pytest.raises(AttributeError):
            s.not_a_field = 1  # type: ignore[attr-defined]

    def test_to_dict_is_the_pipe_payload_and_it_decodes(self) -> None:
        s = a_cycle(executed=2, rpc_latency_s={"getLedgerEntries": 0.01}, cycle_error="x")
        doc = s.to_dict()
        assert list(doc) == [f.name for f in CYCLE_FIELDS]
        assert decode_from_worker(encode("cycle", stats=doc))["stats"] == doc


class TestValueCheck:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("checked", -1),
            ("checked", 1.5),
            ("checked", True),
            ("checked", "3"),
            ("duration_s", "slow"),
            ("duration_s", -0.1),
            ("skipped", {"x": "y"}),
            ("skipped", {"x": -1}),
            ("rpc_calls", []),
            ("rpc_latency_s", {"m": True}),
            ("shard", 3),
            ("shard", None),
            ("new_ledger", 1),
            ("cycle_error", 5),
            ("tx_errors", -2),
        ],
    )
    def test_bad_values_are_named(self, name: str, value: object) -> None:
        assert problem(FIELDS_BY_NAME[name], value) is not None
        with pytest.raises(ProtocolError, match=f"stats.{name}"):
            decode_from_worker(encode("cycle", stats={name: value}))

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("checked", 0),
            ("duration_s", 2),
            ("duration_s", 0.5),
            ("rpc_latency_s", {"m": 1}),
            ("cycle_error", None),
            ("new_ledger", False),
        ],
    )
    def test_good_values_pass(self, name: str, value: object) -> None:
        assert problem(FIELDS_BY_NAME[name], value) is None

    def test_missing_fields_take_their_default_and_unknown_keys_pass(self) -> None:
        decode_from_worker(encode("cycle", stats={"checked": 1, "from_a_newer_keeper": "x"}))


#: runs with a copy of sorotask_core whose declarations have one more line
ONE_MORE_COUNTER = """
from shard_worker.spec import CycleStats
from shard_worker.reporting import format_cycle
from supervisor.messages import ProtocolError, decode_from_worker, encode
from supervisor.stats import ShardTotals

s = CycleStats(shard="a", cycle=1, ledger=1, ledger_time=1, started_at=1.0, duration_s=0.1)
s.widgets += 2
assert "widgets 2" in format_cycle(s), format_cycle(s)
msg = decode_from_worker(encode("cycle", stats=s.to_dict()))
try:
    decode_from_worker(encode("cycle", stats={"widgets": -1}))
    raise AssertionError("a negative count passed")
except ProtocolError:
    pass
a, b, total = ShardTotals(), ShardTotals(), ShardTotals()
a.add_cycle(msg["stats"])
a.add_cycle(msg["stats"])
b.add_cycle(msg["stats"])
total.add(a)
total.add(b)
assert (a.widgets, total.widgets, total.to_dict()["widgets"]) == (4, 6, 6)
print("ok")
"""


class TestNewCounterIsOneLine:
    def test_one_added_declaration_reaches_stats_pipe_totals_and_log(self, tmp_path: Path) -> None:
        """Add one line to CYCLE_FIELDS (in a copy of the package) and nothing else: the
        keeper can count it, the pipe checks it, the totals sum it, the log line shows it."""
        core = tmp_path / "sorotask_core"
        shutil.copytree(ROOT / "sorotask_core", core)
        source = (core / "stats.py").read_text()
        anchor = '    _f("read_errors", COUNTER, int, "Task read errors", log="read errors"),\n'
        assert anchor in source
        extra = '    _f("widgets", COUNTER, int, "Widgets polished", log="widgets"),\n'
        (core / "stats.py").write_text(source.replace(anchor, anchor + extra))
        res = subprocess.run(
            [sys.executable, "-c", ONE_MORE_COUNTER],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
            cwd=tmp_path,
        )
        assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


class TestLogLine:
    def test_names_every_logged_field_in_order(self) -> None:
        line = format_cycle(
            a_cycle(checked=100, due=1, executed=1, not_sent_by_simulation=2, fees_spent=9)
        )
        assert line.startswith(
            "cycle 7 ledger 90 (250 ms): checked 100, due 1, due now 0, "
            "oldest overdue (ledgers) 0, executed 1, "
        )
        assert "not sent 2, read errors 0, decoded 0, in flight 0, queue 0, fees 9" in line
        assert "skipped" not in line and "cycle error" not in line

    def test_labelled_fields_and_the_error_follow(self) -> None:
        line = format_cycle(
            a_cycle(skipped={"not_due": 2, "archived": 1}, rpc_calls={"m": 3}, cycle_error="boom")
        )
        assert line.endswith("; skipped: archived=1, not_due=2; rpc calls: m=3; cycle error: boom")


class TestHistogram:
    DELAY = FIELDS_BY_NAME["execution_delay_ledgers"]

    def test_execution_delay_is_a_histogram_with_the_rules_buckets(self) -> None:
        f = self.DELAY
        assert f.kind == "histogram" and f.metric_name == "sorotask_execution_delay_ledgers"
        assert f.buckets == (0, 1, 2, 3, 5, 10, 20, 50)
        assert f in stats.TOTALLED

    def test_observe_bins_each_value_once_and_sums(self) -> None:
        h: dict[str, int] = {}
        for v in (0, 1, 1, 4, 5, 51, 7):
            stats.observe(self.DELAY, h, v)
        assert h == {"0": 1, "1": 2, "5": 2, "10": 1, "+Inf": 1, "sum": 69}
        buckets, total = stats.cumulative(self.DELAY, h)
        assert buckets == [
            ("0.0", 1),
            ("1.0", 3),
            ("2.0", 3),
            ("3.0", 3),
            ("5.0", 5),
            ("10.0", 6),
            ("20.0", 6),
            ("50.0", 6),
            ("+Inf", 7),
        ]
        assert total == 69

    def test_histogram_passes_the_pipe_and_sums_into_totals(self) -> None:
        from supervisor.stats import ShardTotals

        h: dict[str, int] = {}
        stats.observe(self.DELAY, h, 2)
        msg = decode_from_worker(
            encode("cycle", stats=a_cycle(execution_delay_ledgers=h).to_dict())
        )
        a, total = ShardTotals(), ShardTotals()
        a.add_cycle(msg["stats"])
        a.add_cycle(msg["stats"])
        total.add(a)
        total.add(a)
        assert a.to_dict()["execution_delay_ledgers"] == {"2": 2, "sum": 4}
        assert total.to_dict()["execution_delay_ledgers"] == {"2": 4, "sum": 8}
        assert problem(self.DELAY, {"2": -1}) is not None

    def test_oldest_overdue_is_the_largest_across_shards_due_now_the_sum(self) -> None:
        from supervisor.stats import ShardTotals

        a, b, total = ShardTotals(), ShardTotals(), ShardTotals()
        a.add_cycle({"due_now": 3, "oldest_overdue_ledgers": 7})
        b.add_cycle({"due_now": 4, "oldest_overdue_ledgers": 2})
        total.add(a)
        total.add(b)
        assert (total.due_now, total.oldest_overdue_ledgers) == (7, 7)
