"""The SoroTask contract's events, as lib.rs emits them (SOROBAN_FACTS.md, "Events of the
SoroTask contract"), read back through the stock stellar-sdk client's getEvents."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair, SorobanServer, scval
from stellar_sdk import xdr as sx
from stellar_sdk.soroban_rpc import GetTransactionResponse, GetTransactionStatus

from devnet.process import DevnetProcess
from devnet.sorotask_contract import SOROTASK_ID, TARGET_OK_ID
from tests.support import reference_contract as sc
from tests.support.devnet import (
    DevnetOptions,
    execute_args,
    funded_keypair,
    invoke_tx,
    send_and_wait,
)


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    """A devnet of this module's own: its token is set below (the shared devnet's contract
    stays uninitialised for the tests that need it so)."""
    return DevnetOptions()


@pytest.fixture(scope="module", autouse=True)
def _token(devnet: DevnetProcess, soroban: SorobanServer) -> None:
    admin = funded_keypair(devnet)
    token = scval.to_address(Keypair.random().public_key)
    assert _invoke(devnet, soroban, admin, "init", [token]).status == GetTransactionStatus.SUCCESS


def _invoke(
    dn: DevnetProcess, srv: SorobanServer, source: Keypair, function: str, args: list[sx.SCVal]
) -> GetTransactionResponse:
    tx = srv.prepare_transaction(invoke_tx(srv, dn, source, function, args))
    tx.sign(source)
    return send_and_wait(srv, tx)


def _events_of(srv: SorobanServer, ledger: int, name: str, task_id: int) -> list:
    return srv.get_events(
        start_ledger=ledger,
        filters=[
            {
                "type": "contract",
                "contractIds": [SOROTASK_ID],
                "topics": [[scval.to_symbol(name).to_xdr(), scval.to_uint64(task_id).to_xdr()]],
            }
        ],
    ).events


def _gas_balance(srv: SorobanServer, task_id: int) -> int:
    entry = srv.get_ledger_entries([sc.task_ledger_key(SOROTASK_ID, task_id)]).entries[0]
    val = sx.LedgerEntryData.from_xdr(entry.xdr).contract_data.val
    return sc.decode_task_config(val).gas_balance


def _address_amount(value_b64: str) -> tuple[str, int]:
    val = sx.SCVal.from_xdr(value_b64)
    assert val.type == sx.SCValType.SCV_VEC and len(val.vec.sc_vec) == 2
    address, amount = val.vec.sc_vec
    return scval.from_address(address).address, scval.from_int128(amount)


class TestEvents:
    def test_register_emits_task_registered_with_the_id_and_the_creator(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        creator = funded_keypair(devnet)
        cfg = sc.TaskConfig(creator=creator.public_key, target=TARGET_OK_ID, function="run")
        result = _invoke(devnet, soroban, creator, "register", [sc.encode_task_config(cfg)])
        assert result.status == GetTransactionStatus.SUCCESS
        meta = sx.TransactionMeta.from_xdr(result.result_meta_xdr)
        task_id = scval.from_uint64(meta.v4.soroban_meta.return_value)
        (event,) = _events_of(soroban, result.ledger, "TaskRegistered", task_id)
        assert (event.event_type, event.contract_id, event.ledger) == (
            "contract",
            SOROTASK_ID,
            result.ledger,
        )
        assert event.transaction_hash == result.transaction_hash
        assert scval.from_address(sx.SCVal.from_xdr(event.value)).address == creator.public_key

    def test_deposit_emits_gas_deposited_with_from_and_amount(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        dn, srv = devnet, soroban
        depositor = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1, gas_balance=100)
        args = [scval.to_uint64(first), scval.to_address(depositor.public_key)]
        result = _invoke(dn, srv, depositor, "deposit_gas", [*args, scval.to_int128(25)])
        assert result.status == GetTransactionStatus.SUCCESS
        (event,) = _events_of(srv, result.ledger, "GasDeposited", first)
        assert len(event.topic) == 2
        assert _address_amount(event.value) == (depositor.public_key, 25)
        assert _gas_balance(srv, first) == 125

    def test_withdraw_emits_gas_withdrawn_with_the_creator_and_amount(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        dn, srv = devnet, soroban
        creator = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1, gas_balance=100, creator=creator.public_key)
        args = [scval.to_uint64(first), scval.to_int128(40)]
        result = _invoke(dn, srv, creator, "withdraw_gas", args)
        assert result.status == GetTransactionStatus.SUCCESS
        (event,) = _events_of(srv, result.ledger, "GasWithdrawn", first)
        assert _address_amount(event.value) == (creator.public_key, 40)
        assert _gas_balance(srv, first) == 60

    def test_execute_emits_no_event(self, devnet: DevnetProcess, soroban: SorobanServer) -> None:
        dn, srv = devnet, soroban
        keeper = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1)
        result = _invoke(dn, srv, keeper, "execute", execute_args(keeper.public_key, first))
        assert result.status == GetTransactionStatus.SUCCESS
        assert dn.executions([first])[-1]["effect"] == "executed"
        events = srv.get_events(start_ledger=result.ledger, filters=[]).events
        assert not [e for e in events if e.transaction_hash == result.transaction_hash]
