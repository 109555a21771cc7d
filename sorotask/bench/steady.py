"""The per-ledger steady state of a bench run and its "changing" load.

* :class:`ChangeLoad`: a thread that, each new ledger, has others change ``change_fraction`` of
  the tasks with real contract calls (:class:`sorotask.bench.changes.Changer`): a tenth deposits
  into tasks that are due but without gas (our keeper should then execute them: the
  change-to-action latency), a quarter other keepers' executions of recurring due tasks, the
  rest deposits into random tasks, plus one withdrawal and one registration a ledger (of a
  task due at once, with gas: our keeper should execute it);
* :func:`totals`: every shard's RPC requests and answer bytes from ``/status`` totals, so the
  requests and bytes per ledger cover every cycle (not only the ones a status poll caught);
* :func:`change_latency`: ledgers from each deposit into a task without gas, and from each
  registration, to our keeper's execution of it (the change's ledger from getEvents, the
  execution from the devnet's record);
* :func:`workers_cpu_s`: the CPU time the supervisor's worker processes have used so far.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx

from shard_worker.eventwire import decode_u64_topic, symbol_topic_b64

__all__ = ["ChangeLoad", "change_latency", "per_ledger", "totals", "workers_cpu_s"]


#: the RPC methods that read task state (getLatestLedger is also the executor's time bound for
#: each transaction, so it is reported apart, in ``by_method_per_ledger``)
READ_METHODS = frozenset({"getEvents", "getLedgerEntries"})
#: ``simulate`` mode reads each task with a simulation of ``get_task``: its reads count every
#: simulateTransaction (the executions' own, about one an execution, included)
SIMULATE_READ_METHODS = READ_METHODS | {"simulateTransaction"}


def totals(doc: dict[str, Any] | None, read_mode: str = "events") -> dict[str, int]:
    """Requests and answer bytes every shard has sent and received so far: all of them, and
    the reads alone (by ``read_mode``)."""
    reads = SIMULATE_READ_METHODS if read_mode == "simulate" else READ_METHODS
    out: dict[str, Any] = {"requests": 0, "bytes": 0, "read_requests": 0, "read_bytes": 0}
    by_method: dict[str, list[int]] = {}
    for s in (doc or {}).get("shards", []):
        t = s.get("totals") or {}
        for method, n in (t.get("rpc_calls") or {}).items():
            out["requests"] += n
            by_method.setdefault(method, [0, 0])[0] += n
            if method in reads:
                out["read_requests"] += n
        for method, n in (t.get("rpc_bytes") or {}).items():
            out["bytes"] += n
            by_method.setdefault(method, [0, 0])[1] += n
            if method in reads:
                out["read_bytes"] += n
    out["by_method"] = by_method
    return out


def workers_cpu_s(supervisor_pid: int) -> float:
    """User + system CPU seconds of every process under the supervisor (its workers)."""
    import psutil

    total = 0.0
    for child in psutil.Process(supervisor_pid).children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        total += t.user + t.system
    return total


def per_ledger(before: dict[str, Any], after: dict[str, Any], ledgers: int) -> dict[str, Any]:
    """Requests and bytes a ledger between two :func:`totals` (all, reads, and by method)."""
    n = max(1, ledgers)
    out: dict[str, Any] = {"ledgers": n}
    for key in ("requests", "bytes", "read_requests", "read_bytes"):
        out[f"{key}_per_ledger"] = round((after[key] - before[key]) / n, 2)
    out["by_method_per_ledger"] = {
        m: {
            "requests": round((v[0] - before["by_method"].get(m, [0, 0])[0]) / n, 2),
            "bytes": round((v[1] - before["by_method"].get(m, [0, 0])[1]) / n),
        }
        for m, v in sorted(after["by_method"].items())
    }
    return out


class ChangeLoad:
    """Changes by others, each ledger, until :meth:`stop` (see the module docstring)."""

    def __init__(
        self,
        dn: Any,
        changer: Any,
        *,
        per_ledger: int,
        no_gas_ids: list[int],
        due_ids: list[int],
        all_ids: tuple[int, int],
        seed: int = 12,
    ) -> None:
        self.dn = dn
        self.changer = changer
        self.per_ledger = max(1, per_ledger)
        #: shared with later runs: each task is deposited into once
        self.no_gas = no_gas_ids
        self.due = list(due_ids)
        self.first, self.last = all_ids
        self.rng = random.Random(seed)
        self.ledgers = 0
        self.sent = 0
        self.deposited_no_gas: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-load", daemon=True)

    def start(self) -> ChangeLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def plan(self) -> list[tuple[str, int]]:
        n = self.per_ledger
        calls: list[tuple[str, int]] = [("withdraw", self.rng.randint(self.first, self.last))]
        calls.append(("register", 0))
        for _ in range(max(1, n // 10)):
            if self.no_gas:
                task_id = self.no_gas.pop()
                self.deposited_no_gas.append(task_id)
                calls.append(("deposit", task_id))
        for _ in range(max(0, n // 4)):
            if self.due:
                calls.append(("execute", self.rng.choice(self.due)))
        while len(calls) < n:
            calls.append(("deposit", self.rng.randint(self.first, self.last)))
        return calls

    def _run(self) -> None:
        seen = int(self.dn.rpc("getLatestLedger")["sequence"])
        while not self._stop.is_set():
            seq = int(self.dn.rpc("getLatestLedger")["sequence"])
            if seq <= seen:
                time.sleep(0.05)
                continue
            seen = seq
            self.ledgers += 1
            self.sent += self.changer.send_many(self.plan())


def _event_ledgers(dn: Any, start_ledger: int, symbol: str = "GasDeposited") -> dict[int, int]:
    """Task id -> ledger of its first ``symbol`` event since ``start_ledger``."""
    out: dict[int, int] = {}
    params: dict[str, Any] = {
        "startLedger": start_ledger,
        "filters": [
            {
                "type": "contract",
                "contractIds": [dn.info.contract_id],
                "topics": [[symbol_topic_b64(symbol), "*"]],
            }
        ],
        "pagination": {"limit": 1000},
    }
    with httpx.Client(timeout=30) as client:
        for _ in range(1000):
            body = {"jsonrpc": "2.0", "id": 1, "method": "getEvents", "params": params}
            answer = client.post(dn.info.rpc_url, json=body).json()
            if "result" not in answer:
                raise RuntimeError(f"getEvents for {symbol}: {answer.get('error')}")
            res = answer["result"]
            for ev in res["events"]:
                task_id = decode_u64_topic(ev["topic"][1])
                out.setdefault(task_id, int(ev["ledger"]))
            if len(res["events"]) < 1000:
                break
            params = {
                "filters": params["filters"],
                "pagination": {"limit": 1000, "cursor": res["cursor"]},
            }
    return out


def change_latency(
    dn: Any, deposited: list[int], start_ledger: int, others: set[str], end_ledger: int
) -> dict[str, Any]:
    """Ledgers from a change to our keeper (any keeper not in ``others``) acting on it: a
    deposit into a task without gas (the figures at the top level, as before) and, under
    ``registered``, a registration of a task due at once (with gas), each to our first
    execution of the task. Changes after ``end_ledger`` (the measured window's end) are left
    out: the keeper was stopped before it could act on them."""
    out = _latency(dn, deposited, _event_ledgers(dn, start_ledger), others, end_ledger)
    registered = _event_ledgers(dn, start_ledger, "TaskRegistered")
    out["registered"] = _latency(dn, list(registered), registered, others, end_ledger)
    return out


def _latency(
    dn: Any, ids: list[int], at: dict[int, int], others: set[str], end_ledger: int
) -> dict[str, Any]:
    ids = [t for t in ids if t in at and at[t] < end_ledger]
    if not ids:
        return {"samples": 0, "p50": None, "p95": None, "max": None, "never": 0}
    first_exec: dict[int, int] = {}
    for e in sorted(dn.executions(ids), key=lambda e: e["ledger"]):
        if e["effect"] == "executed" and e.get("keeper") not in others:
            first_exec.setdefault(e["task_id"], e["ledger"])
    lat = sorted(first_exec[t] - at[t] for t in ids if t in first_exec)
    never = sum(1 for t in ids if t not in first_exec)

    def pct(q: float) -> int | None:
        return lat[min(len(lat) - 1, max(0, int(q * len(lat) + 0.999) - 1))] if lat else None

    return {
        "samples": len(lat),
        "p50": pct(0.5),
        "p95": pct(0.95),
        "max": lat[-1] if lat else None,
        "never": never,
    }
