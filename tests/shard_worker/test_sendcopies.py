"""Copies of one sendTransaction envelope: each answer's verdict and what a round adds up to
(pure rules: a lost copy may be queued, so an ERROR beside it is never a refusal)."""

from __future__ import annotations

from typing import Any

import pytest

from shard_worker.errors import HTTP_503, QUEUE_FULL, RpcResponseError, RpcTransportError
from shard_worker.hedge import AGAIN, HOLD, STOP, WIN, Race
from shard_worker.sendcopies import judge_send, sum_up

PENDING = {"status": "PENDING", "hash": "ab"}
DUPLICATE = {"status": "DUPLICATE", "hash": "ab"}
LATER = {"status": "TRY_AGAIN_LATER", "hash": "ab"}
BAD_SEQ = {"status": "ERROR", "hash": "ab", "errorResultXdr": "AAAAAAAAAGT////7AAAAAA=="}
GARBLED = {"status": ["PENDING"], "hash": "ab"}


def busy() -> RpcTransportError:
    return RpcTransportError("sendTransaction", "HTTP 503", status=503)


def lost() -> RpcTransportError:
    return RpcTransportError("sendTransaction", "transport error (disconnected)")


def full() -> RpcResponseError:
    return RpcResponseError("sendTransaction", -32098, "queue full")


def round_of(*answers: Any) -> Race:
    got = Race(started=len(answers))
    for a in answers:
        got.answers.append(a)
        got.verdicts.append(judge_send(a))
        if got.verdicts[-1] == WIN:
            got.winner = len(got.answers) - 1
            break
    return got


class TestJudge:
    def test_kinds(self) -> None:
        assert busy().kind == HTTP_503 and full().kind == QUEUE_FULL

    @pytest.mark.parametrize(
        ("answer", "verdict"),
        [
            (PENDING, WIN),
            (DUPLICATE, WIN),
            (LATER, AGAIN),
            (BAD_SEQ, HOLD),  # wait for the copies out: one may have reached the queue first
            (GARBLED, AGAIN),  # maybe queued: another copy may tell
            ({"status": "NEW_STATUS"}, AGAIN),
            ("not an object", AGAIN),
            (busy(), AGAIN),
            (full(), AGAIN),
            (lost(), AGAIN),
            (ValueError("a bug"), STOP),
        ],
    )
    def test_verdict(self, answer: Any, verdict: str) -> None:
        assert judge_send(answer) == verdict


class TestSumUp:
    def test_queued_wins_over_everything_before_it(self) -> None:
        assert sum_up(round_of(busy(), lost(), LATER, DUPLICATE)) is DUPLICATE

    def test_an_error_after_a_queued_copy_is_not_a_refusal(self) -> None:
        # a close applied the first copy, the hedge met it applied (txBAD_SEQ), then the
        # first copy's PENDING arrived: queued (the confirmation finds it applied)
        assert sum_up(round_of(BAD_SEQ, PENDING)) is PENDING

    def test_a_lost_copy_outweighs_an_error(self) -> None:
        # the lost copy may have been queued and applied: getTransaction decides, no reseal
        got = sum_up(round_of(lost(), BAD_SEQ))
        assert isinstance(got, RpcTransportError) and got.kind != HTTP_503
        assert sum_up(round_of(BAD_SEQ, GARBLED)) is GARBLED

    def test_an_error_with_no_copy_queueable_is_the_refusal(self) -> None:
        assert sum_up(round_of(busy(), BAD_SEQ, LATER)) is BAD_SEQ

    def test_try_again_later_over_busy(self) -> None:
        assert sum_up(round_of(busy(), LATER, full())) is LATER

    def test_all_busy(self) -> None:
        b = busy()
        assert sum_up(round_of(b)) is b

    def test_a_bug_is_raised(self) -> None:
        bug = ValueError("a bug")
        assert sum_up(round_of(busy(), bug)) is bug
