"""The start-up checks in one round trip (issue 16, a restarted worker under a busy RPC): the
requests together, one ``getLedgerEntries`` for the contract and every source account, each
request asked again on its own after a failure, the verdicts in their order; the accounts'
balances read as of the answer's ledger (the first cycle does not read them again). Scripted
fake RPC; no network, no timing assertions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from loguru import logger
from stellar_sdk import Keypair

from shard_worker import chain
from shard_worker.accounts import SourceAccount, SourceAccounts
from shard_worker.context import Events
from shard_worker.errors import FatalConfigError, RpcError
from shard_worker.preflight import preflight
from shard_worker.spec import SecretRef, WorkerSpec
from sorotask_core import contract
from sorotask_core.signing import Signer
from tests.shard_worker.test_accounts import PASSPHRASE, account_xdr
from tests.support.fake_rpc import NullReporter
from tests.support.ledger_entries import CONTRACT_ID

LEDGER = 500


class GatedRpc:
    """Answers from a script like ``FakeRpc``, but no answer is given before ``gate`` calls
    are in flight together: checks made one after the other would never be answered."""

    def __init__(self, script: dict[str, list[Any]], gate: int) -> None:
        self.script = script
        self.calls: list[tuple[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._gate = gate
        self._open = asyncio.Event()

    async def call(self, method: str, params: Any = None, **_kw: Any) -> Any:
        self.calls.append((method, params))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= self._gate:
            self._open.set()
        try:
            await self._open.wait()
            answer = self.script[method].pop(0)
        finally:
            self.in_flight -= 1
        if isinstance(answer, Exception):
            raise answer
        return answer

    def methods(self) -> list[str]:
        return sorted(m for m, _ in self.calls)


def setup(
    n_channels: int = 2, *, passphrase: str = PASSPHRASE, funded: bool = True
) -> tuple[WorkerSpec, list[Keypair], dict[str, list[Any]]]:
    spec = WorkerSpec(
        name="t",
        rpc_url="http://127.0.0.1:1/",
        network_passphrase=PASSPHRASE,
        contract_id=CONTRACT_ID,
        secret=SecretRef(env="UNUSED"),
    )
    kps = [Keypair.random() for _ in range(1 + n_channels)]
    entries = [{"key": contract.instance_key_b64(CONTRACT_ID), "xdr": "AAAA"}]
    if funded:
        entries += [
            {"key": chain.account_key_b64(kp.public_key), "xdr": account_xdr(kp, 10**9, 7 + i)}
            for i, kp in enumerate(kps)
        ]
    script: dict[str, list[Any]] = {
        "getNetwork": [{"passphrase": passphrase}],
        "getHealth": [{"status": "healthy"}],
        "getLedgerEntries": [{"entries": entries, "latestLedger": LEDGER}],
    }
    return spec, kps, script


def pool(kps: list[Keypair], rpc: Any) -> SourceAccounts:
    accs = [SourceAccount(Signer.from_secret(kp.secret), i == 0) for i, kp in enumerate(kps)]
    return SourceAccounts(accs, rpc)


def run(rpc: Any, spec: WorkerSpec, accounts: SourceAccounts) -> bool:
    async def go() -> bool:
        stop = asyncio.Event()
        return await asyncio.wait_for(
            preflight(rpc, spec, accounts, Events(NullReporter()), stop), 10
        )

    return asyncio.run(go())


class TestOneRound:
    def test_the_checks_are_asked_together_in_one_round(self) -> None:
        spec, kps, script = setup()
        rpc = GatedRpc(script, gate=3)  # the three checks, together
        accounts = pool(kps, rpc)
        assert run(rpc, spec, accounts) is True
        assert rpc.most_in_flight == 3
        assert rpc.methods() == ["getHealth", "getLedgerEntries", "getNetwork"]
        [keys] = [p["keys"] for m, p in rpc.calls if m == "getLedgerEntries"]
        assert keys == [
            contract.instance_key_b64(CONTRACT_ID),
            *(chain.account_key_b64(a.public_key) for a in accounts.all),
        ]
        by_key = {a.public_key: a for a in accounts.all}
        assert [by_key[kp.public_key].sequence for kp in kps] == [7, 8, 9]
        assert not any(a.needs_resync for a in accounts.all)

    def test_the_balances_are_read_as_of_the_answers_ledger(self) -> None:
        spec, kps, script = setup()
        accounts = pool(kps, GatedRpc(script, gate=3))
        assert run(accounts.rpc, spec, accounts) is True
        # the first cycle (at the same ledger) reads no account again
        assert accounts.book.reread_due(LEDGER) == []
        assert len(accounts.book.reread_due(LEDGER + accounts.book.refresh_ledgers)) == 3

    def test_a_failed_request_is_asked_again_alone(self) -> None:
        spec, kps, script = setup()
        script["getHealth"].insert(0, RpcError("getHealth", "HTTP 503"))
        script["getLedgerEntries"].insert(0, RpcError("getLedgerEntries", "dropped"))
        rpc = GatedRpc(script, gate=3)
        assert run(rpc, spec, pool(kps, rpc)) is True
        assert rpc.methods() == [
            "getHealth",
            "getHealth",
            "getLedgerEntries",
            "getLedgerEntries",
            "getNetwork",
        ]


class TestVerdictOrder:
    def test_a_wrong_network_is_named_before_the_accounts_it_lacks(self) -> None:
        spec, kps, script = setup(passphrase="Another Network", funded=False)
        rpc = GatedRpc(script, gate=3)
        with pytest.raises(FatalConfigError, match="wrong network"):
            run(rpc, spec, pool(kps, rpc))

    def test_an_account_missing_from_the_answer_is_asked_alone_then_fatal(self) -> None:
        spec, kps, script = setup(n_channels=0, funded=False)
        script["getLedgerEntries"].append({"entries": [], "latestLedger": LEDGER})
        rpc = GatedRpc(script, gate=3)
        with pytest.raises(FatalConfigError, match="does not exist on network"):
            run(rpc, spec, pool(kps, rpc))
        assert [m for m, _ in rpc.calls].count("getLedgerEntries") == 2

    def test_stopped_before_an_answer(self) -> None:
        spec, kps, script = setup()
        script["getHealth"] = [RpcError("getHealth", "down")] * 50
        rpc = GatedRpc(script, gate=1)

        async def go() -> bool:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.3, stop.set)
            return await preflight(rpc, spec, pool(kps, rpc), Events(NullReporter()), stop)

        assert asyncio.run(go()) is False


class NoJournal:
    """The dispatcher's part of the start: an empty journal."""

    def hold_journal(self) -> list[Any]:
        return []


class NoFees:
    """A pricer whose fee statistics are in at once (asked beside the clock at start)."""

    async def refresh(self, latest_ledger: int | None, *, hedge: bool = False) -> None:
        return None


class TestWarmUp:
    """The warm-up (started beside the start-up checks): the first cycle's getLatestLedger
    and fee statistics, and beside them the events read mode's resume; the first cycle waits
    for it, once."""

    def test_the_resume_runs_beside_the_clock_and_the_first_cycle_waits_once(self) -> None:
        from shard_worker.keeper import Keeper

        async def go() -> list[str]:
            both = asyncio.Event()
            running: list[str] = []

            async def part(name: str) -> None:
                running.append(name)
                if len(running) == 2:
                    both.set()
                await asyncio.wait_for(both.wait(), 5)  # one after the other never gets here

            class Reader:
                async def resume(self) -> None:
                    await part("resume")

            class Clock:
                async def latest(self) -> Any:
                    await part("getLatestLedger")
                    raise RpcError("getLatestLedger", "HTTP 503")  # only logged

            keeper = Keeper.__new__(Keeper)
            keeper.log = logger
            keeper.event_reader = Reader()  # type: ignore[assignment]
            keeper.clock = Clock()  # type: ignore[assignment]
            keeper.pricer = NoFees()  # type: ignore[assignment]
            keeper._refresh = None
            keeper.spec = setup()[0]
            keeper.dispatcher = NoJournal()  # type: ignore[assignment]
            keeper.rpc = None  # type: ignore[assignment]
            keeper.start_warm_up()
            await keeper._warmed()
            await keeper._warmed()  # later cycles: nothing more
            await keeper.stop_warm_up()
            return running

        assert sorted(asyncio.run(go())) == ["getLatestLedger", "resume"]

    def test_a_warm_up_no_cycle_took_does_not_fail_the_exit(self) -> None:
        from shard_worker.keeper import Keeper

        async def go() -> None:
            class Reader:
                async def resume(self) -> None:
                    raise RpcError("getLedgerEntries", "HTTP 503")

            class Clock:
                async def latest(self) -> Any:
                    await asyncio.sleep(10)

            keeper = Keeper.__new__(Keeper)
            keeper.log = logger
            keeper.event_reader = Reader()  # type: ignore[assignment]
            keeper.clock = Clock()  # type: ignore[assignment]
            keeper.pricer = NoFees()  # type: ignore[assignment]
            keeper._refresh = None
            keeper.spec = setup()[0]
            keeper.dispatcher = NoJournal()  # type: ignore[assignment]
            keeper.rpc = None  # type: ignore[assignment]
            keeper.start_warm_up()
            await asyncio.sleep(0)
            await keeper.stop_warm_up()

        asyncio.run(go())
