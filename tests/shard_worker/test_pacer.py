"""When the events mode polls for the next ledger (pure arithmetic, times passed in)."""

from __future__ import annotations

import random

import pytest

from shard_worker.pacer import MIN_WAIT_S, WINDOW, LedgerPacer


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

    def test_waits_until_just_before_the_next_close_then_steps(self) -> None:
        p = LedgerPacer(1.0)
        for seq, miss, hit in ((10, -0.5, 0.0), (11, 4.5, 5.0), (12, 9.5, 10.0)):
            p.observe(seq - 1, miss)
            p.observe(seq, hit)
        assert p.period_s == pytest.approx(5.0)
        # the next ledger is expected at 15.0: the first poll comes early by a tenth of a
        # step plus the period's error bound (a step over the 1 ledger between the brackets
        # 11 and 12: the very first sighting has no poll before it)
        early = 0.1 + 1.0 / 1
        assert p.delay(10.0) == pytest.approx(5.0 - early)
        assert p.delay(15.0 - early + 0.05) == 1.0  # past it and nothing new: every step
        assert p.delay(15.0 - early - MIN_WAIT_S / 2) == MIN_WAIT_S

    def test_the_period_is_measured_between_bracketed_sightings_only(self) -> None:
        """A sighting with no poll just before it may be late by anything: it does not set
        the period (over skipped ledgers too)."""
        p = LedgerPacer(1.0)
        p.observe(0, 0.0)
        p.observe(1, 5.9)  # not bracketed: seen 0.9 s late, say
        assert p.period_s is None
        p.observe(1, 9.5)
        p.observe(3, 10.0)  # bracketed
        assert p.period_s is None  # one bracket
        p.observe(4, 15.9)  # not bracketed
        p.observe(4, 19.5)
        p.observe(5, 20.0)  # bracketed: 2 ledgers in 10 s
        assert p.period_s == pytest.approx(5.0)

    def test_a_late_first_sighting_does_not_bias_the_period(self) -> None:
        """Start-up polls every step see the first ledger up to a step late: that sighting is
        not bracketed, so the period is exact once the chain is."""
        p = LedgerPacer(1.0)
        p.observe(1, 0.9)  # closed at 0.0, seen 0.9 s late
        for seq in range(2, 2 + WINDOW):
            p.observe(seq - 1, 5.0 * (seq - 1) - 0.5)
            p.observe(seq, 5.0 * (seq - 1) + 0.05)
        assert p.period_s == pytest.approx(5.0)

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

    @pytest.mark.parametrize("answer_s", [0.05, 0.15, 0.4])
    def test_the_lag_stays_bounded_when_answers_take_longer_than_early(
        self, answer_s: float
    ) -> None:
        """Each poll is observed at its send time: a slow answer (longer than ``early_s``)
        does not push the next poll later each ledger. Observed at the answer's time, the
        lag grew by (answer - early) a ledger up to whole ledgers (ledgers skipped)."""
        p = LedgerPacer(1.0)
        rng = random.Random(3)
        now, polls, lags = 0.3, 0, []
        for _ in range(3000):  # bounded: 3000 polls
            polls += 1
            seq = int(now // 5.0)
            if p.observe(seq, now) and seq > 5:
                lags.append(now - seq * 5.0)
            now += answer_s + rng.uniform(0.0, 0.2)  # the answer, then the cycle's work
            now += p.delay(now)
        ledgers = int(now // 5.0)
        assert polls / ledgers <= 1.25
        assert max(lags) <= 1.0 + answer_s + 0.2 + 1e-9
        assert len(lags) >= ledgers - 7  # no ledger skipped

    def test_about_one_poll_a_ledger_with_a_jittered_close(self) -> None:
        """Ledgers close late by 0.1-0.4 s, now and then up to 1.5 s (an apply on a loaded
        devnet): about 1.1 polls a ledger, every ledger seen."""
        rng = random.Random(7)
        closes = [
            5.0 * k + (rng.uniform(0.1, 0.4) if rng.random() < 0.85 else 1.5) for k in range(420)
        ]
        p = LedgerPacer(1.0)
        now, polls, seen = 0.3, 0, set()
        while now < closes[400]:  # bounded: the chain's 400 ledgers
            polls += 1
            seq = sum(1 for c in closes if c <= now) - 1
            if p.observe(seq, now):
                seen.add(seq)
            now += 0.1 + rng.uniform(0.0, 0.1)
            now += p.delay(now)
        assert polls / 400 <= 1.3
        assert len(seen) >= 395

    def test_step_and_early_must_fit(self) -> None:
        with pytest.raises(ValueError):
            LedgerPacer(0)
        with pytest.raises(ValueError):
            LedgerPacer(1.0, early_s=1.0)
