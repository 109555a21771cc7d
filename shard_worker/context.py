"""What the keeper's roles share: who the keeper is, what it counts, how it reports.

* :class:`Identity`: the keeper's signer and the byte forms of its address, the contract's
  address, task ledger keys and the network id (fixed once the secrets are loaded);
* :class:`Tally`: totals over the keeper's life (the ``goodbye`` message) and the execution
  outcomes since the last cycle report (:class:`Counters`, moved into ``CycleStats``);
* :class:`Events`: the reporter, wrapped so that a failing reporter never breaks the keeper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from shard_worker.errors import FatalConfigError
from shard_worker.lateness import Lateness
from shard_worker.spec import Reporter, WorkerSpec
from sorotask_core import contract
from sorotask_core.signing import Signer, network_id

__all__ = ["TOTALS", "Counters", "Events", "Identity", "Tally", "check_contract_id"]

#: the keeper's life totals, reported in ``goodbye`` (with ``in_flight_left``,
#: ``journal_left``, ``rpc_calls`` and ``rpc_errors``)
TOTALS = (
    "cycles",
    "executed",
    "failed",
    "not_sent_by_simulation",
    "not_sent_stale",
    "tx_errors",
    "fees_spent",
    "read_errors",
    "cycle_errors",
    "dropped_unsent_at_stop",
    "sent_unresolved_at_stop",
    "stale_ledger_answers",
    "bad_simulations",
    "send_status_unknown",
    "fee_skipped",
    "escalations",
    "rejected_too_late",
    "rejected_insufficient_fee",
    "rejected_bad_seq",
    "failed_rpc_unavailable",
)


@dataclass(slots=True)
class Counters:
    """Execution outcomes finalized since the last cycle report."""

    executed: int = 0
    failed: int = 0
    not_sent: int = 0
    tx_errors: int = 0
    fees: int = 0
    exec_times: list[float] = field(default_factory=list)
    #: executions not sent for their price, by reason (``shard_worker.feepolicy`` skips)
    fee_skips: dict[str, int] = field(default_factory=dict)
    #: resends with a higher inclusion fee
    escalations: int = 0
    #: the fee charged by each applied transaction (the fee-charged histogram)
    fees_charged: list[int] = field(default_factory=list)
    #: answers to sendTransaction by name (``send_results``)
    sends: dict[str, int] = field(default_factory=dict)
    #: the ``execution_delay_ledgers`` histogram of the executions since
    delays: dict[str, Any] = field(default_factory=dict)
    #: a dry run: tasks it would have executed (first time each), and their fees
    would_execute: int = 0
    dry_run_fees: int = 0


class Tally:
    """Totals over the keeper's life, the execution outcomes of the current cycle, and how
    late the keeper is (:class:`~shard_worker.lateness.Lateness`)."""

    __slots__ = ("cycle", "lateness", "totals")

    def __init__(self) -> None:
        self.totals: dict[str, int] = dict.fromkeys(TOTALS, 0)
        self.cycle = Counters()
        self.lateness = Lateness()

    def take_cycle(self) -> Counters:
        """The outcomes since the last call; counting starts again from zero."""
        taken, self.cycle = self.cycle, Counters()
        return taken


class Events:
    """The keeper's reporter; a reporter that raises is logged, never propagated."""

    __slots__ = ("log", "reporter")

    def __init__(self, reporter: Reporter, log: Any = logger) -> None:
        self.reporter = reporter
        self.log = log

    def safe(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a reporter must not break the keeper
            self.log.warning("reporter {} failed: {}", getattr(fn, "__name__", fn), exc)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.safe(self.reporter.event, kind, data)


def check_contract_id(spec: WorkerSpec) -> None:
    """Raise a :class:`FatalConfigError` unless ``spec.contract_id`` is a contract address."""
    if not contract.is_valid_contract_id(spec.contract_id):
        raise FatalConfigError(
            f"contract id {spec.contract_id!r} is not a valid contract address (C...)"
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signs, for which contract, on which network, in the byte forms transactions use."""

    keeper: Signer
    #: the keeper's ``SCAddress`` XDR (what a whitelist and an auth entry hold)
    keeper_address: bytes
    #: the contract's ``SCAddress`` XDR
    contract_address: bytes
    task_keys: contract.TaskKeys
    network_id: bytes

    @classmethod
    def of(cls, spec: WorkerSpec, keeper: Signer) -> Identity:
        return cls(
            keeper=keeper,
            keeper_address=contract.sc_address_bytes(keeper.public_key),
            contract_address=contract.sc_address_bytes(spec.contract_id),
            task_keys=contract.TaskKeys(spec.contract_id),
            network_id=network_id(spec.network_passphrase),
        )
