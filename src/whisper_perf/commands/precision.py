"""How sharp a verdict gets with more timing: the detectable slowdown after 1, 2, 4 and 8 minutes.

A user choosing ``--detect`` needs to know what their machine can reach in the time they give a
variant.  From measured runs (results.MeasurementRecord, every round's samples) this pools the
spread of the per-round values the sequential intervals average (sequential.py: the log of a
round's eager / variant total for the speedup, the log of its total for the time), takes the
wall seconds a round lasts, and projects for a timing budget the rounds that fit, the last look
among them and the detectable slowdown of that look's intervals: from the noise alone, against
the tolerances the verdicts use, and the smallest ``--detect`` whose targets that meets.  It
assumes the spread within the measured runs holds for longer ones: drift slower than a run is
not in it, so the longer budgets are optimistic; an adaptive run records its actual looks
(Summary.adaptive) to hold the projection against.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from ..judge import sequential
from ..judge.baselines import Tolerances
from ..judge.stats import Interval
from ..judge.verdicts import detectable_by_check, smallest_reachable_detect, tolerance_floors
from ..record.results import MeasurementRecord

BUDGET_MINUTES = (1, 2, 4, 8)


@dataclass(frozen=True)
class RoundNoise:
    """The spread of per-round values within runs, pooled over ``measurements`` measurements."""

    time_log_sd: float
    speedup_log_sd: float | None  # None for an eager variant (no reference)
    round_seconds: float  # wall seconds per quiet round (variant and reference; busy rounds cost time too)
    measurements: int
    rounds: int


def _quiet_totals(record: MeasurementRecord, reference: bool = False) -> np.ndarray:
    """The summed seconds of each quiet round (busy rounds left out, as Measurement.quiet_rounds)."""
    busy = {i for i, load in enumerate(record.loads) if load.get("busy")}
    return np.array([sum(row) for i, row in enumerate(record.seconds_table(reference)) if i not in busy])


def _pooled_sd(series: list[np.ndarray]) -> float | None:
    """The within-run standard deviation pooled over runs (each run's mean is its own)."""
    usable = [s for s in series if s.size >= 2]
    if not usable:
        return None
    df = sum(s.size - 1 for s in usable)
    return math.sqrt(sum(float(np.var(s, ddof=1)) * (s.size - 1) for s in usable) / df)


def _round_seconds(records: list[MeasurementRecord]) -> float:
    """Wall seconds per quiet round, as a budget spends them: every round's wall time (contention's
    meter around it, busy rounds included) over the quiet rounds; the median over the records."""
    return statistics.median(sum(load["wall_seconds"] for load in r.loads) / len(_quiet_totals(r)) for r in records)


def round_noise(records: list[MeasurementRecord]) -> RoundNoise | None:
    """The pooled round-to-round spread of ``records`` (measurements of one variant), or None
    when no record has two quiet rounds."""
    records = [r for r in records if r.loads and len(_quiet_totals(r)) >= 2]
    time_sd = _pooled_sd([np.log(_quiet_totals(r)) for r in records])
    if time_sd is None:
        return None
    paired = [r for r in records if r.reference_samples]
    speedup_sd = _pooled_sd([np.log(_quiet_totals(r, True) / _quiet_totals(r)) for r in paired]) if paired else None
    return RoundNoise(time_sd, speedup_sd, _round_seconds(records), len(records),
                      sum(len(_quiet_totals(r)) for r in records))


def projected(noise: RoundNoise, minutes: float, tolerances: Tolerances | None, confidence: float = 0.95) -> dict:
    """What a run given ``minutes`` of timing per variant would judge on (the last look that fits),
    the detectable slowdown of each check (noise alone, and against ``tolerances``) and the
    smallest --detect that would stop it there (verdicts.smallest_reachable_detect)."""
    rounds = sequential.last_look(int(minutes * 60 // noise.round_seconds))
    if rounds is None:
        return {"minutes": minutes, "rounds": None}
    level = sequential.look_confidence(confidence)

    def interval(log_sd: float) -> Interval:
        return sequential.log_mean_interval(0.0, log_sd, rounds, level, confidence)

    seconds = interval(noise.time_log_sd)
    speedup = interval(noise.speedup_log_sd) if noise.speedup_log_sd is not None else None
    judged = detectable_by_check(seconds, speedup, tolerances)
    floors = tolerance_floors(tolerances, has_speedup=speedup is not None)
    return {"minutes": minutes, "rounds": rounds, "noise_alone": detectable_by_check(seconds, speedup, None),
            "against_tolerances": judged if tolerances else None,
            "smallest_detect": smallest_reachable_detect(judged, floors)}


def precision_table(noise: RoundNoise, tolerances: Tolerances | None, budgets=BUDGET_MINUTES) -> list[dict]:
    return [projected(noise, minutes, tolerances) for minutes in budgets]
