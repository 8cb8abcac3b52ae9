"""Statistics of paired eager/compiled timings.

The audio set is a fixed workload, so the uncertainty that matters is measurement noise, not
which utterances were drawn.  The confidence interval of a speedup is therefore a *stratified*
bootstrap: each utterance is a stratum, and within it the paired (eager, compiled) rounds are
resampled with replacement; the speedup of a resample is summed eager time / summed compiled
time over all utterances (the published protocol's ratio of sums).
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


def speedup_interval(eager, compiled, confidence: float = 0.95, resamples: int = 4000,
                     seed: int = 0) -> Interval:
    """Speedup = sum(eager) / sum(compiled), with a stratified paired bootstrap interval.

    ``eager[r][u]`` and ``compiled[r][u]`` are the seconds of utterance ``u`` in round ``r``,
    timed in alternation (same ``r`` = neighbours in time, hence paired).
    """
    e, c = _matrix(eager), _matrix(compiled)
    if e.shape != c.shape:
        raise ValueError(f"eager {e.shape} and compiled {c.shape} timings are not paired")
    rounds, utterances = e.shape
    estimate = e.sum() / c.sum()
    if rounds == 1:
        return Interval(estimate, float("nan"), float("nan"), confidence)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, rounds, size=(resamples, rounds, utterances))
    columns = np.arange(utterances)
    e_sums = e[picks, columns].sum(axis=(1, 2))
    c_sums = c[picks, columns].sum(axis=(1, 2))
    ratios = e_sums / c_sums
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


def total_interval(samples, confidence: float = 0.95, resamples: int = 4000, seed: int = 0) -> Interval:
    """Mean summed seconds per pass, with the same stratified bootstrap interval."""
    s = _matrix(samples)
    rounds, utterances = s.shape
    estimate = s.sum() / rounds
    if rounds == 1:
        return Interval(float(estimate), float("nan"), float("nan"), confidence)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, rounds, size=(resamples, rounds, utterances))
    totals = s[picks, np.arange(utterances)].sum(axis=(1, 2)) / rounds
    tail = (1 - confidence) / 2
    low, high = np.quantile(totals, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


def coefficient_of_variation(pass_totals) -> float:
    """Relative spread of summed pass times (sample standard deviation / mean)."""
    totals = np.asarray(pass_totals, dtype=float)
    if totals.size < 2:
        return float("nan")
    return float(totals.std(ddof=1) / totals.mean())
