"""The devnet's state machine: ledger, accounts, transaction queue and history, executions.

Everything here runs on the server's event loop thread; no locks are needed.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from stellar_sdk import Keypair, Network, parse_transaction_envelope_from_xdr

from devnet import admission
from devnet.accounts import Accounts
from devnet.apply import Execution, TxRecord, apply_transaction, payer_if_valid
from devnet.events import EventStore
from devnet.faults import Faults
from devnet.ledger import RETENTION_LEDGERS, LedgerState
from devnet.overload import Limiter
from devnet.sorotask_contract import SOROTASK_ID, install_contracts
from devnet.surge import Surge, inclusion_bid
from devnet.transactions import (
    ParsedTx,
    TryAgainLater,
    TxRejected,
    error_result_b64,
    parse_envelope,
)

NETWORK_PASSPHRASE = "SoroTask Devnet ; September 2025"  # noqa: S105 - not a secret
#: keeps at most this many transaction records (oldest dropped first)
MAX_TX_RECORDS = 250_000
#: the account that creates seeded tasks (deterministic, funded at start)
CREATOR_KEYPAIR = Keypair.from_raw_ed25519_seed(hashlib.sha256(b"sorotask-devnet:creator").digest())


@dataclass
class Stats:
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_out: int = 0
    requests: int = 0
    tx_applied: int = 0
    tx_failed: int = 0
    #: submissions refused (sendTransaction ERROR) of transactions that had not applied
    tx_rejected: int = 0
    #: a copy of an applied transaction sent again and refused as core does (txBAD_SEQ, no fee):
    #: what a keeper's resend after a lost answer can meet; kept apart from ``tx_rejected``
    tx_refused_copies: int = 0
    tx_dropped: int = 0
    fees: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def fee(self, account: str, amount: int) -> None:
        self.fees[account] += amount

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "requests": self.requests,
            "bytes_out": self.bytes_out,
            "tx_applied": self.tx_applied,
            "tx_failed": self.tx_failed,
            "tx_rejected": self.tx_rejected,
            "tx_refused_copies": self.tx_refused_copies,
            "tx_dropped": self.tx_dropped,
            "fees": dict(self.fees),
            "fees_total": sum(self.fees.values()),
        }


class Devnet:
    def __init__(
        self,
        *,
        ledger_seconds: int = 5,
        passphrase: str = NETWORK_PASSPHRASE,
        retention: int = RETENTION_LEDGERS,
        max_lag: int = 0,
        close_every: float | None = None,
        ledger_capacity: int | None = None,
    ) -> None:
        """``retention``: ledgers of history (transactions, events, headers) kept;
        ``max_lag``: how many ledgers back a replica can be made to answer from."""
        self.passphrase = passphrase
        self.network_id = Network(passphrase).network_id()
        self.contract_id = SOROTASK_ID
        self.ledger = LedgerState(ledger_seconds, retention=retention, max_lag=max_lag)
        self.accounts = Accounts(self.ledger)
        self.pending: OrderedDict[str, ParsedTx] = OrderedDict()
        self.pending_by_source: dict[str, str] = {}
        self.txs: OrderedDict[str, TxRecord] = OrderedDict()
        self.executions: list[Execution] = []
        self.executions_by_task: dict[int, list[int]] = defaultdict(list)
        self.events = EventStore()
        self.stats = Stats()
        self.faults = Faults()
        self.limits = Limiter()
        self.clock = admission.LedgerClock(ledger_seconds, close_every)
        self.surge = Surge(ledger_capacity)
        install_contracts(self.ledger)
        self.accounts.create(CREATOR_KEYPAIR.public_key)

    # transactions --------------------------------------------------------------------------
    def submit(self, envelope_b64: str, faults: Faults | None = None) -> dict[str, Any]:
        """sendTransaction (``faults``: the answering replica's, default the node's). Raises
        ValueError("invalid_xdr") for undecodable envelopes."""
        faults = self.faults if faults is None else faults
        base = {
            "latestLedger": self.ledger.sequence,
            "latestLedgerCloseTime": str(self.ledger.close_time),
        }
        try:
            ptx = parse_envelope(envelope_b64, self.network_id)
        except TxRejected as rej:
            self.stats.tx_rejected += 1
            return self._error(envelope_b64, rej, base)
        try:
            plan = admission.admit(self, ptx)
        except admission.Duplicate:
            return {"status": "DUPLICATE", "hash": ptx.hash_hex, **base}
        except TryAgainLater:
            return {"status": "TRY_AGAIN_LATER", "hash": ptx.hash_hex, **base}
        except TxRejected as rej:
            if ptx.hash_hex in self.txs:
                self.stats.tx_refused_copies += 1
            else:
                self.stats.tx_rejected += 1
            return {
                "status": "ERROR",
                "hash": ptx.hash_hex,
                "errorResultXdr": error_result_b64(rej.code, rej.fee_charged),
                **base,
            }
        if faults.hit("try_again_later_rate", "sendTransaction"):
            return {"status": "TRY_AGAIN_LATER", "hash": ptx.hash_hex, **base}
        if faults.hit("never_apply_rate", "sendTransaction"):
            self.stats.tx_dropped += 1
            return {"status": "PENDING", "hash": ptx.hash_hex, **base}
        if plan.evict == "load":
            self.surge.load_queued -= 1
            self.surge.evicted(self.surge.load_fee)
        elif plan.evict is not None:
            evicted = self._drop_pending(plan.evict)
            self.surge.evicted(inclusion_bid(evicted))
        self.pending[ptx.hash_hex] = ptx
        self.pending_by_source[ptx.source] = ptx.hash_hex
        return {"status": "PENDING", "hash": ptx.hash_hex, **base}

    def _drop_pending(self, tx_hash: str) -> ParsedTx:
        """Remove a queued transaction (it stays NOT_FOUND) and ban its hash."""
        ptx = self.pending.pop(tx_hash)
        if self.pending_by_source.get(ptx.source) == tx_hash:
            del self.pending_by_source[ptx.source]
        self.surge.forget(tx_hash)
        self.surge.ban(tx_hash)
        self.stats.tx_dropped += 1
        return ptx

    def _error(self, envelope_b64: str, rej: TxRejected, base: dict[str, Any]) -> dict[str, Any]:
        try:  # fee-bump and v0 envelopes have their own hash rules: let the SDK apply them
            digest = parse_transaction_envelope_from_xdr(envelope_b64, self.passphrase).hash_hex()
        except Exception:
            digest = hashlib.sha256(base64.b64decode(envelope_b64)).hexdigest()
        return {
            "status": "ERROR",
            "hash": digest,
            "errorResultXdr": error_result_b64(rej.code, rej.fee_charged),
            **base,
        }

    def close_ledger(self) -> int:
        """Close one ledger: apply what surge pricing lets in, in submission order."""
        seq, close_time = self.ledger.next_ledger()
        valid = []
        for ptx in list(self.pending.values()):
            if payer_if_valid(self.accounts, ptx, seq, close_time) is not None:
                valid.append(ptx)
            else:  # core drops (and bans) what became invalid
                self._drop_pending(ptx.hash_hex)
        included, inclusion_fee, load_in = self.surge.select(valid)
        chosen = {p.hash_hex for p in included}
        left = [p for p in valid if p.hash_hex not in chosen]
        for ptx in included:
            del self.pending[ptx.hash_hex]
            if self.pending_by_source.get(ptx.source) == ptx.hash_hex:
                del self.pending_by_source[ptx.source]
            self.surge.forget(ptx.hash_hex)
        order = 0
        charged: Counter[int] = Counter({inclusion_fee: load_in} if load_in else {})
        for ptx in included:
            try:
                record = apply_transaction(self, ptx, seq, close_time, order + 1, inclusion_fee)
            except Exception:
                logger.exception("applying {} failed", ptx.hash_hex)
                record = None
            if record is None:
                self.stats.tx_dropped += 1
                continue
            order += 1
            charged[min(inclusion_fee, inclusion_bid(ptx))] += 1
            self.txs[record.hash_hex] = record
        for ptx in self.surge.closed(charged, left):
            self._drop_pending(ptx.hash_hex)
        while len(self.txs) > MAX_TX_RECORDS:
            self.txs.popitem(last=False)
        self.ledger.close()
        self.clock.closed()
        oldest = self.ledger.oldest.sequence
        self.events.prune(oldest)
        while self.txs:
            first = next(iter(self.txs.values()))
            if first.ledger >= oldest:
                break
            self.txs.popitem(last=False)
        return order

    def record_execution(self, execution: Execution) -> None:
        if execution.task_id is not None:
            self.executions_by_task[execution.task_id].append(len(self.executions))
        self.executions.append(execution)

    # views ---------------------------------------------------------------------------------
    def ledger_range(self) -> dict[str, Any]:
        oldest = self.ledger.oldest
        return {
            "latestLedger": self.ledger.sequence,
            "latestLedgerCloseTime": str(self.ledger.close_time),
            "oldestLedger": oldest.sequence,
            "oldestLedgerCloseTime": str(oldest.close_time),
        }
