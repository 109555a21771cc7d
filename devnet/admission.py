"""sendTransaction in stellar-core's order (herder/TransactionQueue::canAdd, then checkValid).

1. a banned hash (recently evicted, refused, dropped as invalid or left out too long):
   TRY_AGAIN_LATER;
2. a negative fee or inclusion fee: ERROR txMALFORMED;
3. a transaction of the same source account already pending: the same hash -> DUPLICATE, a lower
   sequence number -> ERROR txBAD_SEQ, anything else -> TRY_AGAIN_LATER;
4. the queue limiter (surge pricing, see devnet/surge.py): no room and too low a bid -> ERROR
   txINSUFFICIENT_FEE with ``feeCharged`` the fee that would have been let in (the hash is
   banned);
5. validity (TransactionFrame::commonValidPreSeqNum, then commonValid): the declared resource
   fee, time bounds, ledger bounds, the minimum inclusion fee (100), source account, sequence
   number, signatures, balance.

**Time bounds** are checked as core checks them at submission: ``minTime`` after the last close
time is txTOO_EARLY; ``maxTime`` below ``lastClose + 2 x ledger time + (now - lastClose)`` is
txTOO_LATE, so a transaction must stay valid for more than two ledgers from now. "now" is the
devnet's ledger clock: the last close time plus the real time since that close, scaled by
``ledger_seconds / close_every`` (on a devnet closing every 0.25 s with 5 s ledgers, one real
second is 20 ledger seconds).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from stellar_sdk import xdr as sx

from devnet.accounts import Accounts
from devnet.ledger import BASE_FEE, LedgerState
from devnet.surge import Admission, Surge
from devnet.transactions import (
    ParsedTx,
    TryAgainLater,
    TxRejected,
    check_signatures,
    declared_min_resource_fee,
)

TRC = sx.TransactionResultCode
#: core's EXPECTED_CLOSE_TIME_MULT
EXPECTED_CLOSE_TIME_MULT = 2


class Duplicate(Exception):
    pass


class LedgerClock:
    """The devnet's "now" in ledger seconds (see the module docstring)."""

    def __init__(self, ledger_seconds: int, close_every: float | None = None) -> None:
        self.ledger_seconds = ledger_seconds
        self.close_every = close_every
        self.closed_at = time.monotonic()

    def closed(self) -> None:
        self.closed_at = time.monotonic()

    def drift(self) -> int:
        """Ledger seconds since the last close."""
        elapsed = max(0.0, time.monotonic() - self.closed_at)
        if self.close_every:
            elapsed *= self.ledger_seconds / self.close_every
        return int(elapsed)

    def upper_bound_offset(self) -> int:
        """core's getUpperBoundCloseTimeOffset: 2 expected ledger times plus the drift."""
        return EXPECTED_CLOSE_TIME_MULT * self.ledger_seconds + self.drift()


class Queue(Protocol):
    """What admission reads of the node (``devnet.node.Devnet`` passes itself): the ledger and
    its clock, the queue with its limiter, the accounts. Admission changes only the ban list."""

    @property
    def ledger(self) -> LedgerState: ...
    @property
    def clock(self) -> LedgerClock: ...
    @property
    def surge(self) -> Surge: ...
    @property
    def accounts(self) -> Accounts: ...
    @property
    def pending(self) -> Mapping[str, ParsedTx]: ...
    @property
    def pending_by_source(self) -> Mapping[str, str]: ...


def _bounds(tx: sx.Transaction) -> tuple[sx.TimeBounds | None, sx.LedgerBounds | None]:
    cond = tx.cond
    if cond.type == sx.PreconditionType.PRECOND_TIME:
        return cond.time_bounds, None
    if cond.type == sx.PreconditionType.PRECOND_V2 and cond.v2 is not None:
        return cond.v2.time_bounds, cond.v2.ledger_bounds
    return None, None


def check_submit_bounds(node: Queue, tx: sx.Transaction) -> None:
    """txTOO_EARLY / txTOO_LATE as core's TransactionQueue checks them."""
    tb, lb = _bounds(tx)
    last_close = node.ledger.close_time
    if tb is not None:
        min_time = tb.min_time.time_point.uint64
        max_time = tb.max_time.time_point.uint64
        if min_time and min_time > last_close:
            raise TxRejected(TRC.txTOO_EARLY)
        if max_time:
            offset = node.clock.upper_bound_offset()
            if offset > max_time or max_time < last_close + offset:
                raise TxRejected(TRC.txTOO_LATE)
    if lb is not None:
        next_seq = node.ledger.sequence + 1
        if lb.min_ledger.uint32 > next_seq:
            raise TxRejected(TRC.txTOO_EARLY)
        if lb.max_ledger.uint32 != 0 and lb.max_ledger.uint32 <= next_seq:
            raise TxRejected(TRC.txTOO_LATE)


def check_pending(node: Queue, ptx: ParsedTx) -> None:
    """Steps 1-3: raises TryAgainLater, Duplicate or TxRejected."""
    if node.surge.is_banned(ptx.hash_hex):
        raise TryAgainLater
    if ptx.fee < 0 or ptx.resource_fee < 0 or ptx.fee < ptx.resource_fee:
        raise TxRejected(TRC.txMALFORMED)
    current_hash = node.pending_by_source.get(ptx.source)
    if current_hash is None:
        return
    current = node.pending.get(current_hash)
    if current_hash == ptx.hash_hex:
        raise Duplicate
    if current is not None and ptx.seq_num < current.seq_num:
        raise TxRejected(TRC.txBAD_SEQ)
    raise TryAgainLater


def check_valid(node: Queue, ptx: ParsedTx) -> None:
    """Step 5, in core's checkValid order: Soroban resources (the declared resource fee), time
    and ledger bounds, the minimum inclusion fee, source account, sequence number, signatures,
    balance. Raises TxRejected."""
    if ptx.resource_fee < declared_min_resource_fee(ptx.soroban_data):
        raise TxRejected(TRC.txINSUFFICIENT_FEE)
    check_submit_bounds(node, ptx.tx)
    if ptx.fee - ptx.resource_fee < BASE_FEE:
        raise TxRejected(TRC.txINSUFFICIENT_FEE)
    acct = node.accounts.get(ptx.source)
    if acct is None:
        raise TxRejected(TRC.txNO_ACCOUNT)
    if ptx.op_source != ptx.source and node.accounts.get(ptx.op_source) is None:
        raise TxRejected(TRC.txNO_ACCOUNT)
    if ptx.seq_num != acct.seq_num + 1:
        raise TxRejected(TRC.txBAD_SEQ)
    check_signatures(ptx)
    if acct.balance < ptx.fee:
        raise TxRejected(TRC.txINSUFFICIENT_BALANCE)


def admit(node: Queue, ptx: ParsedTx) -> Admission:
    """Steps 1-5 for a parsed transaction. Returns the queue limiter's admission (with the
    eviction to perform); raises TryAgainLater, Duplicate or TxRejected. Changes nothing but the
    ban list (a transaction refused by the limiter is banned, as core bans it)."""
    check_pending(node, ptx)
    admission = node.surge.admit(node.pending.values(), ptx)
    if not admission.ok:
        node.surge.refused(ptx, admission)
        if admission.min_fee:
            raise TxRejected(TRC.txINSUFFICIENT_FEE, admission.min_fee)
        raise TryAgainLater
    check_valid(node, ptx)
    return admission
