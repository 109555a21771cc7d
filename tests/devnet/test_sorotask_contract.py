"""SoroTask contract semantics (SOROBAN_FACTS.md) as seen through simulation and execution."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair, SorobanServer, scval
from stellar_sdk import xdr as sx
from stellar_sdk.exceptions import PrepareTransactionException
from stellar_sdk.soroban_rpc import GetTransactionStatus

from devnet.process import DevnetProcess
from devnet.sorotask_contract import (
    RESOLVER_TRUE_ID,
    SOROTASK_ID,
    TARGET_OK_ID,
    TARGET_PANIC_ID,
    instance_key_b64,
)
from tests.support import reference_contract as sc
from tests.support.devnet import (
    execute_args,
    funded_keypair,
    invoke_tx,
    latest_close_time,
    manual_tx,
    send_and_wait,
)


def _execute(
    devnet: DevnetProcess, soroban: SorobanServer, task_id: int, keeper: Keypair
) -> tuple[str, dict]:
    tx = soroban.prepare_transaction(
        invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, task_id))
    )
    tx.sign(keeper)
    result = send_and_wait(soroban, tx)
    execs = devnet.executions([task_id])
    return result.status.value, execs[-1]


def _task(soroban: SorobanServer, task_id: int) -> tuple[sc.TaskConfig, int]:
    resp = soroban.get_ledger_entries([sc.task_ledger_key(SOROTASK_ID, task_id)])
    entry = resp.entries[0]
    val = sx.LedgerEntryData.from_xdr(entry.xdr).contract_data.val
    return sc.decode_task_config(val), entry.last_modified_ledger


class TestExecute:
    def test_whitelisted_keeper_executes(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, whitelist=[keeper.public_key])
        status, execution = _execute(devnet, soroban, first, keeper)
        assert (status, execution["effect"]) == ("SUCCESS", "executed")

    def test_keeper_outside_whitelist_gets_contract_error_2_in_simulation(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, whitelist=[Keypair.random().public_key])
        tx = invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first))
        sim = soroban.simulate_transaction(tx)
        assert sim.error is not None and sim.error.startswith("HostError: Error(Contract, #2)")
        assert sim.transaction_data is None and sim.results is None
        with pytest.raises(PrepareTransactionException):
            soroban.prepare_transaction(tx)

    def test_keeper_outside_whitelist_fails_on_chain_and_pays(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, whitelist=[Keypair.random().public_key])
        tx = manual_tx(
            soroban,
            devnet,
            keeper,
            "execute",
            execute_args(keeper.public_key, first),
            read_only=[instance_key_b64(SOROTASK_ID), sc.task_ledger_key_b64(SOROTASK_ID, first)],
        )
        # source-account auth entry, as prepare_transaction would have attached
        result = send_and_wait(soroban, _with_source_auth(tx, keeper))
        assert result.status == GetTransactionStatus.FAILED
        assert sx.TransactionResult.from_xdr(result.result_xdr).fee_charged.int64 > 0
        assert devnet.executions([first])[-1]["effect"] == "unauthorized"

    def test_not_due_execute_is_a_successful_no_op(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        now = latest_close_time(devnet)
        first, _ = devnet.seed_tasks(count=1, interval=3600, last_run=now)
        _, modified_before = _task(soroban, first)
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, first))
        )
        # nothing is written, so nothing is in the read-write footprint
        assert not tx.transaction.soroban_data.resources.footprint.read_write
        tx.sign(keeper)
        assert send_and_wait(soroban, tx).status == GetTransactionStatus.SUCCESS
        assert devnet.executions([first])[-1]["effect"] == "noop_not_due"
        cfg, modified_after = _task(soroban, first)
        assert cfg.last_run == now and modified_after == modified_before

    def test_second_execute_after_success_is_a_no_op(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, interval=3600)
        assert _execute(devnet, soroban, first, keeper)[1]["effect"] == "executed"
        assert _execute(devnet, soroban, first, keeper)[1]["effect"] == "noop_not_due"

    @pytest.mark.parametrize(
        ("resolver", "effect"),
        [("true", "executed"), ("false", "resolver_skipped"), ("panic", "resolver_skipped")],
    )
    def test_resolver_decides_whether_the_target_runs(
        self, devnet: DevnetProcess, soroban: SorobanServer, resolver: str, effect: str
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, resolver=resolver)
        status, execution = _execute(devnet, soroban, first, keeper)
        assert (status, execution["effect"]) == ("SUCCESS", effect)
        cfg, _ = _task(soroban, first)
        assert (cfg.last_run != 0) == (effect == "executed")

    def test_panicking_target_fails_simulation_and_transaction(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, target="panic")
        args = execute_args(keeper.public_key, first)
        sim = soroban.simulate_transaction(invoke_tx(soroban, devnet, keeper, "execute", args))
        assert sim.error is not None and "Error(WasmVm, InvalidAction)" in sim.error
        tx = manual_tx(
            soroban,
            devnet,
            keeper,
            "execute",
            args,
            read_only=[
                instance_key_b64(SOROTASK_ID),
                instance_key_b64(TARGET_PANIC_ID),
                sc.task_ledger_key_b64(SOROTASK_ID, first),
            ],
        )
        result = send_and_wait(soroban, _with_source_auth(tx, keeper))
        assert result.status == GetTransactionStatus.FAILED
        assert devnet.executions([first])[-1]["effect"] == "failed"
        assert _task(soroban, first)[0].last_run == 0

    def test_missing_task_panics(self, devnet: DevnetProcess, soroban: SorobanServer) -> None:
        keeper = funded_keypair(devnet)
        tx = invoke_tx(soroban, devnet, keeper, "execute", execute_args(keeper.public_key, 10**9))
        sim = soroban.simulate_transaction(tx)
        assert sim.error is not None and "Task not found" in sim.error

    def test_footprint_too_small_for_a_due_task_fails_on_chain(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        """A keeper that simulated while the task was not due has a read-only footprint;
        if the task is due when the transaction runs, the write falls outside it."""
        keeper = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1)
        tx = manual_tx(
            soroban,
            devnet,
            keeper,
            "execute",
            execute_args(keeper.public_key, first),
            read_only=[
                instance_key_b64(SOROTASK_ID),
                instance_key_b64(TARGET_OK_ID),
                sc.task_ledger_key_b64(SOROTASK_ID, first),
            ],
        )
        result = send_and_wait(soroban, _with_source_auth(tx, keeper))
        assert result.status == GetTransactionStatus.FAILED
        assert _task(soroban, first)[0].last_run == 0


class TestRegisterAndGas:
    def _config(self, creator: str, interval: int = 30) -> sx.SCVal:
        return sc.encode_task_config(
            sc.TaskConfig(
                creator=creator,
                target=TARGET_OK_ID,
                function="ping",
                args=[scval.to_uint64(1)],
                resolver=RESOLVER_TRUE_ID,
                interval=interval,
                gas_balance=10,
            )
        )

    def test_register_stores_task_increments_counter_and_emits_event(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        creator = funded_keypair(devnet)
        before = soroban.get_latest_ledger().sequence
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, creator, "register", [self._config(creator.public_key)])
        )
        tx.sign(creator)
        result = send_and_wait(soroban, tx)
        assert result.status == GetTransactionStatus.SUCCESS
        task_id = scval.from_uint64(
            sx.TransactionMeta.from_xdr(result.result_meta_xdr).v4.soroban_meta.return_value
        )
        cfg, _ = _task(soroban, task_id)
        assert (cfg.creator, cfg.function, cfg.interval) == (creator.public_key, "ping", 30)
        counter = soroban.get_ledger_entries([sc.counter_ledger_key(SOROTASK_ID)])
        value = sx.LedgerEntryData.from_xdr(counter.entries[0].xdr).contract_data.val
        assert scval.from_uint64(value) >= task_id
        events = soroban.get_events(
            start_ledger=before,
            filters=[
                {
                    "type": "contract",
                    "contractIds": [SOROTASK_ID],
                    "topics": [[scval.to_symbol("TaskRegistered").to_xdr(), "*"]],
                }
            ],
        )
        ids = [scval.from_uint64(sx.SCVal.from_xdr(e.topic[1])) for e in events.events]
        assert task_id in ids

    def test_register_with_zero_interval_is_contract_error_1(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        creator = funded_keypair(devnet)
        tx = invoke_tx(
            soroban, devnet, creator, "register", [self._config(creator.public_key, interval=0)]
        )
        sim = soroban.simulate_transaction(tx)
        assert sim.error is not None and sim.error.startswith("HostError: Error(Contract, #1)")

    def test_withdraw_more_than_balance_is_error_3_and_get_token_needs_init(
        self, devnet: DevnetProcess, soroban: SorobanServer
    ) -> None:
        creator = funded_keypair(devnet)
        first, _ = devnet.seed_tasks(count=1, creator=creator.public_key, gas_balance=5)
        sim = soroban.simulate_transaction(invoke_tx(soroban, devnet, creator, "get_token", []))
        # lib.rs: get_token panics "Not initialized" (the contract never raises Error 4)
        assert sim.error is not None
        assert sim.error.startswith("HostError: Error(WasmVm, InvalidAction)")
        assert "Not initialized" in sim.error
        token = Keypair.random().public_key
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, creator, "init", [scval.to_address(token)])
        )
        tx.sign(creator)
        init = send_and_wait(soroban, tx)
        if init.status != GetTransactionStatus.SUCCESS:  # already initialised by another test
            assert init.status == GetTransactionStatus.FAILED
        sim = soroban.simulate_transaction(invoke_tx(soroban, devnet, creator, "get_token", []))
        assert sim.error is None
        args = [scval.to_uint64(first), scval.to_int128(6)]
        sim = soroban.simulate_transaction(
            invoke_tx(soroban, devnet, creator, "withdraw_gas", args)
        )
        assert sim.error is not None and "Error(Contract, #3)" in sim.error
        tx = soroban.prepare_transaction(
            invoke_tx(soroban, devnet, creator, "withdraw_gas", [args[0], scval.to_int128(5)])
        )
        tx.sign(creator)
        assert send_and_wait(soroban, tx).status == GetTransactionStatus.SUCCESS
        assert _task(soroban, first)[0].gas_balance == 0


def _with_source_auth(tx, keeper: Keypair):
    """Attach the SOURCE_ACCOUNT auth entry for execute(keeper, id) and re-sign."""
    op = tx.transaction.operations[0]
    call = op.host_function.invoke_contract
    op.auth = [
        sx.SorobanAuthorizationEntry(
            credentials=sx.SorobanCredentials(
                type=sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
            ),
            root_invocation=sx.SorobanAuthorizedInvocation(
                function=sx.SorobanAuthorizedFunction(
                    type=sx.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
                    contract_fn=call,
                ),
                sub_invocations=[],
            ),
        )
    ]
    tx.signatures = []
    tx.sign(keeper)
    return tx
