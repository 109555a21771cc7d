"""The source accounts (shard_worker.accounts): loading the keys, the start-up check of each
account, sequence numbers and their resync, the pool. Scripted fake RPC answers (account
entries built with stellar-sdk); no network."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from stellar_sdk import Keypair
from stellar_sdk import xdr as sx

from shard_worker import chain
from shard_worker.accounts import (
    SourceAccount,
    SourceAccounts,
    load_account,
    load_accounts,
    load_source_accounts,
)
from shard_worker.errors import FatalConfigError, RpcMalformedError, SecretError
from shard_worker.spec import SecretRef, WorkerSpec
from sorotask_core.signing import Signer
from tests.support.fake_rpc import FakeRpc
from tests.support.ledger_entries import CONTRACT_ID

PASSPHRASE = "Test SDF Network ; September 2015"


def account_xdr(kp: Keypair, balance: int, sequence: int) -> str:
    acc = sx.AccountEntry(
        account_id=kp.xdr_account_id(),
        balance=sx.Int64(balance),
        seq_num=sx.SequenceNumber(sx.Int64(sequence)),
        num_sub_entries=sx.Uint32(0),
        inflation_dest=None,
        flags=sx.Uint32(0),
        home_domain=sx.String32(b""),
        thresholds=sx.Thresholds(b"\x01\x00\x00\x00"),
        signers=[],
        ext=sx.AccountEntryExt(0),
    )
    return sx.LedgerEntryData(sx.LedgerEntryType.ACCOUNT, account=acc).to_xdr()


def found(*xdrs: str) -> dict[str, Any]:
    return {"entries": [{"xdr": x} for x in xdrs]}


def spec_with(monkeypatch: pytest.MonkeyPatch, keeper: str, *channels: str) -> WorkerSpec:
    refs = []
    for n, secret in enumerate((keeper, *channels)):
        name = f"ACC_TEST_SECRET_{os.getpid()}_{n}"
        monkeypatch.setenv(name, secret)
        refs.append(SecretRef(env=name))
    return WorkerSpec(
        name="t",
        rpc_url="http://127.0.0.1:1/",
        network_passphrase=PASSPHRASE,
        contract_id=CONTRACT_ID,
        secret=refs[0],
        channel_secrets=tuple(refs[1:]),
    )


def one(
    kp: Keypair, rpc: FakeRpc, *, is_keeper: bool = True
) -> tuple[SourceAccounts, SourceAccount]:
    acc = SourceAccount(Signer.from_secret(kp.secret), is_keeper)
    others = [] if is_keeper else [SourceAccount(Signer.from_secret(Keypair.random().secret), True)]
    return SourceAccounts([acc, *others], rpc), acc  # type: ignore[arg-type]


class TestLoad:
    def test_channels_first_the_keeper_last(self, monkeypatch: pytest.MonkeyPatch) -> None:
        keeper, c1, c2 = Keypair.random(), Keypair.random(), Keypair.random()
        accounts = load_source_accounts(spec_with(monkeypatch, keeper.secret, c1.secret, c2.secret))
        assert [a.public_key for a in accounts] == [c1.public_key, c2.public_key, keeper.public_key]
        assert [a.is_keeper for a in accounts] == [False, False, True]
        assert all(a.needs_resync for a in accounts)

    def test_a_duplicate_source_is_fatal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        keeper, c1 = Keypair.random(), Keypair.random()
        for dup in ([keeper.secret], [c1.secret, c1.secret]):
            with pytest.raises(FatalConfigError, match="duplicates the keeper or another channel"):
                load_source_accounts(spec_with(monkeypatch, keeper.secret, *dup))

    def test_a_missing_secret_is_fatal_and_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        spec = spec_with(monkeypatch, Keypair.random().secret)
        monkeypatch.delenv(spec.secret.env or "")
        with pytest.raises(SecretError, match=spec.secret.env or ""):
            load_source_accounts(spec)

    def test_the_pool_needs_exactly_one_keeper(self) -> None:
        signer = Signer.from_secret(Keypair.random().secret)
        with pytest.raises(ValueError):
            SourceAccounts([SourceAccount(signer, False)], FakeRpc({}))  # type: ignore[arg-type]


class TestCheck:
    def test_a_funded_account_passes_and_takes_its_sequence(self) -> None:
        kp = Keypair.random()
        rpc = FakeRpc({"getLedgerEntries": [found(account_xdr(kp, 100_000_000, 2**33 + 5))]})
        accounts, acc = one(kp, rpc)
        asyncio.run(accounts.check(acc, PASSPHRASE, 10_000_000, None))
        assert (acc.sequence, acc.needs_resync) == (2**33 + 5, False)
        assert rpc.calls == [("getLedgerEntries", {"keys": [chain.account_key_b64(kp.public_key)]})]

    def test_a_missing_account_says_how_to_fund_it(self) -> None:
        kp = Keypair.random()
        accounts, acc = one(kp, FakeRpc({"getLedgerEntries": [{"entries": []}]}), is_keeper=False)
        with pytest.raises(FatalConfigError) as err:
            asyncio.run(accounts.check(acc, PASSPHRASE, 1, "http://fb.example/"))
        text = str(err.value)
        assert text.startswith(f"channel account {kp.public_key} does not exist")
        assert f"http://fb.example?addr={kp.public_key}" in text

    def test_an_account_that_cannot_pay_fees_leaves_the_pool_not_fatal(self) -> None:
        # issue 13: a low balance at start is no longer a configuration error; the account
        # stays out of the pool (the shard paused when it is the only one) until funded
        kp = Keypair.random()
        reserve = 2 * chain.BASE_RESERVE
        rpc = FakeRpc({"getLedgerEntries": [found(account_xdr(kp, reserve + 5_000_000, 9))]})
        accounts, acc = one(kp, rpc)
        said: list[Any] = []
        accounts.on_transition = said.append
        asyncio.run(accounts.check(acc, PASSPHRASE, 10_000_000, None))
        assert [t.in_pool for t in said] == [False]
        assert "0.5000000 XLM above its reserve" in said[0].message()
        assert accounts.book.out_of_pool() == [kp.public_key]
        assert accounts.paused == "paused: low balance"
        assert acc.sequence == 9

    def test_an_undecodable_account_entry_is_malformed(self) -> None:
        kp = Keypair.random()
        for answer in (found("AAAA"), {"entries": [{"key": "x"}]}):
            rpc = FakeRpc({"getLedgerEntries": [answer]})
            with pytest.raises(RpcMalformedError):
                asyncio.run(load_account(rpc, kp.public_key))  # type: ignore[arg-type]


class TestSequence:
    def test_ready_resyncs_only_when_needed(self) -> None:
        kp = Keypair.random()
        rpc = FakeRpc({"getLedgerEntries": [found(account_xdr(kp, 10**9, 70))]})
        accounts, acc = one(kp, rpc)
        asyncio.run(accounts.ready(acc))
        assert (acc.sequence, acc.needs_resync) == (70, False)
        asyncio.run(accounts.ready(acc))  # nothing asked the second time
        assert len(rpc.calls) == 1

    def test_a_vanished_account_is_an_error(self) -> None:
        kp = Keypair.random()
        accounts, acc = one(kp, FakeRpc({"getLedgerEntries": [{"entries": []}]}))
        with pytest.raises(RpcMalformedError, match="vanished"):
            asyncio.run(accounts.ready(acc))

    def test_sent(self) -> None:
        acc = SourceAccount(Signer.from_secret(Keypair.random().secret), True, 41, False)
        acc.sent(42, accepted=True)
        assert (acc.sequence, acc.needs_resync) == (42, False)
        acc.sent(43, accepted=False)  # maybe queued: used, and reloaded before the next use
        assert (acc.sequence, acc.needs_resync) == (43, True)


class TestPool:
    def test_acquire_waits_for_a_release(self) -> None:
        kp = Keypair.random()
        accounts, acc = one(kp, FakeRpc({}))

        async def go() -> SourceAccount:
            waiter = asyncio.create_task(accounts.acquire())
            await asyncio.sleep(0.05)
            assert not waiter.done()
            accounts.release(acc)
            return await asyncio.wait_for(waiter, 5)

        assert asyncio.run(go()) is acc
        assert accounts.free == 0

    def test_roles(self) -> None:
        kp = Keypair.random()
        accounts, acc = one(kp, FakeRpc({}), is_keeper=False)
        keeper = next(a for a in accounts.all if a.is_keeper)
        assert (acc.role, keeper.role) == ("channel", "keeper")


class TestBalanceRefresh:
    def test_the_accounts_due_are_read_in_one_request_matched_by_key(self) -> None:
        """One getLedgerEntries for every account due (it was one each: 8 accounts every 12
        ledgers were 0.67 requests a shard a ledger); entries matched by key, in any order;
        an account not answered stays unread."""
        kps = [Keypair.random() for _ in range(3)]
        entries = [
            {"key": chain.account_key_b64(kp.public_key), "xdr": account_xdr(kp, bal, 1)}
            for kp, bal in ((kps[2], 7 * 10**8), (kps[0], 5 * 10**8))
        ]
        rpc = FakeRpc({"getLedgerEntries": [{"entries": entries}]})
        accounts = SourceAccounts(
            [SourceAccount(Signer.from_secret(kp.secret), i == 0) for i, kp in enumerate(kps)],
            rpc,  # type: ignore[arg-type]
        )
        asyncio.run(accounts.refresh_balances(100))
        assert [m for m, _ in rpc.calls] == ["getLedgerEntries"]
        assert len(rpc.calls[0][1]["keys"]) == 3  # type: ignore[index]
        balances = accounts.book.balances()
        assert balances[kps[0].public_key] > 0 and balances[kps[2].public_key] > 0
        assert balances.get(kps[1].public_key) is None  # not answered: unread

    def test_an_entry_for_a_key_not_asked_is_malformed(self) -> None:
        kp, other = Keypair.random(), Keypair.random()
        entry = {"key": chain.account_key_b64(other.public_key), "xdr": account_xdr(other, 1, 1)}
        rpc = FakeRpc({"getLedgerEntries": [{"entries": [entry]}]})
        with pytest.raises(RpcMalformedError):
            asyncio.run(load_accounts(rpc, [kp.public_key]))  # type: ignore[arg-type]
