"""The devnet driven by stellar-sdk's own clients, as a keeper would use it."""

from __future__ import annotations

import asyncio

from stellar_sdk import SorobanServer, SorobanServerAsync, scval
from stellar_sdk import xdr as sx
from stellar_sdk.soroban_rpc import GetTransactionStatus

from devnet.process import DevnetProcess
from tests.support import reference_contract as sc
from tests.support.devnet import (
    execute_args,
    funded_keypair,
    invoke_tx,
    send_and_wait,
    wait_ledgers,
)
from tests.support.sdk_client import HttpxAsyncClient


class TestSdkReads:
    def test_friendbot_account_loads_with_sequence_from_ledger(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        kp = funded_keypair(devnet)
        account = soroban.load_account(kp.public_key)
        latest = soroban.get_latest_ledger().sequence
        assert account.sequence >> 32 <= latest
        assert account.sequence >> 32 >= latest - 50
        assert account.sequence & 0xFFFFFFFF == 0

    def test_latest_ledger_advances_with_close_time(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first = soroban.get_latest_ledger()
        wait_ledgers(devnet, 2)
        second = soroban.get_latest_ledger()
        assert second.sequence >= first.sequence + 2
        assert second.close_time - first.close_time == 5 * (second.sequence - first.sequence)
        header = sx.LedgerHeader.from_xdr(second.header_xdr)
        assert header.ledger_seq.uint32 == second.sequence
        assert sx.LedgerCloseMeta.from_xdr(second.metadata_xdr).v == 2

    def test_task_entries_decode_with_sdk_scval_helpers(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, last = devnet.seed_tasks(count=3, interval=120, last_run=7, gas_balance=55)
        keys = [sc.task_ledger_key(devnet.info.contract_id, i) for i in range(first, last + 1)]
        resp = soroban.get_ledger_entries(keys)
        assert resp.entries is not None and len(resp.entries) == 3
        for entry in resp.entries:
            data = sx.LedgerEntryData.from_xdr(entry.xdr)
            native = scval.to_native(data.contract_data.val)
            assert native["interval"] == 120
            assert native["last_run"] == 7
            assert native["gas_balance"] == 55
            assert native["whitelist"] == []
            assert (
                entry.live_until_ledger is not None and entry.live_until_ledger > resp.latest_ledger
            )

    def test_missing_keys_are_omitted(self, devnet: DevnetProcess, soroban: SorobanServer) -> None:
        resp = soroban.get_ledger_entries([sc.task_ledger_key(devnet.info.contract_id, 10**12)])
        assert not resp.entries

    def test_network_health_version_and_fee_stats_parse(self, devnet: DevnetProcess) -> None:
        async def run() -> None:
            async with SorobanServerAsync(devnet.info.rpc_url, client=HttpxAsyncClient()) as srv:
                net = await srv.get_network()
                assert net.passphrase == devnet.info.network_passphrase
                assert net.friendbot_url == devnet.info.friendbot_url
                health = await srv.get_health()
                assert health.status == "healthy"
                assert (await srv.get_version_info()).protocol_version == net.protocol_version
                fees = await srv.get_fee_stats()
                # from what the last 50 ledgers included: no surge here, so 100 each (0 if none)
                soroban_fees = fees.soroban_inclusion_fee
                assert soroban_fees.p50 == (100 if soroban_fees.transaction_count else 0)

        asyncio.run(run())


class TestSdkSimulateAndExecute:
    def test_simulate_get_task_returns_the_stored_config(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, _ = devnet.seed_tasks(count=1, interval=77)
        kp = funded_keypair(devnet)
        sim = soroban.simulate_transaction(
            invoke_tx(soroban, devnet, kp, "get_task", [scval.to_uint64(first)])
        )
        assert sim.error is None and sim.results
        cfg = sc.decode_task_config(sx.SCVal.from_xdr(sim.results[0].xdr))
        assert cfg.interval == 77
        data = sx.SorobanTransactionData.from_xdr(sim.transaction_data)
        assert not data.resources.footprint.read_write
        ro = {k.to_xdr() for k in data.resources.footprint.read_only}
        assert sc.task_ledger_key_b64(devnet.info.contract_id, first) in ro
        assert sim.min_resource_fee == data.resource_fee.int64 > 0

    def test_simulate_get_task_of_missing_task_returns_void(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        kp = funded_keypair(devnet)
        sim = soroban.simulate_transaction(
            invoke_tx(soroban, devnet, kp, "get_task", [scval.to_uint64(10**15)])
        )
        assert sim.error is None
        assert sx.SCVal.from_xdr(sim.results[0].xdr).type == sx.SCValType.SCV_VOID

    def test_prepare_sign_send_execute_succeeds_and_is_recorded(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, _ = devnet.seed_tasks(count=1, interval=60)
        keeper = funded_keypair(devnet)
        tx = invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first))
        prepared = soroban.prepare_transaction(tx)
        fp = prepared.transaction.soroban_data.resources.footprint
        rw = {k.to_xdr() for k in fp.read_write}
        assert sc.task_ledger_key_b64(devnet.info.contract_id, first) in rw
        prepared.sign(keeper)
        sent = soroban.send_transaction(prepared)
        assert sent.status.value == "PENDING", sent
        result = soroban.poll_transaction(sent.hash, max_attempts=100, sleep_strategy=lambda _: 0.1)
        assert result.status == GetTransactionStatus.SUCCESS
        assert sx.TransactionResult.from_xdr(result.result_xdr).result.code == (
            sx.TransactionResultCode.txSUCCESS
        )
        meta = sx.TransactionMeta.from_xdr(result.result_meta_xdr)
        assert meta.v4.soroban_meta.return_value.type == sx.SCValType.SCV_VOID
        execs = devnet.executions([first])
        assert [(e["effect"], e["keeper"], e["tx_hash"]) for e in execs] == [
            ("executed", keeper.public_key, sent.hash)
        ]
        assert execs[0]["ledger"] == result.ledger
        # last_run is now the close time of the ledger the transaction ran in
        entry = soroban.get_ledger_entries([sc.task_ledger_key(devnet.info.contract_id, first)])
        val = sx.LedgerEntryData.from_xdr(entry.entries[0].xdr).contract_data.val
        assert sc.decode_task_config(val).last_run == execs[0]["timestamp"]
        assert entry.entries[0].last_modified_ledger == result.ledger

    def test_fee_is_charged_to_the_source_account(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, _ = devnet.seed_tasks(count=1)
        keeper = funded_keypair(devnet)
        before = soroban.get_ledger_entries([_account_key(keeper.public_key)])
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first))
        )
        tx.sign(keeper)
        result = send_and_wait(soroban, tx)
        charged = sx.TransactionResult.from_xdr(result.result_xdr).fee_charged.int64
        after = soroban.get_ledger_entries([_account_key(keeper.public_key)])
        bal = [sx.LedgerEntryData.from_xdr(r.entries[0].xdr).account for r in (before, after)]
        assert bal[0].balance.int64 - bal[1].balance.int64 == charged > 100
        assert bal[1].seq_num.sequence_number.int64 == bal[0].seq_num.sequence_number.int64 + 1
        assert devnet.stats()["fees"][keeper.public_key] == charged


def _account_key(address: str) -> sx.LedgerKey:
    from stellar_sdk import Keypair

    return sx.LedgerKey(
        type=sx.LedgerEntryType.ACCOUNT,
        account=sx.LedgerKeyAccount(Keypair.from_public_key(address).xdr_account_id()),
    )
