"""Changes to tasks made by others, as real contract calls on the devnet: registrations,
gas deposits, gas withdrawals and another keeper's executions (the bench's "changing" load and
the event-read tests).

Each call is simulated (``prepare_transaction``), signed and sent; every source account has
at most one transaction per ledger (the devnet, like stellar-core, queues one per account), so
a :class:`Changer` has a pool of funded accounts and hands them out round-robin. Withdrawals
are signed by the devnet's seeding creator (``devnet.node.CREATOR_KEYPAIR``, the creator of
every ``devnet_seedTasks`` task), so at most one a ledger.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stellar_sdk import Keypair, SorobanServer, TransactionBuilder, scval
from stellar_sdk import xdr as sx

from devnet.node import CREATOR_KEYPAIR
from devnet.sorotask_contract import TARGET_OK_ID
from sorotask_core.taskconfig import TaskConfig, encode_task_config

__all__ = ["Changer"]


class Changer:
    """Sends SoroTask contract calls as others would (see the module docstring)."""

    def __init__(self, dn: Any, *, accounts: int = 8, threads: int = 8) -> None:
        self.dn = dn
        self.srv = SorobanServer(dn.info.rpc_url)
        self.passphrase = dn.info.network_passphrase
        self.contract_id = dn.info.contract_id
        self.pool = [Keypair.random() for _ in range(max(1, accounts))]
        dn.rpc("devnet_fund", {"addresses": [k.public_key for k in self.pool]})
        dn.rpc("devnet_fund", {"addresses": [CREATOR_KEYPAIR.public_key]})
        self._next = 0
        self._threads = ThreadPoolExecutor(max_workers=max(1, threads))
        #: transactions sent and applied successfully, by function
        self.sent: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.ensure_token()

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    # ------------------------------------------------------------------ one call

    def _tx(self, source: Keypair, function: str, args: list[sx.SCVal]) -> Any:
        account = self.srv.load_account(source.public_key)
        tx = (
            TransactionBuilder(account, self.passphrase, base_fee=100)
            .append_invoke_contract_function_op(self.contract_id, function, args)
            .add_time_bounds(0, 0)  # no upper bound: a fast devnet's clock runs ahead
            .build()
        )
        tx = self.srv.prepare_transaction(tx)
        tx.sign(source)
        return tx

    def call(self, source: Keypair, function: str, args: list[sx.SCVal]) -> str:
        """Send one call and wait until it is applied; returns its hash (raises when it is
        not applied successfully)."""
        sent = self.srv.send_transaction(self._tx(source, function, args))
        if sent.status.value != "PENDING":
            self.failed[function] = self.failed.get(function, 0) + 1
            raise RuntimeError(f"{function}: send {sent.status.value}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = self.srv.get_transaction(sent.hash)
            if got.status.value == "SUCCESS":
                self.sent[function] = self.sent.get(function, 0) + 1
                return sent.hash
            if got.status.value == "FAILED":
                break
            time.sleep(0.05)
        self.failed[function] = self.failed.get(function, 0) + 1
        raise RuntimeError(f"{function}: not applied")

    def _source(self) -> Keypair:
        kp = self.pool[self._next % len(self.pool)]
        self._next += 1
        return kp

    # ------------------------------------------------------------------ the calls

    def ensure_token(self) -> None:
        """``init`` the contract's gas token unless it is set (deposits need it)."""
        admin = self.pool[0]
        sim = self.srv.simulate_transaction(
            TransactionBuilder(
                self.srv.load_account(admin.public_key), self.passphrase, base_fee=100
            )
            .append_invoke_contract_function_op(self.contract_id, "get_token", [])
            .set_timeout(300)
            .build()
        )
        if sim.error:
            self.call(admin, "init", [scval.to_address(Keypair.random().public_key)])

    def register(self, *, interval: int = 10**12, source: Keypair | None = None) -> str:
        """Register a task (creator = the source) with no gas."""
        creator = source or self._source()
        cfg = TaskConfig(creator=creator.public_key, target=TARGET_OK_ID, function="run")
        cfg.interval = interval
        val = sx.SCVal.from_xdr_bytes(encode_task_config(cfg))
        return self.call(creator, "register", [val])

    def deposit(self, task_id: int, amount: int = 1, source: Keypair | None = None) -> str:
        src = source or self._source()
        args = [scval.to_uint64(task_id), scval.to_address(src.public_key), scval.to_int128(amount)]
        return self.call(src, "deposit_gas", args)

    def withdraw(self, task_id: int, amount: int = 1) -> str:
        """Withdraw from a ``devnet_seedTasks`` task (its creator signs)."""
        args = [scval.to_uint64(task_id), scval.to_int128(amount)]
        return self.call(CREATOR_KEYPAIR, "withdraw_gas", args)

    def execute(self, task_id: int, keeper: Keypair | None = None) -> str:
        """Execute a task as another keeper."""
        k = keeper or self._source()
        return self.call(k, "execute", [scval.to_address(k.public_key), scval.to_uint64(task_id)])

    def send(self, source: Keypair, function: str, args: list[sx.SCVal]) -> str | None:
        """Send one call without waiting for it; its hash, None when not accepted."""
        try:
            sent = self.srv.send_transaction(self._tx(source, function, args))
        except Exception:
            self.failed[function] = self.failed.get(function, 0) + 1
            return None
        if sent.status.value != "PENDING":
            self.failed[function] = self.failed.get(function, 0) + 1
            return None
        self.sent[function] = self.sent.get(function, 0) + 1
        return sent.hash

    def args_of(self, kind: str, task_id: int, source: Keypair) -> tuple[str, list[sx.SCVal]]:
        """The function and arguments of a change of ``kind`` from ``source``."""
        if kind == "deposit":
            addr = scval.to_address(source.public_key)
            return "deposit_gas", [scval.to_uint64(task_id), addr, scval.to_int128(1)]
        if kind == "withdraw":
            return "withdraw_gas", [scval.to_uint64(task_id), scval.to_int128(1)]
        if kind == "execute":
            addr = scval.to_address(source.public_key)
            return "execute", [addr, scval.to_uint64(task_id)]
        # due at once and with gas (last_run 0 + 10^9 s is long past), due again only in
        # 31 years: the keeper's first execution of it is the register's change-to-action
        cfg = TaskConfig(creator=source.public_key, target=TARGET_OK_ID, function="run")
        cfg.interval = 10**9
        cfg.gas_balance = 1
        return "register", [sx.SCVal.from_xdr_bytes(encode_task_config(cfg))]

    def send_many(self, calls: list[tuple[str, int]]) -> int:
        """Send ``(kind, task_id)`` calls concurrently without waiting for them to apply, each
        from its own pool account (withdrawals from the seeding creator, one a call of this);
        returns how many were accepted."""
        jobs = []
        withdrawn = False
        for kind, task_id in calls:
            if kind == "withdraw":
                if withdrawn:
                    continue
                withdrawn = True
                src = CREATOR_KEYPAIR
            else:
                src = self._source()
            fn, args = self.args_of(kind, task_id, src)
            jobs.append(self._threads.submit(self.send, src, fn, args))
        return sum(1 for j in jobs if j.result(timeout=120) is not None)

    # ------------------------------------------------------------------ many at once

    def many(self, calls: list[tuple[str, int]]) -> dict[str, int]:
        """Run ``(kind, task_id)`` calls concurrently (kind: deposit, withdraw, execute,
        register), each from its own pool account; returns the failures by kind."""
        jobs = []
        withdrawn = False
        for kind, task_id in calls:
            if kind == "withdraw":
                if withdrawn:  # one creator: one withdrawal a ledger
                    continue
                withdrawn = True
                jobs.append((kind, self._threads.submit(self.withdraw, task_id)))
            elif kind == "deposit":
                jobs.append((kind, self._threads.submit(self.deposit, task_id, 1, self._source())))
            elif kind == "execute":
                jobs.append((kind, self._threads.submit(self.execute, task_id, self._source())))
            else:
                jobs.append((kind, self._threads.submit(self.register, source=self._source())))
        failures: dict[str, int] = {}
        for kind, fut in jobs:
            try:
                fut.result(timeout=60)
            except Exception:
                failures[kind] = failures.get(kind, 0) + 1
        return failures
