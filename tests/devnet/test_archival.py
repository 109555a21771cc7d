"""TTL and archival as protocol 23 has them (SOROBAN_FACTS.md "Small shapes", "Archival"):
devnet_expireEntries, getLedgerEntries of expired entries, simulation's ext v1
``archivedSorobanEntries``, the restoring transaction, and the keeper's execute_archived path
run end to end against the devnet."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stellar_sdk import SorobanDataBuilder, SorobanServer
from stellar_sdk import xdr as sx
from stellar_sdk.auth import authorize_entry
from stellar_sdk.soroban_rpc import GetTransactionStatus

from devnet.process import DevnetProcess, DevnetRpcError
from devnet.sorotask_contract import SOROTASK_ID
from tests.support import reference_contract as sc
from tests.support.devnet import (
    DevnetOptions,
    execute_args,
    funded_keypair,
    invoke_tx,
    result_code,
    send_and_wait,
)
from tests.support.keeper import Keys, RecordingReporter, make_spec, run_until


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    """A devnet of this module's own: entries are expired here."""
    return DevnetOptions()


@pytest.fixture(scope="module")
def dn(devnet: DevnetProcess) -> DevnetProcess:
    return devnet


@pytest.fixture(scope="module")
def srv(soroban: SorobanServer) -> SorobanServer:
    return soroban


def _entry(srv: SorobanServer, key_b64: str) -> Any:
    entries = srv.get_ledger_entries([sx.LedgerKey.from_xdr(key_b64)]).entries
    return entries[0] if entries else None


def _task_key(task_id: int) -> str:
    return sc.task_ledger_key_b64(SOROTASK_ID, task_id)


def _last_run(srv: SorobanServer, task_id: int) -> int:
    val = sx.LedgerEntryData.from_xdr(_entry(srv, _task_key(task_id)).xdr).contract_data.val
    return sc.decode_task_config(val).last_run


class TestExpiredEntries:
    def test_an_expired_persistent_entry_comes_back_with_live_until_0(
        self, dn: DevnetProcess, srv: SorobanServer
    ) -> None:
        first, _ = dn.seed_tasks(count=2)
        before = _entry(srv, _task_key(first))
        assert before.live_until_ledger > srv.get_latest_ledger().sequence
        out = dn.expire_entries(task_ids=[first])
        assert (out["expired"], out["skipped"]) == (1, 0)
        after = _entry(srv, _task_key(first))
        assert after.live_until_ledger == 0  # archived: core reports no TTL
        assert after.xdr == before.xdr  # the entry itself is still served
        assert _entry(srv, _task_key(first + 1)).live_until_ledger > 0  # only the chosen one

    def test_an_expired_temporary_entry_is_omitted(
        self, dn: DevnetProcess, srv: SorobanServer
    ) -> None:
        # a keeper's auth nonce: temporary storage, written when a channel account sends
        keeper, channel = funded_keypair(dn), funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        tx = srv.prepare_transaction(
            invoke_tx(srv, dn, channel, "execute", execute_args(keeper.public_key, first))
        )
        op = tx.transaction.operations[0]
        expiration = srv.get_latest_ledger().sequence + 100
        op.auth = [
            authorize_entry(e, keeper, expiration, dn.info.network_passphrase) for e in op.auth
        ]
        tx.sign(channel)
        assert send_and_wait(srv, tx).status == GetTransactionStatus.SUCCESS
        footprint = tx.transaction.soroban_data.resources.footprint
        (nonce,) = [
            k.to_xdr()
            for k in footprint.read_write
            if k.contract_data is not None
            and k.contract_data.durability == sx.ContractDataDurability.TEMPORARY
        ]
        assert _entry(srv, nonce).live_until_ledger == expiration
        assert dn.expire_entries(keys=[nonce])["expired"] == 1
        assert _entry(srv, nonce) is None

    def test_expire_entries_checks_its_parameters(self, dn: DevnetProcess) -> None:
        with pytest.raises(DevnetRpcError) as caught:
            dn.expire_entries(task_id=[1])
        assert caught.value.code == -32602
        with pytest.raises(DevnetRpcError):
            dn.expire_entries(keys=["AAAA!!"])
        with pytest.raises(DevnetRpcError):
            dn.expire_entries(first_id=5, last_id=4)
        account = funded_keypair(dn)
        key = sx.LedgerKey(
            type=sx.LedgerEntryType.ACCOUNT,
            account=sx.LedgerKeyAccount(account_id=account.xdr_account_id()),
        ).to_xdr()
        # accounts have no TTL; missing tasks are skipped too
        assert dn.expire_entries(keys=[key], task_ids=[2**63]) == {
            "expired": 0,
            "skipped": 2,
            "liveUntilLedgerSeq": dn.rpc("getLatestLedger")["sequence"] - 1,
        }


class TestRestore:
    def test_simulation_lists_the_archived_entry_in_ext_v1(
        self, dn: DevnetProcess, srv: SorobanServer
    ) -> None:
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        live = srv.simulate_transaction(
            invoke_tx(srv, dn, keeper, "execute", execute_args(keeper.public_key, first))
        )
        assert sx.SorobanTransactionData.from_xdr(live.transaction_data).ext.v == 0
        dn.expire_entries(task_ids=[first])
        sim = srv.simulate_transaction(
            invoke_tx(srv, dn, keeper, "execute", execute_args(keeper.public_key, first))
        )
        assert sim.error is None
        data = sx.SorobanTransactionData.from_xdr(sim.transaction_data)
        assert data.ext.v == 1
        archived = [i.uint32 for i in data.ext.resource_ext.archived_soroban_entries]
        read_write = [k.to_xdr() for k in data.resources.footprint.read_write]
        assert [read_write[i] for i in archived] == [_task_key(first)]
        assert sim.restore_preamble is None  # protocol 23: restored inside the invocation

    def test_the_sent_transaction_restores_the_entry(
        self, dn: DevnetProcess, srv: SorobanServer
    ) -> None:
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        dn.expire_entries(task_ids=[first])
        tx = srv.prepare_transaction(
            invoke_tx(srv, dn, keeper, "execute", execute_args(keeper.public_key, first))
        )
        assert tx.transaction.soroban_data.ext.v == 1  # prepare_transaction keeps ext v1
        tx.sign(keeper)
        result = send_and_wait(srv, tx)
        assert result.status == GetTransactionStatus.SUCCESS
        assert dn.executions([first])[-1]["effect"] == "executed"
        entry = _entry(srv, _task_key(first))
        assert entry.live_until_ledger > srv.get_latest_ledger().sequence  # live again
        assert _last_run(srv, first) > 0

    def test_a_transaction_not_marking_the_archived_entry_fails_entry_archived(
        self, dn: DevnetProcess, srv: SorobanServer
    ) -> None:
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        dn.expire_entries(task_ids=[first])
        tx = invoke_tx(srv, dn, keeper, "execute", execute_args(keeper.public_key, first))
        prepared = srv.prepare_transaction(tx)
        data = prepared.transaction.soroban_data
        stripped = (  # the same footprint and fee, without archivedSorobanEntries
            SorobanDataBuilder()
            .set_read_only(data.resources.footprint.read_only)
            .set_read_write(data.resources.footprint.read_write)
            .set_resources(
                data.resources.instructions.uint32,
                data.resources.disk_read_bytes.uint32,
                data.resources.write_bytes.uint32,
            )
            .set_resource_fee(data.resource_fee.int64)
            .build()
        )
        assert stripped.ext.v == 0
        prepared.transaction.soroban_data = stripped
        prepared.signatures = []
        prepared.sign(keeper)
        result = send_and_wait(srv, prepared)
        assert result.status == GetTransactionStatus.FAILED
        assert result_code(result) == sx.TransactionResultCode.txFAILED
        op = sx.TransactionResult.from_xdr(result.result_xdr).result.results[0]
        assert (
            op.tr.invoke_host_function_result.code
            == sx.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_ENTRY_ARCHIVED
        )
        assert _entry(srv, _task_key(first)).live_until_ledger == 0  # still archived


def _run_keeper(
    dn: DevnetProcess, keys: Keys, ids: range, *, execute_archived: bool, until: Any
) -> RecordingReporter:
    """A real keeper (run_keeper) over ``ids`` until ``until(reporter)`` (20 s at most)."""
    _keeper, secret = keys.new()
    spec = make_spec(
        dn,
        secret,
        range_first=ids.start,
        range_last=ids.stop - 1,
        execute_archived=execute_archived,
    )
    reporter = RecordingReporter()
    code = asyncio.run(run_until(spec, reporter, lambda: until(reporter), limit_s=20.0))
    assert code == 0  # stopped cleanly
    assert not reporter.fatals
    return reporter


class TestKeeper:
    def test_the_keeper_executes_an_archived_due_task(
        self, dn: DevnetProcess, srv: SorobanServer, keys: Keys
    ) -> None:
        first, last = dn.seed_tasks(count=3, interval=10**7)
        ids = range(first, last + 1)
        dn.expire_entries(first_id=first, last_id=first + 1)

        def all_executed(_rep: RecordingReporter) -> bool:
            return {e["task_id"] for e in dn.executions(list(ids))} == set(ids)

        rep = _run_keeper(dn, keys, ids, execute_archived=True, until=all_executed)
        effects = [(e["task_id"], e["effect"]) for e in dn.executions(list(ids))]
        assert sorted(effects) == [(i, "executed") for i in ids]  # each once
        assert max(c.archived for c in rep.cycles) == 2
        assert not rep.events_of("failed")
        for task_id in ids:  # restored by the keeper's transactions
            assert _entry(srv, _task_key(task_id)).live_until_ledger > 0

    def test_execute_archived_false_skips_it(
        self, dn: DevnetProcess, srv: SorobanServer, keys: Keys
    ) -> None:
        first, last = dn.seed_tasks(count=2, interval=10**7)
        ids = range(first, last + 1)
        dn.expire_entries(task_ids=[first])
        mark: list[int] = []

        def live_one_executed_then_3_cycles(rep: RecordingReporter) -> bool:
            if [e["task_id"] for e in dn.executions(list(ids))] != [last]:
                return False
            with rep.lock:
                if not mark:
                    mark.append(len(rep.cycles))
                return len(rep.cycles) >= mark[0] + 3

        rep = _run_keeper(
            dn, keys, ids, execute_archived=False, until=live_one_executed_then_3_cycles
        )
        # three more cycles did not change it: the archived task stays skipped
        assert [e["task_id"] for e in dn.executions(list(ids))] == [last]
        skipped = [c.skipped.get("archived", 0) for c in rep.cycles]
        assert skipped and max(skipped) == 1
        assert _entry(srv, _task_key(first)).live_until_ledger == 0
