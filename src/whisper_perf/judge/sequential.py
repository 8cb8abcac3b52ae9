"""Intervals that stay valid while a run keeps adding rounds until its verdict is sharp enough.

A fixed-sample interval (stats.py: the stratified paired bootstrap) holds its level for a number
of rounds chosen before the run.  A run that adds rounds until its interval is narrow enough
(``--detect``) looks at the interval after every round and stops when it happens to be narrow,
which is when the spread was underestimated by chance: the intervals it stops on cover less
often than their level says (tests/test_sequential.py measures it on synthetic rounds of known
truth).

Here the error is spent over a fixed schedule of looks instead (``LOOKS``; a run decides only at
a look): each look's interval has level ``1 - (1 - confidence) / len(LOOKS)``, so by the union
bound all of them hold at once with probability at least ``confidence``, whatever the rule that
chose where to stop (Bonferroni alpha spending).  Each interval is a t-interval of the mean of
the per-round log values (a round's summed eager / compiled seconds for a speedup, its summed
seconds for a time): a round, all utterances timed in ABBA order within a few seconds, is the
unit that repeats; drift that moves a whole round moves its total, which the per-utterance
bootstrap would take for independent noise.  A stalled call (stats.stalled) is not left out
here: it lengthens its round's total, which widens the interval instead of hiding the stall.
The price of looking is width: at 8 rounds the t quantile is 4.0 instead of 2.4.
"""

from __future__ import annotations

import math

import numpy as np
# the t quantile alone: scipy.special's stdtrit is what scipy.stats.t.ppf calls, without the
# 0.7 s import of scipy.stats in every suite process
from scipy.special import stdtrit

from .stats import Interval

# Rounds at which an adaptive run may stop.  None before 5: at 3 rounds the spent t quantile is
# about 15 (2 degrees of freedom), an interval too wide to judge anything.
LOOKS = (5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)


def look_confidence(confidence: float) -> float:
    """The level of each look's interval: the error ``1 - confidence`` spent equally over LOOKS."""
    return 1 - (1 - confidence) / len(LOOKS)


def last_look(rounds: int) -> int | None:
    """The latest look at or before ``rounds`` rounds (None before the first): a run that stops
    between looks is judged on the rounds of its last look, or the spending would not hold."""
    done = [n for n in LOOKS if n <= rounds]
    return done[-1] if done else None


def _log_mean_interval(values: np.ndarray, level: float, confidence: float) -> Interval:
    """exp of the t-interval at ``level`` of the mean of log ``values`` (a geometric mean),
    labelled with the sequence's simultaneous ``confidence``."""
    logs = np.log(values)
    return log_mean_interval(float(logs.mean()), float(logs.std(ddof=1)), logs.size, level, confidence)


def log_mean_interval(log_mean: float, log_sd: float, rounds: int, level: float, confidence: float) -> Interval:
    """exp of the t-interval at ``level`` of a mean ``log_mean`` of ``rounds`` per-round log values
    with standard deviation ``log_sd``, with the mean's standard error."""
    standard_error = log_sd / math.sqrt(rounds)
    half = float(stdtrit(rounds - 1, 1 - (1 - level) / 2)) * standard_error
    return Interval(math.exp(log_mean), math.exp(log_mean - half), math.exp(log_mean + half), confidence, standard_error)


def speedup_interval(eager, compiled, confidence: float = 0.95) -> Interval | None:
    """The speedup (eager / compiled, per round over all utterances) with its anytime-valid
    interval, from the rounds of the last look; None before the first look."""
    e, c = np.asarray(eager, dtype=float), np.asarray(compiled, dtype=float)
    n = last_look(len(e))
    if n is None:
        return None
    return _log_mean_interval(e[:n].sum(axis=1) / c[:n].sum(axis=1), look_confidence(confidence), confidence)


def total_interval(samples, confidence: float = 0.95) -> Interval | None:
    """The summed seconds of a pass with its anytime-valid interval, as speedup_interval."""
    table = np.asarray(samples, dtype=float)
    n = last_look(len(table))
    if n is None:
        return None
    return _log_mean_interval(table[:n].sum(axis=1), look_confidence(confidence), confidence)
