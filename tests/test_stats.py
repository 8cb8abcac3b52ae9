"""Statistics on synthetic samples with known answers."""

import numpy as np
import pytest

from whisper_perf.stats import coefficient_of_variation, speedup_interval, total_interval


def test_speedup_is_ratio_of_sums_and_exact_without_noise():
    eager = [[2.0, 4.0, 6.0]] * 4
    compiled = [[1.0, 2.0, 3.0]] * 4
    interval = speedup_interval(eager, compiled)
    assert interval.estimate == pytest.approx(2.0)
    assert interval.low == pytest.approx(2.0) and interval.high == pytest.approx(2.0)


def test_ratio_of_sums_is_not_the_mean_of_ratios():
    # a long utterance dominates the sum, as in the published protocol
    interval = speedup_interval([[1.0, 10.0]] * 2, [[0.5, 10.0]] * 2)
    assert interval.estimate == pytest.approx(11 / 10.5)


def test_interval_covers_the_true_speedup_at_the_stated_rate():
    rng = np.random.default_rng(1)
    true_speedup, hits, trials = 1.25, 0, 200
    base = rng.uniform(0.5, 2.0, size=20)
    for trial in range(trials):
        eager = base * true_speedup * rng.lognormal(0, 0.05, size=(5, 20))
        compiled = base * rng.lognormal(0, 0.05, size=(5, 20))
        ci = speedup_interval(eager, compiled, resamples=1000, seed=trial)
        hits += ci.low <= true_speedup <= ci.high
    # lognormal noise is mean-biased by exp(sigma^2/2) on both sides alike: the ratio is unbiased
    assert 0.88 <= hits / trials <= 0.99


def test_interval_shrinks_with_more_rounds():
    rng = np.random.default_rng(2)
    widths = []
    for rounds in (3, 12):
        e = rng.lognormal(0, 0.05, size=(rounds, 30))
        c = rng.lognormal(0, 0.05, size=(rounds, 30)) / 1.1
        ci = speedup_interval(e, c)
        widths.append(ci.high - ci.low)
    assert widths[1] < widths[0]


def test_one_round_has_no_interval():
    ci = speedup_interval([[1.0, 2.0]], [[1.0, 1.0]])
    assert ci.estimate == pytest.approx(1.5) and np.isnan(ci.low) and np.isnan(ci.high)


def test_total_interval_and_cv():
    ci = total_interval([[1.0, 2.0], [1.0, 2.0]])
    assert ci.estimate == pytest.approx(3.0) and ci.low == pytest.approx(3.0)
    assert coefficient_of_variation([9.0, 10.0, 11.0]) == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [[[1.0, -1.0]], [[1.0, float("nan")]], [], [[0.0, 1.0]]])
def test_bad_samples_are_refused(bad):
    with pytest.raises(ValueError):
        speedup_interval(bad, bad)


def test_unpaired_samples_are_refused():
    with pytest.raises(ValueError, match="not paired"):
        speedup_interval([[1.0, 2.0]] * 2, [[1.0]] * 2)
