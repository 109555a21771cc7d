"""The SoroTask contract's order of checks, panics and arithmetic, as lib.rs has them
(SOROBAN_FACTS.md, "Events of the SoroTask contract"): what a client sees through the stock
stellar-sdk client when several checks would fail at once."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair, SorobanServer, scval
from stellar_sdk import xdr as sx
from stellar_sdk.exceptions import PrepareTransactionException
from stellar_sdk.soroban_rpc import AuthMode, GetTransactionResponse, GetTransactionStatus

from devnet.process import DevnetProcess
from devnet.sorotask_contract import SOROTASK_ID
from sorotask_core.contract import instance_key_b64
from tests.support import reference_contract as sc
from tests.support.devnet import (
    DevnetOptions,
    execute_args,
    funded_keypair,
    invoke_tx,
    manual_tx,
    send_and_wait,
)

U64_MAX = 2**64 - 1
PANIC = "HostError: Error(WasmVm, InvalidAction)"


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    """A devnet of this module's own, whose contract is never initialised (no token)."""
    return DevnetOptions()


def _invoke(
    dn: DevnetProcess, srv: SorobanServer, source: Keypair, function: str, args: list[sx.SCVal]
) -> GetTransactionResponse:
    tx = srv.prepare_transaction(invoke_tx(srv, dn, source, function, args))
    tx.sign(source)
    return send_and_wait(srv, tx)


def _simulate_error(
    dn: DevnetProcess,
    srv: SorobanServer,
    source: Keypair,
    function: str,
    args: list[sx.SCVal],
    *,
    enforce: bool = False,
) -> str:
    """The simulation's error text ('' if it succeeded). ``enforce``: authMode enforce with
    no auth entries, so a require_auth of anyone but the source fails where it is called."""
    sim = srv.simulate_transaction(
        invoke_tx(srv, dn, source, function, args),
        auth_mode=AuthMode.ENFORCE if enforce else None,
    )
    return sim.error or ""


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


class TestCheckOrder:
    def test_get_token_panics_not_initialized(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        dn, srv = devnet, soroban
        error = _simulate_error(dn, srv, funded_keypair(dn), "get_token", [])
        assert error.startswith(PANIC) and "Not initialized" in error
        assert "Error(Contract, #4)" not in error

    def test_deposit_checks_auth_then_task_then_token(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        dn, srv = devnet, soroban
        source, other = funded_keypair(dn), funded_keypair(dn)
        missing = [scval.to_uint64(U64_MAX - 1)]
        amount = [scval.to_int128(5)]
        # from's authorization first: missing task and no token do not matter yet
        args = [*missing, scval.to_address(other.public_key), *amount]
        error = _simulate_error(dn, srv, source, "deposit_gas", args, enforce=True)
        assert error.startswith("HostError: Error(Auth, InvalidAction)")
        # then the task, before the token
        args = [*missing, scval.to_address(source.public_key), *amount]
        error = _simulate_error(dn, srv, source, "deposit_gas", args)
        assert error.startswith(PANIC) and "Task not found" in error
        # then the token
        first, _ = dn.seed_tasks(count=1)
        args = [scval.to_uint64(first), scval.to_address(source.public_key), *amount]
        error = _simulate_error(dn, srv, source, "deposit_gas", args)
        assert error.startswith(PANIC) and "Not initialized" in error

    def test_withdraw_checks_task_then_auth_then_balance_then_token(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        dn, srv = devnet, soroban
        creator, stranger = funded_keypair(dn), funded_keypair(dn)
        # the task first: a stranger's withdrawal of a missing task is "Task not found"
        args = [scval.to_uint64(U64_MAX - 1), scval.to_int128(5)]
        error = _simulate_error(dn, srv, stranger, "withdraw_gas", args, enforce=True)
        assert error.startswith(PANIC) and "Task not found" in error
        first, _ = dn.seed_tasks(count=1, gas_balance=10, creator=creator.public_key)
        too_much = [scval.to_uint64(first), scval.to_int128(11)]
        # then the creator's authorization, before the balance
        error = _simulate_error(dn, srv, stranger, "withdraw_gas", too_much, enforce=True)
        assert error.startswith("HostError: Error(Auth, InvalidAction)")
        # then the balance (Error 3), before the token
        error = _simulate_error(dn, srv, creator, "withdraw_gas", too_much)
        assert error.startswith("HostError: Error(Contract, #3)")
        # then the token
        error = _simulate_error(
            dn, srv, creator, "withdraw_gas", [scval.to_uint64(first), scval.to_int128(10)]
        )
        assert error.startswith(PANIC) and "Not initialized" in error

    def test_a_failed_deposit_emits_nothing_and_changes_nothing(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        dn, srv = devnet, soroban
        source = funded_keypair(dn)
        first, _ = dn.seed_tasks(count=1, gas_balance=7)
        args = [scval.to_uint64(first), scval.to_address(source.public_key), scval.to_int128(5)]
        with pytest.raises(PrepareTransactionException) as caught:
            srv.prepare_transaction(invoke_tx(srv, dn, source, "deposit_gas", args))
        assert "Not initialized" in (caught.value.simulate_transaction_response.error or "")
        # sent anyway (a hand-made footprint): it fails on chain, pays, emits nothing
        task_key = sc.task_ledger_key_b64(SOROTASK_ID, first)
        tx = manual_tx(
            srv,
            dn,
            source,
            "deposit_gas",
            args,
            read_only=[instance_key_b64(SOROTASK_ID)],
            read_write=[task_key],
        )
        result = send_and_wait(srv, tx)
        assert result.status == GetTransactionStatus.FAILED
        assert _gas_balance(srv, first) == 7
        assert _events_of(srv, result.ledger, "GasDeposited", first) == []


class TestDueCheckWraps:
    """lib.rs adds last_run + interval in u64 without overflow checks (release build)."""

    def _effect(self, dn: DevnetProcess, srv: SorobanServer, task_id: int) -> str:
        keeper = funded_keypair(dn)
        result = _invoke(dn, srv, keeper, "execute", execute_args(keeper.public_key, task_id))
        assert result.status == GetTransactionStatus.SUCCESS
        return dn.executions([task_id])[-1]["effect"]

    def test_a_sum_past_u64_wraps_and_the_task_is_due(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, _ = devnet.seed_tasks(count=1, last_run=U64_MAX - 9, interval=20)  # wraps to 10
        assert self._effect(devnet, soroban, first) == "executed"

    def test_a_sum_just_below_u64_max_is_not_due(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        first, _ = devnet.seed_tasks(count=1, last_run=U64_MAX - 30, interval=20)
        assert self._effect(devnet, soroban, first) == "noop_not_due"
