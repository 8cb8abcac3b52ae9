"""The detectable slowdown against timing time (precision.py), projected from measured rounds:
the same intervals the adaptive rounds judge on, at the rounds a budget fits."""

import dataclasses

import numpy as np
import pytest
from test_commands import SAMPLE

from whisper_perf.commands.precision import BUDGET_MINUTES, precision_table, projected, round_noise
from whisper_perf.judge import sequential
from whisper_perf.judge.adaptive import Adaptive
from whisper_perf.judge.baselines import Tolerances
from whisper_perf.judge.stats import detectable_speedup_loss, detectable_time_increase
from whisper_perf.judge.verdicts import tolerance_floors
from whisper_perf.record.results import load_run


def _record(rounds: int, seed: int = 0):
    """The sample's compiled measurement with ``rounds`` synthetic quiet rounds of 6 utterances:
    eager ~1.1 s and compiled ~1.0 s per call, each round's calls moved together by drift."""
    m = load_run(SAMPLE).measurement("tiny.en", "compiled")
    rng = np.random.default_rng(seed)
    drift = np.exp(rng.normal(0, 0.03, size=rounds))
    passes = lambda base: [[[f"u{u}", float(base * d * rng.lognormal(0, 0.02)), 20] for u in range(6)]  # noqa: E731
                           for d in drift]
    return dataclasses.replace(m, samples=passes(1.0), reference_samples=passes(1.1),
                               loads=[{"busy": False, "wall_seconds": 13.0}] * rounds)


def test_the_projection_at_a_look_is_the_sequential_interval_of_that_many_rounds():
    record = _record(8)
    noise = round_noise([record])
    assert noise.measurements == 1 and noise.rounds == 8 and noise.round_seconds == 13.0  # the rounds' wall time
    minutes = 8.5 * noise.round_seconds / 60  # 8 rounds fit: the look at 8
    row = projected(noise, minutes, Tolerances(speedup=0.10, compiled_time=0.38))
    assert row["rounds"] == 8
    seconds = sequential.total_interval(record.seconds_table())
    speedup = sequential.speedup_interval(record.seconds_table(True), record.seconds_table())
    assert row["noise_alone"]["time"] == pytest.approx(detectable_time_increase(seconds, 0.0))
    assert row["noise_alone"]["speedup"] == pytest.approx(detectable_speedup_loss(speedup, 0.0))
    assert row["against_tolerances"]["speedup"] == pytest.approx(detectable_speedup_loss(speedup, 0.10))
    # the smallest --detect those detectable slowdowns meet (verdicts.adaptive_target's rule)
    floors = tolerance_floors(Tolerances(speedup=0.10, compiled_time=0.38), has_speedup=True)
    assert Adaptive(row["smallest_detect"] + 1e-9, 60, None, floors).met(row["against_tolerances"])
    assert not Adaptive(row["smallest_detect"] - 1e-4, 60, None, floors).met(row["against_tolerances"])


def test_more_time_means_a_later_look_and_a_sharper_verdict():
    noise = round_noise([_record(6, seed) for seed in range(4)])  # pooled over four runs
    assert noise.measurements == 4 and noise.rounds == 24
    assert noise.time_log_sd == pytest.approx(0.03, rel=0.5)
    table = precision_table(noise, None, budgets=(0.5, 2, 4, 8, 16))
    assert table[0]["rounds"] is None  # 30 s fit fewer than 5 rounds of 13 s: no look
    rounds = [row["rounds"] for row in table[1:]]
    assert rounds == [sequential.last_look(int(m * 60 // noise.round_seconds)) for m in (2, 4, 8, 16)]
    widths = [row["noise_alone"]["time"] for row in table[1:]]
    assert widths[-1] < widths[0] / 2  # 64 rounds against 8
    assert all(row["against_tolerances"] is None for row in table[1:])  # no tolerances given
    assert [row["smallest_detect"] for row in table[1:]] == [max(row["noise_alone"].values()) for row in table[1:]]
    assert BUDGET_MINUTES == (1, 2, 4, 8)


def test_busy_rounds_are_left_out_and_too_few_rounds_give_no_projection():
    record = _record(4)
    loads = lambda *busy: [{"busy": b, "wall_seconds": 10.0} for b in busy]  # noqa: E731
    assert round_noise([dataclasses.replace(record, loads=loads(True, True, True, False))]) is None  # one quiet round
    noise = round_noise([dataclasses.replace(record, loads=loads(True, False, True, False))])
    assert noise.rounds == 2 and noise.round_seconds == 20.0  # the busy rounds' time is spent too
    quiet = np.log([sum(r) for r in record.seconds_table()])[[1, 3]]
    assert noise.time_log_sd == pytest.approx(np.std(quiet, ddof=1))


def test_a_results_file_of_an_older_version_keeps_its_adaptive_note():
    from whisper_perf.judge.summary import Summary

    data = load_run(SAMPLE).measurement("tiny.en", "compiled").summary.as_dict()
    assert Summary.from_dict({**data, "adaptive": "would detect 4.1%"}).adaptive == {"note": "would detect 4.1%"}
