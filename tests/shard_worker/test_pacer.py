"""When the events mode polls for the next ledger (pure arithmetic, times passed in)."""

from __future__ import annotations

import pytest

from shard_worker.pacer import MIN_WAIT_S, LedgerPacer


class TestLedgerPacer:
    def test_polls_every_step_until_the_period_is_known(self) -> None:
        p = LedgerPacer(1.0)
        assert p.delay(0.0) == 1.0
        assert p.observe(10, 0.0)
        assert p.delay(0.1) == 1.0
        assert p.period_s is None

    def test_a_repeated_or_older_ledger_is_not_new(self) -> None:
        p = LedgerPacer(1.0)
        assert p.observe(10, 0.0)
        assert not p.observe(10, 1.0)
        assert not p.observe(9, 2.0)
        assert p.observe(11, 5.0)
        assert p.period_s == pytest.approx(5.0)

    def test_waits_until_just_before_the_next_close_then_steps(self) -> None:
        p = LedgerPacer(1.0)
        p.observe(10, 0.0)
        p.observe(11, 5.0)
        # the next ledger is expected at 10.0: first poll a tenth of a step before it
        assert p.delay(5.0) == pytest.approx(4.9)
        assert p.delay(9.95) == 1.0  # past the first poll and nothing new: every step
        assert p.delay(9.9 - MIN_WAIT_S / 2) == MIN_WAIT_S

    def test_period_follows_a_moving_average_over_skipped_ledgers(self) -> None:
        p = LedgerPacer(0.5)
        p.observe(1, 0.0)
        p.observe(3, 10.0)  # two ledgers in 10 s
        assert p.period_s == pytest.approx(5.0)
        p.observe(4, 11.0)
        assert 1.0 < p.period_s < 5.0

    def test_about_one_poll_a_ledger_with_a_steady_chain(self) -> None:
        """A chain closing every 5 s exactly, polled as the pacer says: polls per ledger stay
        near 1.1, and each ledger is seen within one step of its close."""
        p = LedgerPacer(1.0)
        now, polls, worst_lag = 0.3, 0, 0.0
        for _ in range(2000):  # bounded: 2000 polls
            polls += 1
            seq = int(now // 5.0)
            if p.observe(seq, now):
                worst_lag = max(worst_lag, now - seq * 5.0) if seq > 5 else worst_lag
            now += p.delay(now)
        ledgers = int(now // 5.0)
        assert 1.0 <= polls / ledgers <= 1.25
        assert worst_lag <= 1.0 + 1e-9

    def test_step_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            LedgerPacer(0)
