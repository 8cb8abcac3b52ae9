"""--detect: rounds until the verdict is sharp enough, or the budget ends; the suite as a subprocess
on the real tiny.en (the eager variant: no compile, so a run takes seconds)."""

import json

import pytest
from suite_runs import run_suite

from whisper_perf.judge.adaptive import Adaptive
from whisper_perf.judge.baselines import Tolerances
from whisper_perf.judge.sequential import LOOKS
from whisper_perf.judge.stats import Interval
from whisper_perf.judge.verdicts import (adaptive_target, detectable_by_check, smallest_reachable_detect,
                                         tolerance_floors)


def _run(tmp_path, *options, limit="2"):
    """The eager variant, its rounds' spread kept small on a machine doing other work too: one torch
    thread, so that the other work takes the other core instead of stalling ours."""
    runs = tmp_path / "runs"
    result = run_suite("--variant", "eager", "--limit", limit, "--baselines", str(tmp_path / "no-baselines"),
                       "--results-dir", str(runs), *options, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.output[-3000:]
    (path,) = runs.glob("*/*.json")
    (m,) = json.loads(path.read_text())["measurements"]
    return result, m


def test_rounds_go_on_until_the_budget_ends_and_the_run_says_what_it_reached(tmp_path):
    # short rounds (one utterance, 8 tokens), so that several looks fit in the budget on a slow machine
    result, m = _run(tmp_path, "--detect", "0.001", "--max-minutes", "0.4", "--max-new-tokens", "8", limit="1")
    adaptive = m["summary"]["adaptive"]
    note = adaptive["note"]
    assert note.startswith("would detect a slowdown of ") and ", asked for 0.1%: the machine was too noisy within " \
        "0.4 min (after " in note
    rounds = m["summary"]["rounds_used"]
    assert rounds in LOOKS and rounds > LOOKS[0] and len(m["samples"]) >= rounds  # judged on its last look
    # every look is recorded: rounds, minutes and each check's detectable slowdown, narrowing as rounds add up
    looks = adaptive["looks"]
    assert [look["rounds"] for look in looks] == [n for n in LOOKS if n <= rounds]
    assert looks[-1]["detectable"]["time"] == pytest.approx(adaptive["reached"]) and not adaptive["met"]
    assert adaptive["rounds"] == rounds and adaptive["asked"] == 0.001 and adaptive["seconds"] >= looks[-1]["seconds"]
    assert f"timing eager: {note}" in result.stdout  # said live, as it happened
    assert m["summary"]["seconds"]["confidence"] == 0.95


def test_a_target_met_stops_at_the_first_look_that_meets_it(tmp_path):
    """--detect 0.9, which the first look (5 rounds) meets on a quiet machine.  Beside another test
    the rounds can slow as that test's load grows (1.4 s to 1.9 s once, 94% detectable at 5 rounds,
    64% at 6): the run then goes on to the next look, and stops at the first one that meets it."""
    result, m = _run(tmp_path, "--detect", "0.9")
    adaptive = m["summary"]["adaptive"]
    looks = adaptive["looks"]
    met = [all(d <= 0.9 for d in look["detectable"].values()) for look in looks]
    assert met[-1] and not any(met[:-1]), looks  # it stopped at the first look that met the target
    assert [look["rounds"] for look in looks] == list(LOOKS[:len(looks)])
    rounds = looks[-1]["rounds"]
    assert m["summary"]["rounds_used"] == rounds == len(m["samples"])
    assert adaptive["met"] and adaptive["reached"] <= 0.9
    assert adaptive["note"].endswith(f"asked for 90%: reached after {rounds} rounds, {adaptive['note'].split(', ')[-1]}")


def test_adaptive_options_are_checked_before_any_work():
    result = run_suite("--max-minutes", "2")
    assert result.returncode == 4 and "--max-minutes bounds the adaptive rounds of --detect; give --detect too" \
        in result.output
    result = run_suite("--detect", "5")
    assert result.returncode == 4 and "--detect is the slowdown to be able to detect, a fraction in (0, 1)" \
        in result.output


def test_detectable_slowdown_is_the_weakest_check_and_the_tolerances_set_its_floor():
    seconds, speedup = Interval(2.0, 1.96, 2.04, 0.95, 0.01), Interval(1.5, 1.47, 1.53, 0.95, 0.01)
    tolerances = Tolerances(speedup=0.10, compiled_time=0.15)
    # 95% power adds 1.645 standard errors (e^0.01645 = 1.0166): time (1 + 0.15) x 1.0166 / (1 - 0.02) - 1
    # = 19.3%; speedup (1 + 0.02) x 1.0166 / (1 - 0.10) - 1 = 15.2%
    by_check = detectable_by_check(seconds, speedup, tolerances)
    assert by_check == pytest.approx({"time": 0.1929, "speedup": 0.1521}, abs=1e-3)
    assert max(detectable_by_check(seconds, speedup, None).values()) == pytest.approx(0.0373, abs=1e-3)  # width alone
    assert tolerance_floors(tolerances, has_speedup=True) == pytest.approx({"time": 0.15, "speedup": 1 / 0.9 - 1})
    assert tolerance_floors(None, has_speedup=False) == {"time": 0.0}


def test_each_check_is_driven_to_its_own_target_not_the_loosest_floor():
    """A loose time tolerance (38%) must not let the speedup check stop blunt: each check's target
    comes from its own floor."""
    floors = tolerance_floors(Tolerances(speedup=0.10, compiled_time=0.38), has_speedup=True)
    adaptive = Adaptive(0.05, 240, lambda m: {}, floors)
    assert adaptive.target("time") == pytest.approx(0.405) and adaptive.target("speedup") == pytest.approx(1 / 0.9 - 1 + 0.025)
    assert not adaptive.met({"time": 0.40, "speedup": 0.20})  # under the loosest target, not under its own
    assert adaptive.met({"time": 0.40, "speedup": 0.13})
    assert Adaptive(0.05, 240, lambda m: {}, {"time": 0.0}).target("time") == 0.05


def test_a_coarser_detect_never_asks_for_more_and_the_reachable_detect_is_exact():
    floor = 1 / 0.9 - 1
    grid = [i / 1000 for i in range(1, 400)]
    targets = [adaptive_target(f, floor) for f in grid]
    assert targets == sorted(targets) and all(t >= f for t, f in zip(targets, grid))
    assert adaptive_target(0.30, floor) == 0.30 and adaptive_target(0.10, floor) == pytest.approx(floor + 0.05)
    floors = {"time": 0.38, "speedup": floor}
    for found in ({"time": 0.47, "speedup": 0.16}, {"time": 0.39, "speedup": 0.40}, {"time": 0.02, "speedup": 0.03}):
        least = smallest_reachable_detect(found, floors)
        assert Adaptive(least + 1e-9, 240, lambda m: {}, floors).met(found)
        assert not Adaptive(least - 1e-6, 240, lambda m: {}, floors).met(found)
