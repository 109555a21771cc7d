"""The seed design's polling cycle, reproduced faithfully as the benchmark's baseline.

KEEPER_ARCHITECTURE.md: one process; every cycle ``getLatestLedger``, then for every task id a
``simulateTransaction`` of ``get_task(id)`` with at most ``MAX_CONCURRENT_READS`` (10) in flight,
each result decoded into a full ``TaskConfig`` (stellar-sdk's generic ``scval.to_native``, as
the seed's ``scValToNative``) and checked for ``gas_balance > 0`` and
``timestamp >= last_run + interval``. Nothing here is tuned: it is the yardstick that
``sorotask bench`` measures our design against, side by side on the same devnet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from stellar_sdk import Account, Keypair, TransactionBuilder, scval
from stellar_sdk import xdr as sx


@dataclass(slots=True)
class SeedCycleResult:
    checked: int
    due: int
    read_errors: int
    rpc_calls: int
    duration_s: float
    cpu_s: float


class SeedKeeper:
    """Polls like the seed: one simulated ``get_task`` per task, a few reads at once."""

    def __init__(
        self,
        rpc_url: str,
        network_passphrase: str,
        contract_id: str,
        source: Keypair | None = None,
        max_concurrent_reads: int = 10,
        timeout_s: float = 30.0,
    ) -> None:
        self.rpc_url = rpc_url
        self.network_passphrase = network_passphrase
        self.contract_id = contract_id
        self.source = source or Keypair.random()
        self.max_concurrent_reads = max_concurrent_reads
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._next_id = 0

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, params: dict) -> dict:
        self._next_id += 1
        resp = await self._client.post(
            self.rpc_url,
            json={"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params},
        )
        resp.raise_for_status()
        body = resp.json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    def _get_task_envelope(self, task_id: int) -> str:
        # Simulation needs no real sequence number; the seed built one from its own account.
        account = Account(self.source.public_key, 0)
        tx = (
            TransactionBuilder(account, self.network_passphrase, base_fee=100)
            .append_invoke_contract_function_op(
                self.contract_id, "get_task", [scval.to_uint64(task_id)]
            )
            .set_timeout(30)
            .build()
        )
        return tx.to_xdr()

    async def _read_task(self, task_id: int, now: int) -> bool | None:
        """True if due, False if not, None if the task does not exist."""
        result = await self._call(
            "simulateTransaction", {"transaction": self._get_task_envelope(task_id)}
        )
        if result.get("error"):
            raise RuntimeError(result["error"])
        task = scval.to_native(sx.SCVal.from_xdr(result["results"][0]["xdr"]))
        if task is None:
            return None
        if not isinstance(task, dict):
            raise ValueError("get_task did not answer a TaskConfig map")
        return task["gas_balance"] > 0 and now >= task["last_run"] + task["interval"]

    async def poll_cycle(self, task_ids: Sequence[int]) -> SeedCycleResult:
        t0, c0 = time.perf_counter(), time.process_time()
        latest = await self._call("getLatestLedger", {})
        calls = 1
        now = int(latest["closeTime"])
        sem = asyncio.Semaphore(self.max_concurrent_reads)
        checked = due = errors = 0

        async def one(task_id: int) -> None:
            nonlocal checked, due, errors, calls
            async with sem:
                calls += 1
                try:
                    is_due = await self._read_task(task_id, now)
                except (httpx.HTTPError, RuntimeError, ValueError, KeyError):
                    errors += 1
                    return
                if is_due is None:
                    return
                checked += 1
                due += int(is_due)

        await asyncio.gather(*(one(t) for t in task_ids))
        return SeedCycleResult(
            checked=checked,
            due=due,
            read_errors=errors,
            rpc_calls=calls,
            duration_s=time.perf_counter() - t0,
            cpu_s=time.process_time() - c0,
        )
