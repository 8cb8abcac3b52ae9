"""``whisper-perf record``: the baseline from the median of several recording processes."""

import json
import subprocess
import sys

import pytest

from whisper_perf.commands.record import keep_medians, median_index, processes_asked
from whisper_perf.errors import UsageError
from whisper_perf.judge.baselines import BaselineFile, Entry

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
PROTOCOL = {"batch_size": 1, "dataset": "short", "dtype": "float32", "fixed_work": False, "max_new_tokens": 128,
            "utterances": 6}


def test_processes_come_out_of_the_suite_arguments_and_a_bad_count_names_the_option():
    assert processes_asked(["--variant", "eager"]) == (3, ["--variant", "eager"])  # the default
    assert processes_asked(["--processes", "1", "--limit", "2"]) == (1, ["--limit", "2"])
    assert processes_asked(["--limit", "2", "--processes=5"]) == (5, ["--limit", "2"])
    for bad in (["--processes", "0"], ["--processes", "two"], ["--processes"]):
        with pytest.raises(UsageError, match="--processes is the number of recording processes"):
            processes_asked(bad)


def test_the_median_is_kept_the_upper_one_of_two():
    assert median_index([1.10, 1.05, 1.08]) == 2
    assert median_index([1.05, 1.10]) == 1
    assert median_index([4.0]) == 0


def _entry(variant, seconds, speedup=None, **fields):
    return Entry(model="tiny.en", variant=variant, protocol=PROTOCOL, seconds=seconds, wer=0.05, speedup=speedup,
                 provenance={"rounds": 6}, **fields)


def test_each_entry_keeps_the_median_process_and_says_what_the_others_measured():
    """compiled by speedup, eager by seconds, each on its own; an entry the project file holds
    unchanged is not a recording; one that only some processes wrote is not kept."""
    untouched = _entry("compiled-static", 4.0, speedup=1.137)
    target = BaselineFile("cpu-k", "AMD EPYC", entries=[untouched])
    recordings = [BaselineFile("cpu-k", "AMD EPYC", entries=[untouched, *entries]) for entries in (
        [_entry("compiled", 4.6, speedup=1.11), _entry("eager", 5.1)],
        [_entry("compiled", 4.7, speedup=1.05), _entry("eager", 5.3), _entry("compiled-static-prebuilt", 4.1, 1.1)],
        [_entry("compiled", 4.5, speedup=1.08), _entry("eager", 4.9)])]
    said = []
    kept = {e.variant: e for e in keep_medians(recordings, target, said.append)}
    assert set(kept) == {"compiled", "eager"}
    assert kept["compiled"].speedup == 1.08 and kept["eager"].seconds == 5.1
    assert kept["compiled"].provenance == {"rounds": 6, "processes": {"kept": 3, "of": 3, "speedup": [1.11, 1.05, 1.08]}}
    assert kept["eager"].provenance["processes"] == {"kept": 1, "of": 3, "seconds": [5.1, 5.3, 4.9]}
    assert "tiny.en/compiled: speedup 1.110x, 1.050x, 1.080x in processes 1-3: keeping process 3's (1.080x)" in said
    assert "tiny.en/compiled-static-prebuilt: recorded by 1 of 3 processes: not kept" in said


def test_a_recording_of_two_processes_writes_the_median_entry_and_keeps_the_rest_of_the_file(tmp_path):
    """The command as users run it: two suite processes record eager into scratch copies; the
    project's file gains the kept entry, with its notes, tolerances and other entries as they were."""
    folder = tmp_path / "baselines"
    folder.mkdir()
    from whisper_perf.inputs.hardware import detect_hardware

    key = detect_hardware("cpu").key
    other = _entry("compiled", 4.0, speedup=1.1)
    (folder / f"{key}.json").write_text(BaselineFile(key, "cpu", notes="reviewed notes", entries=[other]).to_json())
    done = subprocess.run([sys.executable, "-m", "whisper_perf", "record", "--processes", "2", "--variant", "eager",
                           "--limit", "1", "--rounds", "2", "--max-new-tokens", "8", "--compile-latency", "never",
                           "--busy-threshold", "off", "--baselines", str(folder), "--results-dir", str(tmp_path / "r"),
                           "-k", "not test_diagnostics", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "whisper_perf: recording 2 of 2, into a scratch copy of" in done.stdout
    data = json.loads((folder / f"{key}.json").read_text())
    assert data["notes"] == "reviewed notes" and len(data["entries"]) == 2
    eager = next(e for e in data["entries"] if e["variant"] == "eager")
    processes = eager["provenance"]["processes"]
    assert processes["of"] == 2 and processes["seconds"][processes["kept"] - 1] == eager["seconds"] == max(processes["seconds"])
    assert f"whisper_perf: Recorded baseline {folder / f'{key}.json'} (the median of 2 processes)" in done.stdout
    assert len(list((tmp_path / "r").glob("*/*.json"))) == 2  # each process's results file is kept
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == [f"{key}.json"]  # nothing half-written


def test_a_process_that_fails_leaves_the_baseline_unchanged(tmp_path):
    folder = tmp_path / "baselines"
    done = subprocess.run([sys.executable, "-m", "whisper_perf", "record", "--processes", "2", "--strict-gate",
                           "--baselines", str(folder), "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-3000:]
    assert "--strict-gate gates a judged run; a recording (--record)" in done.stderr
    assert f"Not recording: recording 1 of 2 exited 4 (see above); {folder} is unchanged" in done.stdout
    assert not folder.exists()
