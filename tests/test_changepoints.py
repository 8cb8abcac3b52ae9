"""changepoints.find_steps on seeded synthetic series: the steps it must find, at the run where
they began, and what it must not call a step (noise, a small step, one odd run)."""

import numpy as np
import pytest

from whisper_perf.judge.changepoints import Step, find_steps, relative_change


def noisy(levels: list[float], noise: float, seed: int) -> list[float]:
    """Each level times (1 + noise * a standard normal draw), seeded."""
    rng = np.random.default_rng(seed)
    return [level * (1 + noise * rng.standard_normal()) for level in levels]


def test_a_step_is_found_at_the_first_run_after_it():
    values = noisy([1.0] * 10 + [1.2] * 10, 0.02, seed=0)
    (step,) = find_steps(values, min_change=0.10)
    assert (step.index, step.last_before) == (10, 9)
    assert step.before == pytest.approx(np.mean(values[:10])) and step.after == pytest.approx(np.mean(values[10:]))
    assert step.change == pytest.approx(step.after / step.before - 1) and 0.15 < step.change < 0.25
    assert step.p_value <= 0.01


@pytest.mark.parametrize("seed", range(8))
def test_noise_alone_is_no_step_even_without_a_size_threshold(seed):
    assert find_steps(noisy([1.0] * 20, 0.05, seed), min_change=0.0) == []


def test_a_significant_step_smaller_than_the_tolerance_is_not_reported():
    values = noisy([1.0] * 10 + [1.05] * 10, 0.01, seed=1)
    assert find_steps(values, min_change=0.10) == []
    assert [s.index for s in find_steps(values, min_change=0.03)] == [10]


@pytest.mark.parametrize("where", [0, 1, 10, 18, 19])
def test_a_single_outlier_is_not_a_step(where):
    values = noisy([1.0] * 20, 0.02, seed=2)
    values[where] = 1.6
    assert find_steps(values, min_change=0.10) == []


def test_a_step_needs_two_runs_on_each_side_and_enough_runs():
    assert find_steps([1.0, 1.0, 1.0, 2.0], min_change=0.10) == []  # one run after: an outlier
    assert find_steps(noisy([1.0] * 4 + [1.5] * 4, 0.01, seed=3), min_change=0.10) == []  # 4 + 4: as likely by chance
    assert [s.index for s in find_steps(noisy([1.0] * 6 + [1.5] * 6, 0.01, seed=3), min_change=0.10)] == [6]
    assert [s.index for s in find_steps(noisy([1.0] * 17 + [1.3] * 3, 0.02, seed=3), min_change=0.10)] == [17]


def test_two_steps_in_a_row_are_both_found():
    values = noisy([1.0] * 8 + [1.2] * 8 + [1.45] * 8, 0.02, seed=4)
    steps = find_steps(values, min_change=0.10)
    assert [s.index for s in steps] == [8, 16]
    assert steps[0].after == steps[1].before == pytest.approx(np.mean(values[8:16]))


def test_a_regression_and_its_fix_are_both_found():
    """A step and its return: a single split sees this only weakly, the interval test sees it."""
    values = noisy([1.0] * 8 + [0.8] * 8 + [1.0] * 8, 0.02, seed=5)
    steps = find_steps(values, min_change=0.10)
    assert [(s.index, s.change < 0) for s in steps] == [(8, True), (16, False)]


def test_runs_without_a_value_keep_their_numbering():
    values: list[float | None] = noisy([1.0] * 10 + [1.2] * 10, 0.02, seed=6)
    values[3] = values[9] = None
    values[12] = float("nan")
    (step,) = find_steps(values, min_change=0.10)
    assert (step.index, step.last_before) == (10, 8)
    values[10] = None
    assert [(s.index, s.last_before) for s in find_steps(values, min_change=0.10)] == [(11, 8)]


def test_the_same_series_gives_the_same_steps():
    values = noisy([1.0] * 12 + [0.9] * 12, 0.03, seed=7)
    assert find_steps(values, 0.05) == find_steps(values, 0.05)
    assert all(isinstance(s, Step) and isinstance(s.p_value, float) for s in find_steps(values, 0.05))


def test_relative_change():
    assert relative_change(2.0, 2.5) == pytest.approx(0.25)
    assert relative_change(2.0, 1.5) == pytest.approx(-0.25)
    assert relative_change(0.0, 0.0) == 0.0 and relative_change(0.0, 1.0) == float("inf")
