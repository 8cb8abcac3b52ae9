"""Statistics of paired eager/compiled timings.

The audio set is a fixed workload, so the uncertainty that matters is measurement noise, not
which utterances were drawn.  The confidence interval of a speedup is therefore a *stratified*
bootstrap: each utterance is a stratum, and within it the paired (eager, compiled) rounds are
resampled with replacement; the speedup of a resample is summed eager time / summed compiled
time over all utterances (the published protocol's ratio of sums).

Each utterance contributes its *median* over rounds to those sums: a pass total is the
published "summed generate() seconds", made robust to a single stalled call.  On a shared VM a
call now and then takes twice its time for reasons that have nothing to do with the code (seen
here: one 4.4-s call among 1.7-s ones moved a 6-round speedup by 7%); with a mean it shifts the
verdict, with a median over 3 or more rounds it does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}


def _matrix(samples) -> np.ndarray:
    """rounds x utterances array of seconds, from a list of per-round lists."""
    array = np.asarray(samples, dtype=float)
    if array.ndim != 2 or array.size == 0:
        raise ValueError("samples must be a non-empty rounds x utterances table")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError("timings must be positive and finite")
    return array


def typical_total(table: np.ndarray) -> float:
    """The summed seconds of a typical pass: per utterance (column) the median over rounds."""
    return float(np.median(table, axis=0).sum())


def _paired_resample_sums(tables: list[np.ndarray], resamples: int, seed: int) -> list[np.ndarray]:
    """Per table, ``resamples`` typical totals after resampling the rounds of each utterance
    (column) with replacement; the same picks for every table keep the pairing."""
    rounds, utterances = tables[0].shape
    picks = np.random.default_rng(seed).integers(0, rounds, size=(resamples, rounds, utterances))
    columns = np.arange(utterances)
    return [np.median(t[picks, columns], axis=1).sum(axis=1) for t in tables]


def _interval(estimate: float, draws: np.ndarray, confidence: float) -> Interval:
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


def speedup_interval(eager, compiled, confidence: float = 0.95, resamples: int = 4000,
                     seed: int = 0) -> Interval:
    """Speedup = typical eager total / typical compiled total, with a stratified paired bootstrap
    interval.

    ``eager[r][u]`` and ``compiled[r][u]`` are the seconds of utterance ``u`` in round ``r``,
    timed in alternation (same ``r`` = neighbours in time, hence paired).
    """
    e, c = _matrix(eager), _matrix(compiled)
    if e.shape != c.shape:
        raise ValueError(f"eager {e.shape} and compiled {c.shape} timings are not paired")
    estimate = typical_total(e) / typical_total(c)
    if e.shape[0] == 1:
        return Interval(float(estimate), float("nan"), float("nan"), confidence)
    e_sums, c_sums = _paired_resample_sums([e, c], resamples, seed)
    return _interval(estimate, e_sums / c_sums, confidence)


def total_interval(samples, confidence: float = 0.95, resamples: int = 4000, seed: int = 0) -> Interval:
    """Summed seconds of a typical pass, with the same stratified bootstrap interval."""
    s = _matrix(samples)
    estimate = typical_total(s)
    if s.shape[0] == 1:
        return Interval(float(estimate), float("nan"), float("nan"), confidence)
    (sums,) = _paired_resample_sums([s], resamples, seed)
    return _interval(estimate, sums, confidence)


def coefficient_of_variation(pass_totals) -> float:
    """Relative spread of summed pass times (sample standard deviation / mean)."""
    totals = np.asarray(pass_totals, dtype=float)
    if totals.size < 2:
        return float("nan")
    return float(totals.std(ddof=1) / totals.mean())


def _relative_half_widths(interval: Interval) -> tuple[float, float]:
    """(estimate - low, high - estimate) / estimate; zero for a single round (no interval)."""
    if np.isnan(interval.low):
        return 0.0, 0.0
    return ((interval.estimate - interval.low) / interval.estimate,
            (interval.high - interval.estimate) / interval.estimate)


def detectable_speedup_loss(interval: Interval, tolerance: float) -> float:
    """The smallest slowdown of a compiled variant (as a fraction: 0.12 = 12% slower) that a run
    with this interval's relative width would flag against a baseline equal to its estimate.

    A speedup regression is flagged when the interval's upper end falls below
    ``baseline x (1 - tolerance)``; slowing the variant by ``d`` divides the interval by
    ``1 + d``, so the smallest flagged ``d`` is ``(1 + upper half-width) / (1 - tolerance) - 1``:
    the tolerance plus this run's noise."""
    _, upper = _relative_half_widths(interval)
    return (1 + upper) / (1 - tolerance) - 1


def detectable_time_increase(interval: Interval, tolerance: float) -> float:
    """The same for a summed time: flagged when the interval's lower end exceeds
    ``baseline x (1 + tolerance)``, so the smallest flagged increase is
    ``(1 + tolerance) / (1 - lower half-width) - 1``."""
    lower, _ = _relative_half_widths(interval)
    return (1 + tolerance) / (1 - lower) - 1
