"""Where a step began in a series of runs (one value per run): change points for the history.

A step is a lasting change of level: the runs after it differ from the runs before it by more
than their order could by chance, and by at least ``min_change`` (the hardware key's tolerance,
so that what the history calls a step is what the gate would call a regression).  One odd run is
an outlier, not a step: each side of a step holds at least two runs.

Method: binary segmentation.  A segment is split where it is most unlike chance, then each part
is searched again, until no part holds a significant split; steps smaller than ``min_change``
are merged away afterwards (smallest first, since merging changes its neighbours' sizes).  The
statistic of a split is the difference of the means on its two sides, scaled so that every
split position weighs alike under no step; the test is a permutation test, and why:

- the statistic taken is the largest over all candidate splits, and the shuffled series (no
  step by construction) give the distribution of that maximum: the p-value is corrected for the
  number of candidates exactly, and nothing is assumed about the noise.  A Welch t-test per split
  with a Bonferroni factor is not: with two runs on one side its variance is too often small by
  chance (about 7% false steps at alpha 0.01 in flat series of 12-40 runs);
- an outlier is no step: a shuffle puts it anywhere, so one odd run is as likely in any order;
- values rather than ranks: a rank says no more than "lowest", so a large step in the last three
  runs would be out of reach of a rank test; the shuffles keep the test valid with heavy tails;
- two candidate sets, each at alpha/2: single splits (one step) and intervals against the rest
  (a step and its return, e.g. a regression fixed some runs later, which a single split sees
  only weakly; circular binary segmentation, Olshen et al. 2004).

The price of a test that assumes nothing about the noise is that a few runs cannot be
significant however large the step: at alpha 0.01 a step needs about 6 runs on each side in the
middle of a series (``RUNS_NEEDED`` in all), or 3 after it at the end of a series of 20 (2 after
it from about 30 runs).  The shuffles come from a seeded generator: the same series always gives
the same steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.01
PERMUTATIONS = 1999
MIN_SIDE = 2  # runs on each side of a step: one odd run is an outlier, not a step
RUNS_NEEDED = 12  # the fewest runs in which a step (6 on each side) is significant at ALPHA
_CELLS_PER_BATCH = 2_000_000  # shuffles x candidate splits computed at once (16 MB)


@dataclass(frozen=True)
class Step:
    """A lasting change of level.  ``index`` is the first run after it and ``last_before`` the
    last run before it with a value, both in the caller's numbering (runs without a value are
    skipped, not renumbered); ``before`` and ``after`` are the means of the runs back to the
    previous step and on to the next one; ``change`` is ``after / before - 1``."""

    index: int
    last_before: int
    before: float
    after: float
    change: float
    p_value: float


def find_steps(values: Sequence[float | None], min_change: float, alpha: float = ALPHA,
               permutations: int = PERMUTATIONS, seed: int = 0) -> list[Step]:
    """The steps of a series, in order: significant at ``alpha`` and of a relative size of at
    least ``min_change``.  None (a run without this value) and NaN are skipped."""
    positions = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    present = np.array([values[i] for i in positions], dtype=float)
    found = _significant_cuts(present, alpha, permutations, np.random.default_rng(seed))
    kept = _drop_small(present, found, min_change)
    bounds = [0, *sorted(kept), len(present)]
    steps = []
    for start, cut, end in zip(bounds, bounds[1:], bounds[2:]):
        before, after = float(present[start:cut].mean()), float(present[cut:end].mean())
        steps.append(Step(positions[cut], positions[cut - 1], before, after, relative_change(before, after),
                          kept[cut]))
    return steps


def relative_change(before: float, after: float) -> float:
    """``after / before - 1``; infinite where a level of 0 changed (times and speedups are positive)."""
    if before == 0:
        return 0.0 if after == 0 else math.copysign(math.inf, after)
    return after / before - 1


def _significant_cuts(values: np.ndarray, alpha: float, permutations: int,
                      rng: np.random.Generator) -> dict[int, float]:
    """Binary segmentation: position of each significant cut -> its p-value.  A part is searched
    again after every split, since a large step can hide a smaller one beside it."""
    cuts: dict[int, float] = {}
    segments = [(0, len(values))]
    while segments:
        start, end = segments.pop(0)
        found = _best_split(values[start:end], alpha, permutations, rng)
        if found is None:
            continue
        inner, p_value = found
        cuts.update((start + cut, p_value) for cut in inner)
        bounds = [start, *(start + cut for cut in inner), end]
        segments += list(zip(bounds, bounds[1:]))
    return cuts


def _best_split(segment: np.ndarray, alpha: float, permutations: int,
                rng: np.random.Generator) -> tuple[tuple[int, ...], float] | None:
    """The cut (or the two cuts of an interval) of the segment least like chance, with its
    p-value; None where neither test is significant at alpha/2."""
    n = len(segment)
    if n < 2 * MIN_SIDE:
        return None
    starts, ends = _candidates(n)
    single = (starts == 0) | (ends == n)
    observed = _statistics(segment[np.newaxis, :], starts, ends)[0]
    best = np.array([observed[single].max(), observed.max()])
    exceeded, done = _null_exceedances(segment, starts, ends, single, best, alpha, permutations, rng)
    p_single, p_interval = (exceeded + 1) / (done + 1)
    p_value = float(min(1.0, 2 * min(p_single, p_interval)))
    if p_value > alpha:
        return None
    k = np.flatnonzero(single)[observed[single].argmax()] if p_single <= p_interval else observed.argmax()
    return tuple(int(cut) for cut in (starts[k], ends[k]) if 0 < cut < n), p_value


def _candidates(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every interval [start, end) of a segment of n runs that leaves at least MIN_SIDE runs on
    each side of each of its cuts (a start of 0 or an end of n is no cut: a single split)."""
    starts, ends = np.triu_indices(n + 1, k=MIN_SIDE)
    keep = (((starts == 0) | (starts >= MIN_SIDE)) & ((ends == n) | (ends <= n - MIN_SIDE))
            & ~((starts == 0) & (ends == n)))
    return starts[keep], ends[keep]


def _statistics(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per row (one ordering of the values) and candidate interval: |mean inside - mean outside|
    times sqrt(runs inside * runs outside), up to a factor equal for all, so that with no step
    every interval length has the same spread (else the shortest, noisiest would always win)."""
    n = rows.shape[1]
    sums = np.concatenate([np.zeros((len(rows), 1)), rows.cumsum(axis=1)], axis=1)
    inside = sums[:, ends] - sums[:, starts]
    length = ends - starts
    return np.abs(inside - length * rows.mean(axis=1, keepdims=True)) / np.sqrt(length * (n - length))


def _null_exceedances(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, single: np.ndarray,
                      best: np.ndarray, alpha: float, permutations: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """How many shuffles of the values (series without a step) reach the observed largest
    statistic, for single splits and for intervals, and how many shuffles were made: it stops
    once both counts put the p-value above alpha/2, as most segments have no step."""
    limit = alpha / 2 * (permutations + 1)
    batch = max(1, min(permutations, _CELLS_PER_BATCH // len(starts)))
    exceeded, done = np.zeros(2), 0
    while done < permutations and exceeded.min() + 1 <= limit:
        size = min(batch, permutations - done)
        shuffled = rng.permuted(np.tile(values, (size, 1)), axis=1)
        stats = _statistics(shuffled, starts, ends)
        largest = np.stack([stats[:, single].max(axis=1), stats.max(axis=1)], axis=1)
        exceeded += (largest >= best - 1e-9 * (1 + best)).sum(axis=0)  # ties count as reached
        done += size
    return exceeded, done


def _drop_small(values: np.ndarray, cuts: dict[int, float], min_change: float) -> dict[int, float]:
    """The cuts whose step between the neighbouring segments' means is at least min_change,
    dropping the smallest first: each drop joins two segments and so changes its neighbours."""
    cuts = dict(cuts)
    while cuts:
        bounds = [0, *sorted(cuts), len(values)]
        sizes = {cut: abs(relative_change(values[start:cut].mean(), values[cut:end].mean()))
                 for start, cut, end in zip(bounds, bounds[1:], bounds[2:])}
        smallest = min(sizes, key=sizes.get)
        if sizes[smallest] >= min_change:
            break
        del cuts[smallest]
    return cuts
