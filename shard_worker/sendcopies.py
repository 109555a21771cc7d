"""Copies of one ``sendTransaction`` (one signed envelope), hedged: what each answer says and
what the answers of one round add up to (pure; the submitter acts on the sum).

Copies of one envelope have one hash: core queues it once (a copy arriving while it is queued
is answered DUPLICATE) and applies it once, so sending copies together is safe. Their answers
can still differ: PENDING, DUPLICATE, TRY_AGAIN_LATER, a busy server's refusal, a lost answer,
or an ERROR (txBAD_SEQ when a close applied an earlier copy meanwhile). The rules:

* any PENDING or DUPLICATE: queued (:data:`~shard_worker.hedge.WIN`; the copies still out are
  cancelled: they can only be answered DUPLICATE or meet it applied);
* an ERROR stops new copies (:data:`~shard_worker.hedge.HOLD`): the copies still out are waited
  for, since one of them may say PENDING (it reached the queue first);
* TRY_AGAIN_LATER, a refusal unread (HTTP 503 / 429, -32098), a lost or garbled answer: not
  queued by this copy, or not known; another copy may start at once
  (:data:`~shard_worker.hedge.AGAIN`);
* when no copy was queued, a lost answer outweighs everything (a lost copy may have been queued,
  and then applied: an ERROR beside it proves nothing, getTransaction decides, never a reseal),
  then an ERROR (no copy reached the queue: refused), then TRY_AGAIN_LATER, then busy.
"""

from __future__ import annotations

from typing import Any

from shard_worker.errors import HTTP_429, HTTP_503, QUEUE_FULL, RpcError
from shard_worker.hedge import AGAIN, HOLD, STOP, WIN, Race

__all__ = ["QUEUED_STATUSES", "REFUSED_UNREAD_KINDS", "judge_send", "sum_up"]

#: answers that say the envelope is in core's queue
QUEUED_STATUSES = frozenset({"PENDING", "DUPLICATE"})
#: failures that say the server refused the request before carrying it out (nothing queued;
#: an execution-limit answer, -32001, may have reached the queue)
REFUSED_UNREAD_KINDS = frozenset({HTTP_503, HTTP_429, QUEUE_FULL})

#: what an answer is when no copy was queued, the strongest first
_LOST, _ERROR, _TRY_AGAIN_LATER, _BUSY = 0, 1, 2, 3


def _status(answer: Any) -> str | None:
    """An answer's ``status`` when it is a string (a garbled one may be anything)."""
    status = answer.get("status") if isinstance(answer, dict) else None
    return status if isinstance(status, str) else None


def _rank(answer: Any) -> int | None:
    """The class of a copy's answer that is not queued (None: an unexpected exception)."""
    if isinstance(answer, RpcError):
        return _BUSY if answer.kind in REFUSED_UNREAD_KINDS else _LOST
    if isinstance(answer, BaseException):
        return None
    status = _status(answer)
    if status == "ERROR":
        return _ERROR
    if status == "TRY_AGAIN_LATER":
        return _TRY_AGAIN_LATER
    return _LOST  # an unknown status, or no answer object: maybe queued


def judge_send(answer: Any) -> str:
    """One copy's verdict (see the module docstring)."""
    if _status(answer) in QUEUED_STATUSES:
        return WIN
    rank = _rank(answer)
    if rank is None:
        return STOP  # a bug, not an answer: raised to the caller
    return HOLD if rank == _ERROR else AGAIN


def sum_up(got: Race) -> Any:
    """The one answer a round of copies adds up to: the queued answer if a copy was queued,
    else the strongest by the rules above (an answer dict, or the exception to raise)."""
    if got.won:
        return got.last
    best: Any = None
    best_rank = _BUSY + 1
    for answer in got.answers:
        rank = _rank(answer)
        if rank is None:
            return answer
        if best is None or rank < best_rank:
            best, best_rank = answer, rank
    return best
