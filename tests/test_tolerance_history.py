"""calibrate --write-tolerances holds back a tightened tolerance that an earlier default run of the
same software would fail.  On the Intel host's committed files: its calibration suggested a 2%
speedup tolerance, and a default run half an hour later measured compiled-static 2.9% below the
entry (docs/measured.md)."""

import json
import shutil
from pathlib import Path

import pytest

from whisper_perf.commands.tolerance_history import same_software_default_runs, tolerances_to_write
from whisper_perf.record.results import load_run

ROOT = Path(__file__).resolve().parents[1]
KEY = "cpu-x86_64-avx512-intel-xeon-t2"
MEASURED = ROOT / "docs" / "measurements" / KEY
LATER_RUN = "20261207T131510.996740Z-14756.json"  # compiled-static 1.100x [1.089, 1.110] against 1.133x
FIRST_RUN = "20261207T124706.027020Z-12509.json"  # 1.130x [1.123, 1.138]
RECORDING = "20261207T124220.417735Z-12195.json"  # the recording process whose entries were kept


@pytest.fixture
def project(tmp_path):
    """A project folder holding the committed baseline, with the default tolerances, and three
    results files of that host: two default runs and a recording."""
    data = json.loads((ROOT / "baselines" / f"{KEY}.json").read_text())
    data["tolerances"].update(speedup=0.10, compiled_time=0.15)
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / f"{KEY}.json").write_text(json.dumps(data))
    runs = tmp_path / "results" / "runs" / KEY
    runs.mkdir(parents=True)
    for name in (LATER_RUN, FIRST_RUN, RECORDING):
        shutil.copy(MEASURED / name, runs)
    return tmp_path


@pytest.fixture
def software():
    return load_run(MEASURED / LATER_RUN).software


def test_a_tightened_tolerance_an_earlier_run_would_fail_is_held_back_and_the_run_named(project, software):
    written, held = tolerances_to_write(project, KEY, {"speedup": 0.02, "compiled_time": 0.08}, software)
    assert written == {"compiled_time": 0.08}  # every earlier run's times pass with 8%
    (line,) = held
    assert line.startswith("speedup 2.0% not written (the file keeps 10.0%): it would have flagged 1 check(s)"), line
    assert f"{LATER_RUN}: tiny.en/compiled-static speedup 1.100x" in line, line


def test_a_tolerance_every_earlier_run_passes_is_written_and_a_wider_one_always(project, software):
    assert tolerances_to_write(project, KEY, {"speedup": 0.05}, software) == ({"speedup": 0.05}, [])
    assert tolerances_to_write(project, KEY, {"speedup": 0.12}, software) == ({"speedup": 0.12}, [])


def test_only_default_runs_of_the_same_torch_and_transformers_are_the_record(project, software):
    found = [Path(run.path).name for run in same_software_default_runs(project, KEY, software)]
    assert sorted(found) == [FIRST_RUN, LATER_RUN]  # the recording is not a default run
    other = {**software, "transformers": "5.24.0"}
    assert same_software_default_runs(project, KEY, other) == []
    assert tolerances_to_write(project, KEY, {"speedup": 0.02}, other) == ({"speedup": 0.02}, [])


def test_a_calibration_at_the_batched_size_writes_the_batched_tolerances_and_batch_1_keeps_its_own(project, software):
    """At --batch 2, where the file chooses batch 2 for its batched measurement, the 2% that the
    batch-1 runs refute is written into ``batched``: batch-2 entries are judged with it, batch-1
    entries with the file's 10% as before, so the 13:15 run still passes.  A calibration at a batch
    size the file does not choose is refused before any run, naming the fix."""
    from whisper_perf.commands.tolerance_history import baseline_file, write_tolerances
    from whisper_perf.commands.judge import rejudge
    from whisper_perf.errors import UsageError
    from whisper_perf.judge import baselines

    path = project / "baselines" / f"{KEY}.json"
    with pytest.raises(UsageError, match=r"measures --batch 2, .* the file's is not chosen; choose it with nox -s "
                                         r"batch-sweep -- --write"):
        baseline_file(project, KEY, 2)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "batched": {"batch_size": 2, "why": "by hand"}}))
    with pytest.raises(UsageError, match="measures --batch 4, .* the file's is batch 2"):
        baseline_file(project, KEY, 4)

    written, held = tolerances_to_write(project, KEY, {"speedup": 0.02}, software, batch_size=2)
    assert (written, held) == ({"speedup": 0.02}, [])
    write_tolerances(project, KEY, written, 2)
    stored = baselines.load(path, KEY)
    assert stored.tolerances.speedup == 0.10 and stored.batched.tolerances.speedup == 0.02
    assert stored.tolerances_of({"batch_size": 2}).compiled_time == stored.tolerances.compiled_time  # the rest kept
    assert baselines.lookup(stored, "tiny.en", "compiled", {"batch_size": 2})[1].speedup == 0.02
    assert baselines.lookup(stored, "tiny.en", "compiled", {"batch_size": 1})[1].speedup == 0.10
    later = load_run(project / "results" / "runs" / KEY / LATER_RUN)
    assert not [v for _, _, v in rejudge(later, project / "baselines") if v.outcome.fails]
