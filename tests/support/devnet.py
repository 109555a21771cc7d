"""Shared helpers for tests on a devnet: how the ``devnet`` fixture starts one, SDK transaction
building and bounded waits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from stellar_sdk import Keypair, SorobanDataBuilder, SorobanServer, TransactionBuilder, scval
from stellar_sdk import xdr as sx
from stellar_sdk.soroban_rpc import GetTransactionResponse, GetTransactionStatus
from stellar_sdk.transaction_envelope import TransactionEnvelope

from devnet.process import DevnetProcess

CLOSE_EVERY = 0.25


@dataclass(frozen=True, slots=True)
class DevnetOptions:
    """How the ``devnet`` fixture starts its devnet process."""

    tasks: int = 0
    close_every: float = CLOSE_EVERY
    log_level: str = "WARNING"
    log_path: str | None = None
    #: one process for every module asking for the same options (until the session ends);
    #: for read-mostly tests that seed their own tasks
    shared: bool = False
    #: ports serving the one chain (``--replicas``)
    replicas: int = 1
    #: more ``sorotask devnet`` flags, e.g. ("--retention-ledgers", "10")
    extra_args: tuple[str, ...] = ()

    def start(self) -> DevnetProcess:
        return DevnetProcess(
            tasks=self.tasks,
            close_every=self.close_every,
            log_level=self.log_level,
            log_path=self.log_path,
            replicas=self.replicas,
            extra_args=self.extra_args,
        )


def funded_keypair(dn: DevnetProcess) -> Keypair:
    kp = Keypair.random()
    dn.friendbot(kp.public_key)
    return kp


def invoke_tx(
    srv: SorobanServer,
    dn: DevnetProcess,
    source: Keypair | str,
    function: str,
    args: list[sx.SCVal],
    *,
    timeout: int = 300,
) -> TransactionEnvelope:
    """An unprepared invoke transaction from ``source`` (loads the account's sequence)."""
    address = source if isinstance(source, str) else source.public_key
    account = srv.load_account(address)
    # time bounds from the ledger clock, which runs ahead of the wall clock on a fast devnet
    close_time = srv.get_latest_ledger().close_time
    return (
        TransactionBuilder(account, dn.info.network_passphrase, base_fee=100)
        .append_invoke_contract_function_op(dn.info.contract_id, function, args)
        .add_time_bounds(0, close_time + timeout)
        .build()
    )


def execute_args(keeper: str, task_id: int) -> list[sx.SCVal]:
    return [scval.to_address(keeper), scval.to_uint64(task_id)]


def wait_for_tx(srv: SorobanServer, tx_hash: str, timeout: float = 10.0) -> GetTransactionResponse:
    """Poll getTransaction until it is found or ``timeout`` passes (bounded)."""
    deadline = time.monotonic() + timeout
    resp = srv.get_transaction(tx_hash)
    while resp.status == GetTransactionStatus.NOT_FOUND and time.monotonic() < deadline:
        time.sleep(0.05)
        resp = srv.get_transaction(tx_hash)
    return resp


def wait_ledgers(dn: DevnetProcess, count: int, timeout: float = 10.0) -> int:
    """Wait until ``count`` more ledgers have closed; returns the new latest sequence."""
    start = dn.rpc("getLatestLedger")["sequence"]
    deadline = time.monotonic() + timeout
    seq = start
    while seq < start + count and time.monotonic() < deadline:
        time.sleep(0.05)
        seq = dn.rpc("getLatestLedger")["sequence"]
    assert seq >= start + count, f"ledger did not advance {count} in {timeout} s"
    return seq


def send_and_wait(
    srv: SorobanServer, tx: TransactionEnvelope, timeout: float = 10.0
) -> GetTransactionResponse:
    sent = srv.send_transaction(tx)
    assert sent.status.value == "PENDING", (sent.status, sent.error_result_xdr)
    return wait_for_tx(srv, sent.hash, timeout)


def result_code(resp: Any) -> sx.TransactionResultCode:
    xdr = resp.error_result_xdr if hasattr(resp, "error_result_xdr") else resp.result_xdr
    return sx.TransactionResult.from_xdr(xdr).result.code


def latest_close_time(dn: DevnetProcess) -> int:
    return int(dn.rpc("getLatestLedger")["closeTime"])


def manual_tx(
    srv: SorobanServer,
    dn: DevnetProcess,
    source: Keypair,
    function: str,
    args: list[sx.SCVal],
    *,
    read_only: list[str],
    read_write: list[str] = (),  # type: ignore[assignment]
    resource_fee: int = 1_000_000,
    timeout: int = 300,
) -> TransactionEnvelope:
    """A signed invoke transaction with a hand-made footprint: sends calls that simulation
    rejects, exactly as a keeper with stale state would."""
    data = (
        SorobanDataBuilder()
        .set_read_only([sx.LedgerKey.from_xdr(k) for k in read_only])
        .set_read_write([sx.LedgerKey.from_xdr(k) for k in read_write])
        .set_resources(5_000_000, 10_000, 10_000)
        .set_resource_fee(resource_fee)
        .build()
    )
    account = srv.load_account(source.public_key)
    close_time = srv.get_latest_ledger().close_time
    tx = (
        TransactionBuilder(account, dn.info.network_passphrase, base_fee=100)
        .append_invoke_contract_function_op(dn.info.contract_id, function, args)
        .set_soroban_data(data)
        .add_time_bounds(0, close_time + timeout)
        .build()
    )
    tx.sign(source)
    return tx
