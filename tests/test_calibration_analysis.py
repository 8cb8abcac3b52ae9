"""nox -s calibrate's analysis and report, on the committed sample run (results_sample.py):
detections, false alarms, suggested tolerances, the device-time section, and --write-tolerances.
Nothing here times or compiles a model (the command end to end: test_calibration.py)."""

import argparse
import dataclasses
import re

import pytest
from results_sample import KEY, ROOT, SAMPLE, as_default_run, copy_sample

from whisper_perf.commands import calibrate, calibration_analysis, calibration_report, tolerance_history
from whisper_perf.errors import UsageError
from whisper_perf.judge import baselines
from whisper_perf.judge.baselines import BaselineFile, Entry, Tolerances
from whisper_perf.judge.device_verdicts import device_verdicts
from whisper_perf.record.results import VerdictRecord, load_run


@pytest.fixture
def run():
    return load_run(SAMPLE)


def test_time_checks_are_named_as_the_verdicts_name_them(run):
    compiled = run.measurement("tiny.en", "compiled")
    checks = {v.check for v in run.verdicts_of("tiny.en", "compiled")}
    assert checks & calibrate.time_checks(compiled) == {"compiled time", "eager time (reference)"}
    assert "speedup" not in calibrate.time_checks(compiled) and "wer" not in calibrate.time_checks(compiled)


def test_write_tolerances_without_a_baseline_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=re.escape(f"{tmp_path / 'baselines' / KEY}.json does not exist: record")):
        tolerance_history.write_tolerances(tmp_path, KEY, {"speedup": 0.05})


def test_write_tolerances_changes_the_tolerances_alone_and_shows_the_diff(tmp_path):
    entry = Entry(model="tiny.en", variant="compiled", protocol={"utterances": 6}, seconds=1.5, wer=0.05)
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / f"{KEY}.json").write_text(BaselineFile(KEY, entries=[entry]).to_json())
    diff = tolerance_history.write_tolerances(tmp_path, KEY, {"speedup": 0.05, "compiled_time": 0.08})
    assert '-    "speedup": 0.1' in diff and '+    "speedup": 0.05' in diff
    stored = baselines.load(tmp_path / "baselines" / f"{KEY}.json", KEY)
    assert (stored.tolerances.speedup, stored.tolerances.compiled_time) == (0.05, 0.08)
    assert stored.entries == [entry]  # the recorded entries are kept as they were


def _calibration(run, runs: int = 3) -> calibrate.Calibration:
    args = argparse.Namespace(variant="compiled", slowdown=1.0, record_runs=3, limit=3, rounds=3)
    cal = calibrate.Calibration(ROOT, ROOT, args, KEY, Tolerances())
    cal.runs = [calibrate.Run("check", i, 60.0, 1, run) for i in range(runs)]
    return cal


def _baseline_of(run) -> Entry:
    """A baseline equal to the A/A measurement itself."""
    m = run.measurement("tiny.en", "compiled")
    return Entry("tiny.en", "compiled", m.protocol, seconds=m.summary.seconds.estimate, wer=m.summary.wer,
                 speedup=m.summary.speedup.estimate, machine_probe_ms=m.summary.machine_probe_ms)


def test_calibration_counts_detections_false_alarms_and_suggests_tolerances(run):
    cal = _calibration(run)
    a = calibration_analysis.analyse(cal, "compiled", _baseline_of(run), None)
    assert a["runs"]["A/A"] == a["runs"]["slowed"] == 3 and a["runs"]["unreliable_A/A"] == 0
    assert a["false_alarms"] == 0 and a["detected_by_speedup"] == a["detected_by_any_check"] == 3
    assert a["slowed_speedups"] == [pytest.approx(0.5505, abs=1e-4)] * 3
    # three identical runs: no spread, so the floors (2% speedup, 5% time) are suggested
    assert a["suggested_tolerances"] == {"speedup": 0.02, "compiled_time": 0.05}
    assert a["detected_with_suggested"] == 3  # credibly below 1.09x x (1 - 2%)
    assert a["noise"]["run_to_run_cv_speedup"] == 0
    text = calibration_report.render(a, cal, 12.5)
    assert "| 100% slowdown caught by the speedup verdict | 3 of 3 (100.0%) |" in text
    # each slowed run's speedup verdict said it could detect a 100% slowdown, and each caught it
    assert a["stated_power"] == {"could": 3, "caught_of_could": 3, "could_not": 0, "caught_of_could_not": 0}
    assert "| slowed runs whose speedup verdict said it could detect 100%: caught | 3 of 3 |" in text
    assert "| suggested tolerances | speedup 2.0%, time 5.0% |" in text
    assert "no default run found in results/runs" in text


def test_calibration_reports_the_latest_default_run(tmp_path, run):
    copy_sample(tmp_path / "results" / "runs", "sensitivity")
    assert calibration_analysis.latest_default_run(tmp_path, KEY) is None
    copy_sample(tmp_path / "results" / "runs", "default", as_default_run)
    default = calibration_analysis.latest_default_run(tmp_path, KEY)
    assert default.path.name == "default.json"
    a = calibration_analysis.analyse(_calibration(run), "compiled", _baseline_of(run), default)
    assert a["default_run_detectable"]["compiled"]["file"] == "default.json"
    assert "(compiled, 3 utterances, 3 rounds; default.json), suggested tolerance |" in calibration_report.render(
        a, _calibration(run), 1.0)


def _on_a_gpu(run, index: int, entry: Entry, tolerances: Tolerances):
    """The sample run as a GPU run's results file holds it: each build's profiled calls with their
    device-busy rounds (5 per build, alternating), the A/A variant ~10 ms per call drifting 0.2%
    from run to run, its twin slowed 10% on the device, eager 30 ms; and the run's device-time
    verdicts as the suite's own judge gives them against ``entry``.  No GPU run has recorded device
    rounds yet: these are the shape and size such a run writes, not measured figures."""
    drift = 1 + 0.002 * index
    busy = {"compiled": [10.00, 10.02, 9.99, 10.01, 10.03], "compiled+slowed": [11.0, 11.02, 10.99, 11.01, 11.03]}
    measurements, verdicts = [], list(run.verdicts)
    for m in run.measurements:
        if m.variant not in busy:
            continue
        profile = {"device_busy_rounds_ms": [ms * drift for ms in busy[m.variant]], "calls_profiled": 5}
        reference = {"device_busy_rounds_ms": [30.0 * drift + 0.01 * i for i in range(5)], "calls_profiled": 5}
        diagnostics = dataclasses.replace(m.diagnostics, variant={"profile": profile},
                                          reference={"profile": reference})
        measurements.append(dataclasses.replace(m, diagnostics=diagnostics))
        verdicts += [VerdictRecord(m.model, m.variant, v) for v in device_verdicts(
            diagnostics.variant, diagnostics.reference, entry, tolerances, on_cuda=True, compiled=True,
            record_hint="nox -s record")]
    return dataclasses.replace(run, measurements=measurements, verdicts=verdicts)


def test_calibration_judges_device_time_from_the_runs_profiled_rounds(run):
    """On a GPU the calibration also counts the device-time checks' false alarms and detections, the
    spread of device time between runs, and suggests a device-time tolerance (kept with the others
    by --write-tolerances); on a CPU (the sample as it is) there is no such section."""
    entry = dataclasses.replace(_baseline_of(run), diagnostics={"device_busy_ms": 10.01, "device_speedup": 3.0})
    cpu = calibration_analysis.analyse(_calibration(run), "compiled", entry, None)
    assert cpu["device_time"] is None and "device_time" not in cpu["suggested_tolerances"]
    assert "## Device time" not in calibration_report.render(cpu, _calibration(run), 1.0)
    tolerances = Tolerances(device_time=0.05)
    cal = _calibration(run)
    cal.args.slowdown, cal.args.inject_on = 0.10, "device"
    cal.runs = [calibrate.Run("check", i, 60.0, 1, _on_a_gpu(run, i, entry, tolerances)) for i in range(3)]
    a = calibration_analysis.analyse(cal, "compiled", entry, None)
    device = a["device_time"]
    assert device["false_alarms"] == 0 and device["caught"] == 3  # 10% on the device, tolerance 5%
    assert device["aa_ms"] == [pytest.approx(10.01 * (1 + 0.002 * i), abs=0.005) for i in range(3)]
    assert 0.001 < device["run_to_run_cv_ms"] < 0.003  # the 0.2% drift between runs
    assert device["aa_speedups"][0] == pytest.approx(3.0, abs=0.01)
    assert device["injected_measured"] == pytest.approx(0.10, abs=0.001)  # the twin's busy 11 ms against 10
    assert a["kept_for_lack_of_runs"] == []  # three judged A/A runs behind every suggestion
    assert device["detectable_median"] < 0.06  # the tolerance plus very little noise
    # no A/A run reaches 1% above the baseline: the floor, and the 10% slowdown is still caught under it
    assert a["suggested_tolerances"]["device_time"] == device["suggested_tolerance"] == 0.01
    assert device["caught_with_suggested"] == 3
    text = calibration_report.render(a, cal, 8.0)
    assert "## Device time" in text and "injected on the device (an extra kernel per decode step)" in text
    assert "| false alarms (A/A runs with a failing device-time check) | 0 of 3 |" in text
    assert "| 10% slowdown caught by a device-time check | 3 of 3 |" in text
    assert ", device time 1.0% |" in text  # in the suggested tolerances, which --write-tolerances stores
