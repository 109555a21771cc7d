"""Keeper authorization when a channel account is the transaction source."""

from __future__ import annotations

from stellar_sdk import Address, Keypair, SorobanServer
from stellar_sdk import xdr as sx
from stellar_sdk.auth import authorize_entry
from stellar_sdk.soroban_rpc import GetTransactionStatus
from stellar_sdk.transaction_envelope import TransactionEnvelope

from devnet.process import DevnetProcess
from tests.support.devnet import execute_args, funded_keypair, invoke_tx, send_and_wait


def _channel_tx(
    devnet: DevnetProcess,
    soroban: SorobanServer,
    keeper: Keypair,
    channel: Keypair,
    task_id: int,
    *,
    valid_for: int | None = 100,
) -> TransactionEnvelope:
    """execute(keeper, id) sent by ``channel``; the keeper signs its auth entry unless
    ``valid_for`` is None."""
    tx = soroban.prepare_transaction(
        invoke_tx(soroban, devnet, channel, "execute", execute_args(keeper.public_key, task_id))
    )
    op = tx.transaction.operations[0]
    if valid_for is not None:
        latest = soroban.get_latest_ledger().sequence
        op.auth = [
            authorize_entry(e, keeper, latest + valid_for, devnet.info.network_passphrase)
            for e in op.auth
        ]
    tx.sign(channel)
    return tx


class TestChannelAccountAuth:
    def test_simulation_records_an_unsigned_address_entry_for_the_keeper(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper, channel = funded_keypair(devnet), funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        sim = soroban.simulate_transaction(
            invoke_tx(soroban, devnet, channel, "execute", execute_args(keeper.public_key, first))
        )
        assert sim.error is None
        entries = [sx.SorobanAuthorizationEntry.from_xdr(a) for a in sim.results[0].auth]
        assert len(entries) == 1
        creds = entries[0].credentials
        assert creds.type == sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS
        assert creds.address.address == Address(keeper.public_key).to_xdr_sc_address()
        fn = entries[0].root_invocation.function.contract_fn
        assert fn.function_name.sc_symbol == b"execute"
        assert creds.address.signature.type == sx.SCValType.SCV_VOID

    def test_keeper_source_gets_source_account_credentials(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        sim = soroban.simulate_transaction(
            invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first))
        )
        entry = sx.SorobanAuthorizationEntry.from_xdr(sim.results[0].auth[0])
        assert entry.credentials.type == (
            sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
        )

    def test_keeper_signed_entry_lets_a_channel_account_execute(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper, channel = funded_keypair(devnet), funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, whitelist=[keeper.public_key])
        result = send_and_wait(soroban, _channel_tx(devnet, soroban, keeper, channel, first))
        assert result.status == GetTransactionStatus.SUCCESS
        execution = devnet.executions([first])[-1]
        assert (execution["effect"], execution["keeper"]) == ("executed", keeper.public_key)
        assert channel.public_key in devnet.stats()["fees"]

    def test_unsigned_entry_fails_as_unauthorized(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper, channel = funded_keypair(devnet), funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        tx = _channel_tx(devnet, soroban, keeper, channel, first, valid_for=None)
        result = send_and_wait(soroban, tx)
        assert result.status == GetTransactionStatus.FAILED
        assert devnet.executions([first])[-1]["effect"] == "unauthorized"

    def test_entry_signed_by_the_wrong_key_fails(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper, channel = funded_keypair(devnet), funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, channel, "execute", execute_args(keeper.public_key, first))
        )
        op = tx.transaction.operations[0]
        latest = soroban.get_latest_ledger().sequence
        impostor = Keypair.random()
        entry = op.auth[0]
        signed = authorize_entry(entry, impostor, latest + 50, devnet.info.network_passphrase)
        op.auth = [signed]
        tx.sign(channel)
        assert send_and_wait(soroban, tx).status == GetTransactionStatus.FAILED

    def test_expired_signature_fails(self, devnet: DevnetProcess, soroban: SorobanServer) -> None:
        keeper, channel = funded_keypair(devnet), funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        tx = _channel_tx(devnet, soroban, keeper, channel, first, valid_for=-1)
        assert send_and_wait(soroban, tx).status == GetTransactionStatus.FAILED

    def test_replayed_nonce_fails(self, devnet: DevnetProcess, soroban: SorobanServer) -> None:
        keeper, channel = funded_keypair(devnet), funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, interval=1)
        tx = _channel_tx(devnet, soroban, keeper, channel, first)
        assert send_and_wait(soroban, tx).status == GetTransactionStatus.SUCCESS
        used_auth = tx.transaction.operations[0].auth
        replay = _channel_tx(devnet, soroban, keeper, channel, first, valid_for=None)
        replay.transaction.operations[0].auth = used_auth
        replay.signatures = []
        replay.sign(channel)
        # the footprint of the fresh simulation names a different nonce: widen it
        fp = replay.transaction.soroban_data.resources.footprint
        nonce_keys = [k for k in tx.transaction.soroban_data.resources.footprint.read_write]
        fp.read_write.extend(k for k in nonce_keys if k not in fp.read_write)
        replay.transaction.soroban_data.resource_fee = sx.Int64(10_000_000)
        replay.transaction.fee = 10_000_100
        replay.signatures = []
        replay.sign(channel)
        result = send_and_wait(soroban, replay)
        assert result.status == GetTransactionStatus.FAILED
        assert devnet.executions([first])[-1]["effect"] == "unauthorized"
