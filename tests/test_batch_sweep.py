"""whisper-perf batch-sweep: the batch size where larger batches stop paying.  Its rule on rows
of known figures, and the command end to end on the real tiny.en (a subprocess, as users run it)."""

import json
import subprocess
import sys

import pytest
from suite_runs import ROOT

from whisper_perf.commands.batch_sweep import Row, choose


def _row(n: int, ms: float, busy: float | None = None) -> Row:
    return Row(batch_size=n, calls=8 // n, seconds_per_utterance=ms / 1e3, reference_seconds_per_utterance=None,
               rtfx=1.0, device_busy=busy, same_ids=8, utterances=8, busy_rounds=0)


def test_the_first_size_that_keeps_the_device_busy_is_chosen():
    rows = [_row(1, 50, 0.2), _row(4, 20, 0.6), _row(16, 9, 0.85), _row(32, 8, 0.93)]
    n, why = choose(rows, busy_target=0.8, min_gain=0.1)
    assert n == 16 and "85%" in why and "busy" in why


def test_without_device_time_the_size_where_the_time_stops_falling_is_chosen():
    # 40 -> 25 ms falls 37.5%, 25 -> 24 ms 4%: batch 4 is where it stops paying
    n, why = choose([_row(8, 24), _row(1, 40), _row(4, 25)], busy_target=0.8, min_gain=0.1)
    assert n == 4 and "device busy not measured here" in why and "4.0%" in why
    # busy measured but never at the target: the same fallback, without claiming it was not measured
    n, why = choose([_row(1, 40, 0.1), _row(4, 25, 0.3), _row(8, 24, 0.4)], busy_target=0.8, min_gain=0.1)
    assert n == 4 and "not measured" not in why


def test_a_time_still_falling_at_the_largest_size_says_to_try_larger():
    n, why = choose([_row(1, 40), _row(2, 30)], busy_target=0.8, min_gain=0.1)
    assert n == 2 and "still falling" in why and "larger sizes" in why


def _sweep(*args):
    return subprocess.run([sys.executable, "-m", "whisper_perf", "batch-sweep", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_the_sweep_measures_each_size_that_fits_and_writes_its_choice(tmp_path):
    """eager at batch 1 and 2 over 2 utterances (batch 3 does not fit and is listed as not
    measured): per size, seconds per utterance, no device-busy claim on a CPU, and the token ids
    of batch 1 at batch 2."""
    out = tmp_path / "sweep"
    done = _sweep("--variant", "eager", "--sizes", "2,1,3", "--limit", "2", "--rounds", "1",
                  "--max-new-tokens", "8", "--min-gain", "0.99", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "batch-sweep.json").read_text())
    rows = data["rows"]
    assert [r["batch_size"] for r in rows] == [1, 2] and [r["calls"] for r in rows] == [2, 1]
    assert all(r["seconds_per_utterance"] > 0 and r["device_busy"] is None and r["speedup"] is None for r in rows)
    assert [r["same_ids"] for r in rows] == [2, 2]
    assert "more than the 2 utterances" in data["not_measured"]["3"]
    # no batch halves the time per utterance, so at --min-gain 0.99 the time stopped falling at batch 1
    assert data["chosen"]["batch_size"] == 1, data["chosen"]
    assert "device busy not measured here; from batch 1 to 2" in data["chosen"]["why"] and "less than 99%" in data["chosen"]["why"]
    report = (out / "batch-sweep.md").read_text()
    assert f"**Chosen: batch {data['chosen']['batch_size']}**" in report and "n/a (no device apart from the host)" in report
    assert f"batch {data['chosen']['batch_size']} chosen" in done.stdout

    again = _sweep("--variant", "eager", "--out", str(out))  # never over an earlier report
    assert again.returncode == 4 and "--out" in again.stderr and "never overwritten" in again.stderr
    bad = _sweep("--sizes", "0,2", "--out", str(tmp_path / "other"))
    assert bad.returncode == 4 and "--sizes" in bad.stderr and not (tmp_path / "other").exists()


def test_write_stores_the_choice_in_the_hardware_baseline_file_and_a_bad_one_is_refused(tmp_path):
    """--write: the choice and why in ``batched`` of the key's file, the tolerances calibrated at that
    batch size and the file's own kept; a ``batched`` field that is not valid is refused on load."""
    from whisper_perf.inputs.hardware import cpu_hardware
    from whisper_perf.judge import baselines
    from whisper_perf.judge.baselines import BaselineError, Batched, BaselineFile, Tolerances

    folder, key = tmp_path / "baselines", cpu_hardware().key
    folder.mkdir()
    path = baselines.path_for(folder, key)
    calibrated = Tolerances(speedup=0.03)
    path.write_text(BaselineFile(key, "cpu", Tolerances(speedup=0.07), batched=Batched(2, "by hand", calibrated)).to_json())
    done = _sweep("--variant", "eager", "--sizes", "2", "--limit", "2", "--rounds", "1", "--max-new-tokens", "8",
                  "--out", str(tmp_path / "sweep"), "--write", "--baselines", str(folder))
    assert done.returncode == 0, done.stderr[-3000:]
    stored = baselines.load(path, key)
    assert stored.tolerances.speedup == 0.07 and stored.batched.tolerances == calibrated
    assert stored.batched.batch_size == 2 and "batch-sweep of tiny.en/eager" in stored.batched.why
    assert f"--- a/{path.name}" in done.stdout and '-    "why": "by hand"' in done.stdout  # the diff, for review

    path.write_text(path.read_text().replace('"batch_size": 2', '"batch_size": 1'))
    with pytest.raises(BaselineError, match=rf"{path}, batched: 'batch_size' must be a whole number of at least 2"):
        baselines.load(path, key)


def test_another_batch_size_drops_the_tolerances_calibrated_at_the_old_one_and_batch_1_removes_the_section(tmp_path,
                                                                                                         capsys):
    from whisper_perf.commands.batch_sweep import write_choice
    from whisper_perf.judge import baselines
    from whisper_perf.judge.baselines import Batched, BaselineFile, Tolerances

    key = "cpu-test"
    path = baselines.path_for(tmp_path, key)
    path.write_text(BaselineFile(key, "cpu", batched=Batched(4, "old", Tolerances(speedup=0.03))).to_json())
    data = {"hardware": {"key": key, "device_name": "cpu"}, "software": {"torch": "t", "transformers": "x"},
            "model": "tiny.en", "variant": "eager", "finished": "2026-12-07T00:00:00+00:00",
            "chosen": {"batch_size": 8, "why": "busy"}}
    write_choice(tmp_path, data)
    assert baselines.load(path, key).batched == Batched(8, "busy (batch-sweep of tiny.en/eager, 2026-12-07, torch t, "
                                                           "transformers x)")
    assert "the tolerances calibrated at batch 4 are dropped" in capsys.readouterr().out
    write_choice(tmp_path, {**data, "chosen": {"batch_size": 1, "why": "busy at 1"}})
    assert baselines.load(path, key).batched is None


def test_a_partial_batched_tolerances_section_takes_the_rest_from_the_file(tmp_path):
    from whisper_perf.judge import baselines
    from whisper_perf.judge.baselines import BaselineFile, Tolerances

    key = "cpu-test"
    path = baselines.path_for(tmp_path, key)
    data = json.loads(BaselineFile(key, "cpu", Tolerances(speedup=0.07, compiled_time=0.2)).to_json())
    path.write_text(json.dumps({**data, "batched": {"batch_size": 4, "tolerances": {"speedup": 0.02}}}))
    loaded = baselines.load(path, key)
    assert loaded.tolerances_of({"batch_size": 4}) == Tolerances(speedup=0.02, compiled_time=0.2)
    assert loaded.tolerances_of({"batch_size": 1}) == loaded.tolerances_of({"batch_size": 8}) == loaded.tolerances
