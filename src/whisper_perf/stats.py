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


def _paired_resample_sums(tables: list[np.ndarray], resamples: int, seed: int) -> list[np.ndarray]:
    """Per table, ``resamples`` sums over all cells after resampling the rounds of each utterance
    (column) with replacement; the same picks for every table keep the pairing."""
    rounds, utterances = tables[0].shape
    picks = np.random.default_rng(seed).integers(0, rounds, size=(resamples, rounds, utterances))
    columns = np.arange(utterances)
    return [t[picks, columns].sum(axis=(1, 2)) for t in tables]


def _interval(estimate: float, draws: np.ndarray, confidence: float) -> Interval:
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


def speedup_interval(eager, compiled, confidence: float = 0.95, resamples: int = 4000,
                     seed: int = 0) -> Interval:
    """Speedup = sum(eager) / sum(compiled), with a stratified paired bootstrap interval.

    ``eager[r][u]`` and ``compiled[r][u]`` are the seconds of utterance ``u`` in round ``r``,
    timed in alternation (same ``r`` = neighbours in time, hence paired).
    """
    e, c = _matrix(eager), _matrix(compiled)
    if e.shape != c.shape:
        raise ValueError(f"eager {e.shape} and compiled {c.shape} timings are not paired")
    estimate = e.sum() / c.sum()
    if e.shape[0] == 1:
        return Interval(float(estimate), float("nan"), float("nan"), confidence)
    e_sums, c_sums = _paired_resample_sums([e, c], resamples, seed)
    return _interval(estimate, e_sums / c_sums, confidence)


def total_interval(samples, confidence: float = 0.95, resamples: int = 4000, seed: int = 0) -> Interval:
    """Mean summed seconds per pass, with the same stratified bootstrap interval."""
    s = _matrix(samples)
    rounds = s.shape[0]
    estimate = s.sum() / rounds
    if rounds == 1:
        return Interval(float(estimate), float("nan"), float("nan"), confidence)
    (sums,) = _paired_resample_sums([s], resamples, seed)
    return _interval(estimate, sums / rounds, confidence)


def coefficient_of_variation(pass_totals) -> float:
    """Relative spread of summed pass times (sample standard deviation / mean)."""
    totals = np.asarray(pass_totals, dtype=float)
    if totals.size < 2:
        return float("nan")
    return float(totals.std(ddof=1) / totals.mean())
