"""Statistics of paired eager/compiled timings.

The audio set is a fixed workload, so the uncertainty that matters is measurement noise, not
which utterances were drawn.  The confidence interval of a speedup is therefore a *stratified*
bootstrap: each utterance is a stratum, and within it the paired (eager, compiled) rounds are
resampled with replacement; the speedup of a resample is summed eager time / summed compiled
time over all utterances (the published protocol's ratio of sums).

Each utterance contributes the *mean of its calls over rounds, stalled calls left out* to those
sums: a pass total is the published "summed generate() seconds", made robust to a call that
stalls.  On a shared VM a call now and then takes twice its time for reasons that have nothing to
do with the code (seen here: one 4.4-s call among 1.7-s ones moved a 6-round speedup by 7%).  A
call more than ``STALL_FACTOR`` times its utterance's median is a stall; it is left out with its
paired call, and the count is reported.  Ordinary call-to-call noise here is 7-12%, so genuine
variation never reaches that factor.  A median over rounds would be robust too, but with three
rounds it is noisier than the mean (measured on 8 calibration runs: speedup interval upper
half-widths 2.4-9.3% with medians, 2.4-5.2% with means), and a noisier interval misses slowdowns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# How often a verdict catches the slowdown it says it could detect (detectable_speedup_loss).
DETECTION_POWER = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float
    # Of log(estimate), from the bootstrap draws or the rounds; None in results files written before
    # it was kept (then estimated from the half-width: standard_error_of).
    standard_error: float | None = None

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence,
                "standard_error": self.standard_error}

    @classmethod
    def from_dict(cls, data: dict | None) -> "Interval | None":
        return None if data is None else cls(data["estimate"], data["low"], data["high"], data["confidence"],
                                             data.get("standard_error"))

    @property
    def single_round(self) -> bool:
        """One round has no interval: its bounds are NaN."""
        return math.isnan(self.low)

    def scaled(self, factor: float) -> "Interval":
        return Interval(self.estimate * factor, self.low * factor, self.high * factor, self.confidence,
                        self.standard_error)


def _matrix(samples) -> np.ndarray:
    """rounds x utterances array of seconds, from a list of per-round lists."""
    array = np.asarray(samples, dtype=float)
    if array.ndim != 2 or array.size == 0:
        raise ValueError("samples must be a non-empty rounds x utterances table")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError("timings must be positive and finite")
    return array


STALL_FACTOR = 1.5


def stalled(table: np.ndarray) -> np.ndarray:
    """Calls (rounds x utterances) that took more than ``STALL_FACTOR`` x their utterance's median."""
    return table > STALL_FACTOR * np.median(table, axis=0)


def _usable(tables: list[np.ndarray]) -> np.ndarray:
    """Rounds x utterances: True where no table has a stalled call (pairs stay pairs).  An
    utterance left with no usable round keeps all of them (no call can be called typical then)."""
    usable = ~np.any([stalled(t) for t in tables], axis=0)
    usable[:, ~usable.any(axis=0)] = True
    return usable


def stalled_calls(*tables) -> int:
    """How many calls ``typical_total`` leaves out (with their paired calls) as stalls."""
    return int((~_usable([_matrix(t) for t in tables])).sum())


def typical_total(table: np.ndarray, usable: np.ndarray | None = None) -> float:
    """The summed seconds of a typical pass: per utterance (column) the mean over the usable rounds."""
    usable = _usable([table]) if usable is None else usable
    return float(sum(table[usable[:, u], u].mean() for u in range(table.shape[1])))


def _paired_resample_sums(tables: list[np.ndarray], usable: np.ndarray, resamples: int,
                          seed: int) -> list[np.ndarray]:
    """Per table, ``resamples`` typical totals after resampling the usable rounds of each utterance
    (column) with replacement; the same picks for every table keep the pairing."""
    rng = np.random.default_rng(seed)
    sums = [np.zeros(resamples) for _ in tables]
    for u in range(tables[0].shape[1]):
        rounds = np.flatnonzero(usable[:, u])
        picks = rounds[rng.integers(0, rounds.size, size=(resamples, rounds.size))]
        for total, t in zip(sums, tables):
            total += t[picks, u].mean(axis=1)
    return sums


def _interval(estimate: float, draws: np.ndarray, confidence: float) -> Interval:
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), confidence, float(np.log(draws).std(ddof=1)))


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
    usable = _usable([e, c])
    estimate = typical_total(e, usable) / typical_total(c, usable)
    if e.shape[0] == 1:
        return Interval(float(estimate), float("nan"), float("nan"), confidence)
    e_sums, c_sums = _paired_resample_sums([e, c], usable, resamples, seed)
    return _interval(estimate, e_sums / c_sums, confidence)


def total_interval(samples, confidence: float = 0.95, resamples: int = 4000, seed: int = 0) -> Interval:
    """Summed seconds of a typical pass, with the same stratified bootstrap interval."""
    s = _matrix(samples)
    usable = _usable([s])
    estimate = typical_total(s, usable)
    if s.shape[0] == 1:
        return Interval(float(estimate), float("nan"), float("nan"), confidence)
    (sums,) = _paired_resample_sums([s], usable, resamples, seed)
    return _interval(estimate, sums, confidence)


def coefficient_of_variation(pass_totals) -> float:
    """Relative spread of summed pass times (sample standard deviation / mean)."""
    totals = np.asarray(pass_totals, dtype=float)
    if totals.size < 2:
        return float("nan")
    return float(totals.std(ddof=1) / totals.mean())


def _relative_half_widths(interval: Interval) -> tuple[float, float]:
    """(estimate - low, high - estimate) / estimate; zero for a single round (no interval)."""
    if interval.single_round:
        return 0.0, 0.0
    return ((interval.estimate - interval.low) / interval.estimate,
            (interval.high - interval.estimate) / interval.estimate)


def standard_error_of(interval: Interval) -> float:
    """The standard error of log(estimate): the interval's own, or for an interval that did not keep
    it (an older results file), its wider half-width over the normal quantile of its level."""
    if interval.single_round:
        return 0.0
    if interval.standard_error is not None:
        return interval.standard_error
    half = max(math.log(interval.high / interval.estimate), math.log(interval.estimate / interval.low))
    return half / NormalDist().inv_cdf((1 + interval.confidence) / 2)


def _power_margin(interval: Interval) -> float:
    """How much further than the interval's own edge a slowdown must go to be flagged
    ``DETECTION_POWER`` of the time: the estimate of a slowed run falls that many standard errors
    short of the truth in the unlucky 5%."""
    return math.exp(NormalDist().inv_cdf(DETECTION_POWER) * standard_error_of(interval))


def detectable_speedup_loss(interval: Interval, tolerance: float) -> float:
    """The smallest slowdown of a compiled variant (as a fraction: 0.12 = 12% slower) that a run
    with this interval's noise would flag, ``DETECTION_POWER`` of the time, against a baseline
    equal to its estimate.

    A speedup regression is flagged when the interval's upper end falls below
    ``baseline x (1 - tolerance)``; slowing the variant by ``d`` divides the interval by
    ``1 + d``, so ``(1 + upper half-width) / (1 - tolerance) - 1`` is flagged half of the time
    (the estimate falls either side of the truth), and 1.645 standard errors more 95% of the time:
    the tolerance plus this run's noise."""
    _, upper = _relative_half_widths(interval)
    return (1 + upper) * _power_margin(interval) / (1 - tolerance) - 1


def detectable_time_increase(interval: Interval, tolerance: float) -> float:
    """The same for a summed time: flagged when the interval's lower end exceeds
    ``baseline x (1 + tolerance)``, so the increase flagged half of the time is
    ``(1 + tolerance) / (1 - lower half-width) - 1``, and 1.645 standard errors more 95% of it."""
    lower, _ = _relative_half_widths(interval)
    return (1 + tolerance) * _power_margin(interval) / (1 - lower) - 1


def _speedup_draws(eager, compiled, resamples: int, seed: int) -> tuple[float, np.ndarray]:
    e, c = _matrix(eager), _matrix(compiled)
    usable = _usable([e, c])
    estimate = typical_total(e, usable) / typical_total(c, usable)
    e_sums, c_sums = _paired_resample_sums([e, c], usable, resamples, seed)
    return estimate, e_sums / c_sums


def _total_draws(samples, resamples: int, seed: int) -> tuple[float, np.ndarray]:
    s = _matrix(samples)
    usable = _usable([s])
    (sums,) = _paired_resample_sums([s], usable, resamples, seed)
    return typical_total(s, usable), sums


def change_interval(before, after, confidence: float = 0.95, resamples: int = 4000) -> Interval:
    """after / before, for two independent measurements of the same thing (two environments
    of an upgrade): each side is bootstrapped as above, independently, and the interval is that
    of the ratio.  ``before`` and ``after`` are (eager, compiled) table pairs for a speedup, or
    single tables for a summed time."""
    draw = (lambda side, seed: _speedup_draws(*side, resamples, seed)) if isinstance(before, tuple) else \
        (lambda side, seed: _total_draws(side, resamples, seed))
    (a, a_draws), (b, b_draws) = draw(before, 1), draw(after, 2)
    return _interval(b / a, b_draws / a_draws, confidence)


def percent_text(fraction: float) -> str:
    """A fraction as a percentage with three significant digits: 0.05 -> "5%", 0.0473 -> "4.73%"."""
    return f"{100 * fraction:.3g}%"


def interval_text(interval: "Interval | dict | None", unit: str = "x", digits: int = 3) -> str:
    """An interval as "1.095x [1.070, 1.120]"; the estimate alone for one round; "-" when absent.
    The one formatting of an interval in tables (verdict messages add the confidence level)."""
    if not interval:
        return "-"
    if isinstance(interval, dict):
        interval = Interval.from_dict(interval)
    if interval.single_round:
        return f"{interval.estimate:.{digits}f}{unit}"
    return f"{interval.estimate:.{digits}f}{unit} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"
