"""Intervals under adaptive stopping, on synthetic rounds of known truth (seeded): a run that adds
rounds until its interval is narrow enough, then stops.  The anytime-valid interval
(whisper_perf.judge.sequential) must keep its level across stopping times; the fixed-sample bootstrap
(whisper_perf.judge.stats) under the same rule is shown missing the truth more often than its level."""

import numpy as np
import pytest

from whisper_perf.judge import sequential, stats

TRUE_SPEEDUP = 1.25
UTTERANCES = np.array([0.4, 0.6, 0.8, 1.0, 1.3, 1.7])  # seconds per call of a fixed workload
MAX_ROUNDS = 32


def timed_round(rng, call_noise=0.05, round_noise=0.015):
    """One round: every utterance timed eager and compiled, side by side.  Calls vary by
    heavy-tailed noise (t, 3 degrees of freedom), and a round as a whole by drift that moves both
    builds alike (a neighbour on the host, the clock)."""
    drift = np.exp(round_noise * rng.standard_normal())
    noise = lambda: np.exp(call_noise * rng.standard_t(3, UTTERANCES.size) / np.sqrt(3))  # noqa: E731
    return UTTERANCES * TRUE_SPEEDUP * drift * noise(), UTTERANCES * drift * noise()


def half_width(interval) -> float:
    return max(interval.estimate - interval.low, interval.high - interval.estimate) / interval.estimate


def adaptive_run(rng, interval_of, looks, target):
    """Rounds until the interval's relative half-width is at most ``target`` at a look (or
    MAX_ROUNDS); the interval it stopped on and the rounds it took."""
    rounds = []
    while True:
        rounds.append(timed_round(rng))
        if len(rounds) in looks or len(rounds) == MAX_ROUNDS:
            interval = interval_of(rounds)
            if half_width(interval) <= target or len(rounds) == MAX_ROUNDS:
                return interval, len(rounds)


def miss_rate(interval_of, looks, truth: float, runs: int, seed: int, target: float = 0.02):
    """How often adaptive runs stop on an interval that misses ``truth``, and where they stopped."""
    rng = np.random.default_rng(seed)
    stops, missed = [], []
    for _ in range(runs):
        interval, n = adaptive_run(rng, interval_of, looks, target)
        stops.append(n)
        missed.append(not interval.low <= truth <= interval.high)
    return float(np.mean(missed)), stops


def speedups(interval):
    return lambda rounds: interval([e for e, _ in rounds], [c for _, c in rounds])


def times(interval):
    return lambda rounds: interval([c for _, c in rounds])


EVERY_ROUND = set(range(3, MAX_ROUNDS + 1))  # a run without spending looks after every round


def test_the_anytime_valid_interval_keeps_its_level_whenever_the_run_stops():
    rate, stops = miss_rate(speedups(sequential.speedup_interval), sequential.LOOKS, TRUE_SPEEDUP, runs=2000, seed=1)
    assert len(set(stops)) >= 3  # the rule stopped at several looks, not at a fixed count
    assert rate <= 0.05, f"missed the true speedup in {rate:.1%} of adaptive runs"


def test_the_fixed_sample_bootstrap_misses_more_often_under_the_same_stopping():
    bootstrap = lambda e, c: stats.speedup_interval(e, c, resamples=400)  # noqa: E731
    rate, stops = miss_rate(speedups(bootstrap), EVERY_ROUND, TRUE_SPEEDUP, runs=400, seed=1)
    assert len(set(stops)) >= 3
    assert rate > 0.10, f"the bootstrap under adaptive stopping missed only {rate:.1%}"


def test_the_time_interval_keeps_its_level_too():
    rate, stops = miss_rate(times(sequential.total_interval), sequential.LOOKS, UTTERANCES.sum(), runs=2000, seed=3)
    assert len(set(stops)) >= 3
    assert rate <= 0.05, f"missed the true time in {rate:.1%} of adaptive runs"


def test_between_looks_the_last_looks_rounds_decide():
    rng = np.random.default_rng(0)
    rounds = [timed_round(rng)[1] for _ in range(7)]  # compiled times only
    assert sequential.total_interval(rounds[:2]) is None  # before the first look: no interval
    assert sequential.total_interval(rounds) == sequential.total_interval(rounds[:6])
    assert sequential.last_look(7) == 6 and sequential.last_look(64) == 64


def test_the_price_of_looking_is_width():
    # the t quantile of one look against a fixed 95% interval at 8 rounds
    from scipy.stats import t

    spent = t.ppf(1 - (1 - sequential.look_confidence(0.95)) / 2, 7)
    assert spent / t.ppf(0.975, 7) == pytest.approx(1.75, abs=0.1)
