"""nox -s calibrate as users run it (the command in a subprocess, the suite in its own pytest
processes, the real tiny.en and torch.compile): recordings, adaptive check runs, the report, and
--report of a finished calibration."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_calibration_reports_false_alarms_detections_and_suggested_tolerances(tmp_path):
    """nox -s calibrate's command, shortened: one recording run (the median of several is
    `record`'s rule, tested in test_record.py) and two check runs asked, of which a budget of
    0.01 minutes holds the first only, with adaptive rounds (A/A + a twin slowed 2x, which any
    verdict must catch), on the real model, in separate processes; then --report of its folder."""
    command = [sys.executable, "-m", "whisper_perf.commands.calibrate", "--root", str(ROOT)]
    result = subprocess.run(command + ["--runs", "2", "--budget-minutes", "0.01", "--record-runs", "1", "--limit", "1",
                                       "--rounds", "2",
                                       "--slowdown", "1.0", "--detect", "0.9", "--out", str(tmp_path / "cal"),
                                       "--", "--busy-threshold", "off"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    written = Path(re.search(r"Written to (\S+)", result.stdout).group(1))
    folder = written.parent
    assert written.name == "calibration.md" and folder == tmp_path / "cal"  # not the project's results/
    report = (folder / "calibration.md").read_text()
    data = json.loads((folder / "calibration.json").read_text())
    analysis = data["analysis"]
    assert analysis["runs"]["A/A"] == 1 and analysis["runs"]["slowed"] == 1  # the budget held the first run only
    assert "1 of 2 check runs: --budget-minutes 0.01 would not hold another" in report
    assert "(speedup, time: the tolerance in effect, since fewer than 3 judged A/A runs show no run-to-run spread)" in report
    assert analysis["detected_by_speedup"] == 1  # twice as slow cannot be missed
    assert analysis["slowed_speedups"][0] < 0.7 * analysis["baseline"]["speedup"]
    assert "| 100% slowdown caught by the speedup verdict | 1 of 1 (100.0%) |" in report
    assert "suggested tolerances" in report and "smallest detectable slowdown" in report
    assert len(list((folder / "runs").glob("*/*/*.json"))) == 2
    # the baseline every check run was judged against is the recording, byte for byte
    (recording,) = [json.loads(p.read_text()) for p in (folder / "recordings").glob("*/*.json")]
    kept = json.loads(next((folder / "baselines").glob("*.json")).read_text())
    assert kept == recording
    assert analysis["baseline"]["speedup"] == next(e["speedup"] for e in recording["entries"] if e["variant"] == "compiled")
    # the check run took adaptive rounds: from the first look (5) on, until it could detect 90%
    # (the stop at the first look itself: test_adaptive.py)
    assert analysis["adaptive"]["A/A"]["met"] == analysis["adaptive"]["slowed"]["met"] == 1
    assert analysis["adaptive"]["A/A"]["rounds"][0] >= 5
    assert "| measurements that reached the target | 1 of 1 | 1 of 1 |" in report
    # ... and the projection of the detectable slowdown against timing time narrows with time
    table = analysis["precision"]["table"]
    assert [row["minutes"] for row in table] == [1, 2, 4, 8]
    alone = [row["noise_alone"]["speedup"] for row in table if row["rounds"]]
    assert alone and alone == sorted(alone, reverse=True)
    assert "## Detectable slowdown by timing budget" in report
    # --report measures nothing and reports the same runs again, beside the first report
    again = subprocess.run(command + ["--report", str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    (second,) = folder.glob("report-*.md")
    assert second.read_text() == report == (folder / "calibration.md").read_text()
    assert json.loads(second.with_suffix(".json").read_text())["analysis"] == analysis
    # --write-tolerances stores the suggestion in the project's file (no earlier default run there
    # to hold one back: test_tolerance_history.py) and prints the diff
    project = tmp_path / "project" / "baselines"
    project.mkdir(parents=True)
    (kept_file,) = (folder / "baselines").glob("*.json")
    shutil.copy(kept_file, project)
    written = subprocess.run([sys.executable, "-m", "whisper_perf.commands.calibrate", "--root", str(project.parent),
                              "--report", str(folder), "--write-tolerances"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, (written.stdout + written.stderr)[-4000:]
    stored = json.loads((project / kept_file.name).read_text())["tolerances"]
    assert analysis["suggested_tolerances"] and all(stored[k] == v for k, v in analysis["suggested_tolerances"].items())
    assert "not written" not in written.stdout
    for wrong, said in ((["--report", str(tmp_path)], f"--report {tmp_path}: no calibration.json there"),
                        (["--report", str(folder), "--runs", "3"], "--report measures nothing: --runs would not apply"),
                        (["--out", str(folder)], f"--out {folder}: exists and is not an empty folder")):
        refused = subprocess.run(command + wrong, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 4 and said in refused.stderr, refused.stderr


def test_on_a_gpu_the_defaults_fit_a_short_lease_of_the_device_and_given_options_are_kept():
    """On a CPU the hour-long defaults; on a GPU one recording and three check runs (the fewest that
    suggest tolerances) within 8 minutes, slowed 5% on the device; an option given is never replaced."""
    from whisper_perf.commands import calibrate, calibration_options

    for on_cuda, expected in ((False, (20, 3, 6, None, 0.15, "host")), (True, (3, 1, 16, 8.0, 0.05, "device"))):
        args = calibrate._parser().parse_args([])
        calibration_options.with_device_defaults(args, on_cuda)
        assert (args.runs, args.record_runs, args.limit, args.budget_minutes, args.slowdown, args.inject_on) == expected
    given = calibrate._parser().parse_args(["--runs", "5", "--budget-minutes", "12"])
    calibration_options.with_device_defaults(given, True)
    assert (given.runs, given.record_runs, given.budget_minutes) == (5, 1, 12.0)


def test_the_budget_holds_a_further_check_run_only_if_one_as_long_as_the_longest_fits():
    from whisper_perf.commands import calibrate

    args = calibrate._parser().parse_args(["--budget-minutes", "10"])
    record, check = calibrate.Run("record", 0, 120.0, 0), calibrate.Run("check", 0, 180.0, 0)
    assert calibrate.budget_holds(args, 9.9, [record])  # the first check run always starts
    assert calibrate.budget_holds(args, 7.0, [record, check])  # 7 min + the longest run, 3 min: 10
    assert not calibrate.budget_holds(args, 7.1, [record, check])
    assert calibrate.budget_holds(calibrate._parser().parse_args([]), 1e6, [record, check])  # no budget
