"""The executor's pricing and escalation step (shard_worker.pricing) and the resource fee
declared in SorobanTransactionData (txxdr.with_resource_fee): pure logic, a scripted RPC."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from stellar_sdk import Keypair, SorobanDataBuilder
from stellar_sdk import xdr as sx

from shard_worker import txxdr
from shard_worker.context import Events, Tally
from shard_worker.errors import FatalConfigError, RpcTransportError
from shard_worker.journal import JournalEntry
from shard_worker.pricing import FeeHooks, Pricer, fee_config
from shard_worker.spec import SecretRef, WorkerSpec
from shard_worker.strict_xdr import parse_soroban_data
from sorotask_core.xdr import DecodeError
from tests.shard_worker.test_feepolicy import answer
from tests.support.fake_rpc import FakeRpc, NullReporter

SPEC = WorkerSpec(
    name="p",
    rpc_url="http://127.0.0.1:1",
    network_passphrase="Standalone Network ; February 2017",
    contract_id="C" + "A" * 55,
    secret=SecretRef(env="K"),
)


def soroban_data(resource_fee: int) -> bytes:
    key = sx.LedgerKey(
        sx.LedgerEntryType.ACCOUNT,
        account=sx.LedgerKeyAccount(Keypair.random().xdr_account_id()),
    )
    data = (
        SorobanDataBuilder()
        .set_read_write([key])
        .set_resources(1_000_000, 2_000, 3_000)
        .set_resource_fee(resource_fee)
        .build()
    )
    return data.to_xdr_bytes()


def pricer(script: dict[str, list[Any]] | None = None, **spec: Any) -> tuple[Pricer, Tally]:
    tally = Tally()
    reporter: Any = NullReporter()
    rpc: Any = FakeRpc(script or {})
    p = Pricer(replace(SPEC, **spec), rpc, Events(reporter), tally)
    return p, tally


def entry(task_id: int) -> JournalEntry:
    return JournalEntry("ab" * 32, task_id, "G" + "A" * 55, 5, 100, 0.0)


class TestResourceFee:
    def test_declares_the_resource_fee_and_keeps_everything_else(self) -> None:
        raw = soroban_data(50_000)
        out = txxdr.with_resource_fee(raw, 57_500)
        before, after = parse_soroban_data(raw), parse_soroban_data(out)
        assert after.resource_fee == 57_500
        assert replace(after, resource_fee=50_000) == before
        assert len(out) == len(raw)

    def test_refuses_less_than_simulated_and_garbage(self) -> None:
        with pytest.raises(ValueError, match="below the simulated"):
            txxdr.with_resource_fee(soroban_data(50_000), 49_999)
        with pytest.raises(DecodeError):
            txxdr.with_resource_fee(soroban_data(50_000)[:-1], 60_000)

    def test_apply_sets_the_fee_field_to_inclusion_plus_resource(self) -> None:
        p, _ = pricer()
        tx = txxdr.InvokeTx(b"\0" * 32, 100, 1, b"\1" * 32, b"execute", [])
        v = p.verdict(1, 40_000)
        p.apply(1, tx, soroban_data(40_000), v)
        assert tx.soroban_data is not None
        declared = parse_soroban_data(tx.soroban_data).resource_fee
        assert declared == 46_000  # +15 %
        assert tx.fee - declared == v.inclusion == 100  # the bid core sees
        assert p.offered == 100


class TestStatistics:
    def test_refreshed_every_n_ledgers_and_kept_on_a_bad_answer(self) -> None:
        p, _ = pricer(
            {
                "getFeeStats": [
                    answer([500] * 10),
                    RpcTransportError("getFeeStats", "busy", 503),
                    {},
                ]
            },
            fee_refresh_ledgers=5,
        )

        async def go() -> None:
            await p.refresh(100)
            await p.refresh(104)  # not due
            await p.refresh(105)  # fails: the old statistics stay
            await p.refresh(105)  # not again in the same ledger
            await p.refresh(106)  # unusable answer

        asyncio.run(go())
        assert [c[0] for c in p.rpc.calls] == ["getFeeStats"] * 3  # type: ignore[attr-defined]
        assert p.verdict(1, 0).inclusion == 501

    def test_at_start_they_are_as_of_the_answers_ledger(self) -> None:
        """Asked before any ledger is known (beside the start's getLatestLedger): dated by
        the answer's latestLedger, so the next refresh comes fee_refresh_ledgers after it."""
        p, _ = pricer(
            {"getFeeStats": [answer([700] * 10, latest=2000), answer([900] * 10)]},
            fee_refresh_ledgers=5,
        )

        async def go() -> None:
            await p.refresh(None, hedge=True)
            await p.refresh(2004)  # not due yet
            await p.refresh(2005)

        asyncio.run(go())
        assert [c[0] for c in p.rpc.calls] == ["getFeeStats"] * 2  # type: ignore[attr-defined]
        assert p.verdict(1, 0).inclusion == 901

    def test_fixed_never_asks(self) -> None:
        p, _ = pricer(fee_strategy="fixed", base_fee=300)
        asyncio.run(p.refresh(100))
        assert p.rpc.calls == []  # type: ignore[attr-defined]
        assert p.verdict(1, 10).inclusion == 300


class TestEscalation:
    def stats_pricer(self, **spec: Any) -> tuple[Pricer, Tally]:
        p, tally = pricer({"getFeeStats": [answer([1000] * 20)]}, **spec)
        asyncio.run(p.refresh(10))
        return p, tally

    def test_a_refused_task_is_escalated_then_back_to_the_market_once_applied(self) -> None:
        p, tally = self.stats_pricer()
        hooks = FeeHooks(p, tally, lambda *_: None)
        first = p.verdict(7, 20_000)
        assert (first.inclusion, first.attempt) == (1001, 0)
        p.sent(7, first)
        # core says 4001 + our resource fee would have got in
        error_xdr = sx.TransactionResult(
            sx.Int64(4001 + first.resource),
            sx.TransactionResultResult(sx.TransactionResultCode.txINSUFFICIENT_FEE),
            sx.TransactionResultExt(0),
        ).to_xdr()
        hooks.not_applied(entry(7), "txINSUFFICIENT_FEE", error_xdr)
        assert p.verdict(8, 20_000).attempt == 0  # another task: the market
        second = p.verdict(7, 20_000)
        assert (second.inclusion, second.attempt) == (4001, 1)
        assert tally.totals["escalations"] == tally.cycle.escalations == 1
        p.sent(7, second)
        hooks.applied(entry(7), 30_000, 12)
        assert tally.cycle.fees_charged == [30_000]
        assert p.verdict(7, 20_000).attempt == 0

    def test_stops_at_the_cap_and_counts_the_skip(self) -> None:
        p, tally = self.stats_pricer(fee_max_inclusion=1200)
        v = p.verdict(3, 0)
        for attempt in (1, 2):
            p.sent(3, v)
            FeeHooks(p, tally, lambda *_: None).not_applied(entry(3), "expired", None)
            v = p.verdict(3, 0)
            assert v.attempt == attempt
        assert v.inclusion == 1200 and not v.send and v.skip == "escalation_at_cap"
        p.skipped(3, v)
        assert tally.cycle.fee_skips == {"escalation_at_cap": 1}
        assert tally.totals["fee_skipped"] == 1
        events = p.events.reporter.events_of("not_sent")  # type: ignore[attr-defined]
        assert events == [
            {"task_id": 3, "reason": "escalation_at_cap", "price": 1200, "inclusion": 1200,
             "attempt": 2}
        ]  # fmt: skip
        assert p.verdict(3, 0).attempt == 0  # after the back-off: the market again

    def test_other_refusals_do_not_escalate_and_fixed_never_does(self) -> None:
        p, tally = self.stats_pricer()
        p.sent(1, p.verdict(1, 0))
        FeeHooks(p, tally, lambda *_: None).not_applied(entry(1), "txBAD_SEQ", None)
        assert p.verdict(1, 0).attempt == 0
        f, ftally = pricer(fee_strategy="fixed")
        f.sent(1, f.verdict(1, 0))
        FeeHooks(f, ftally, lambda *_: None).not_applied(entry(1), "expired", None)
        again = f.verdict(1, 0)
        assert again.send and again.inclusion == 100 and ftally.totals["escalations"] == 0


def test_settings_that_do_not_fit_are_a_config_error() -> None:
    with pytest.raises(FatalConfigError, match="fee_max_total"):
        fee_config(replace(SPEC, fee_max_inclusion=5000, fee_max_total=5000))
