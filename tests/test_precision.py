"""The detectable slowdown against timing time (precision.py), projected from measured rounds:
the same intervals the adaptive rounds judge on, at the rounds a budget fits."""

import dataclasses

import numpy as np
import pytest

from test_commands import SAMPLE
from whisper_perf import sequential
from whisper_perf.baselines import Tolerances
from whisper_perf.precision import BUDGET_MINUTES, precision_table, projected, round_noise
from whisper_perf.results import load_run
from whisper_perf.stats import detectable_speedup_loss, detectable_time_increase


def _record(rounds: int, seed: int = 0):
    """The sample's compiled measurement with ``rounds`` synthetic quiet rounds of 6 utterances:
    eager ~1.1 s and compiled ~1.0 s per call, each round's calls moved together by drift."""
    m = load_run(SAMPLE).measurement("tiny.en", "compiled")
    rng = np.random.default_rng(seed)
    drift = np.exp(rng.normal(0, 0.03, size=rounds))
    passes = lambda base: [[[f"u{u}", float(base * d * rng.lognormal(0, 0.02)), 20] for u in range(6)]  # noqa: E731
                           for d in drift]
    return dataclasses.replace(m, samples=passes(1.0), reference_samples=passes(1.1),
                               loads=[{"busy": False}] * rounds, summary=dataclasses.replace(m.summary, adaptive=None))


def test_the_projection_at_a_look_is_the_sequential_interval_of_that_many_rounds():
    record = _record(8)
    noise = round_noise([record])
    assert noise.measurements == 1 and noise.rounds == 8 and noise.round_seconds_source == "timed calls"
    assert noise.round_seconds == pytest.approx(6 * 2.1, rel=0.1)
    minutes = 8.5 * noise.round_seconds / 60  # 8 rounds fit: the look at 8
    row = projected(noise, minutes, Tolerances(speedup=0.10, compiled_time=0.38))
    assert row["rounds"] == 8
    seconds = sequential.total_interval(record.seconds_table())
    speedup = sequential.speedup_interval(record.seconds_table(True), record.seconds_table())
    assert row["noise_alone"]["time"] == pytest.approx(detectable_time_increase(seconds, 0.0))
    assert row["noise_alone"]["speedup"] == pytest.approx(detectable_speedup_loss(speedup, 0.0))
    assert row["against_tolerances"]["speedup"] == pytest.approx(detectable_speedup_loss(speedup, 0.10))


def test_more_time_means_a_later_look_and_a_sharper_verdict():
    noise = round_noise([_record(6, seed) for seed in range(4)])  # pooled over four runs
    assert noise.measurements == 4 and noise.rounds == 24
    assert noise.time_log_sd == pytest.approx(0.03, rel=0.5)
    table = precision_table(noise, None, budgets=(0.5, 2, 4, 8, 16))
    assert table[0]["rounds"] is None  # 30 s fit fewer than 5 rounds of ~12.6 s: no look
    rounds = [row["rounds"] for row in table[1:]]
    assert rounds == [sequential.last_look(int(m * 60 // noise.round_seconds)) for m in (2, 4, 8, 16)]
    widths = [row["noise_alone"]["time"] for row in table[1:]]
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0] / 2
    assert all(row["against_tolerances"] is None for row in table[1:])  # no tolerances given
    assert BUDGET_MINUTES == (1, 2, 4, 8)


def test_busy_rounds_are_left_out_and_too_few_rounds_give_no_projection():
    record = _record(4)
    busy = dataclasses.replace(record, loads=[{"busy": True}] * 3 + [{"busy": False}])
    assert round_noise([busy]) is None  # one quiet round has no spread
    two_quiet = dataclasses.replace(record, loads=[{"busy": True}, {"busy": False}, {"busy": True}, {"busy": False}])
    assert round_noise([two_quiet]).rounds == 2
