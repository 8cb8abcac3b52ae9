"""The one command line (whisper_perf.cli): ``whisper-perf <command>``, as the console script and as
``python -m whisper_perf``, in subprocesses as users and the nox sessions run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from whisper_perf.cli import COMMANDS, SUITE

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path = ROOT, program: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run((program or [sys.executable, "-m", "whisper_perf"]) + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_command_and_the_console_script_is_installed():
    script = Path(sys.executable).parent / "whisper-perf"
    assert script.is_file(), "pyproject.toml's [project.scripts] is not installed: pip install -e ."
    for program in ([str(script)], None):
        shown = _run("--help", program=program)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("usage: whisper-perf <command> [options]")
        listed = [line.split()[0] for line in shown.stdout.splitlines() if line.startswith("  ")]
        assert listed == [*SUITE, *COMMANDS] == ["perf", "record", "judge", "upgrade", "bisect", "calibrate",
                                                  "merge", "history", "batch-sweep"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_its_own_help(name):
    shown = _run(name, "--help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"usage: whisper-perf {name} ")


def test_a_wrong_command_line_is_a_usage_error_naming_what_is_wrong(tmp_path):
    nothing = _run()
    assert nothing.returncode == 4 and nothing.stderr.startswith("usage: whisper-perf <command>")
    unknown = _run("benchmark")
    assert unknown.returncode == 4 and "UsageError: no command 'benchmark'" in unknown.stderr
    no_file = _run("judge")
    assert no_file.returncode == 4 and "UsageError: the following arguments are required: results" in no_file.stderr
    elsewhere = _run("perf", cwd=tmp_path)  # the suite lives in the project's perf_tests/
    assert elsewhere.returncode == 4 and f"there is none in {tmp_path}: run it from the project folder" in \
        elsewhere.stderr


def test_perf_runs_the_suite_with_its_options():
    """``whisper-perf perf`` is pytest over perf_tests/ with the suite's plugin (collected only here:
    the suite itself runs in test_suite_e2e)."""
    collected = _run("perf", "--co", "-q", "-p", "no:cacheprovider", "--variant", "eager")
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    assert "perf_tests/test_generate.py::test_generate[tiny.en-eager]" in collected.stdout
    refused = _run("record", "--strict-gate", "-p", "no:cacheprovider")  # record adds --record: refused with it
    assert refused.returncode == 4 and "--strict-gate gates a judged run; a recording (--record)" in refused.stderr


def test_the_full_profile_follows_batch_1_with_the_batch_size_the_baseline_file_chooses(tmp_path):
    """A full-profile ``whisper-perf perf`` at batch 1, on hardware whose baseline file chooses batch 2
    (``batched``), runs the suite again at --batch 2 in a fresh process: two results files, one per
    batch size; where the run's utterances cannot fill the chosen batch, one run, and the terminal
    says why nothing batched was measured."""
    from whisper_perf.inputs.hardware import cpu_hardware
    from whisper_perf.judge.baselines import Batched, BaselineFile, path_for

    key, folder, results = cpu_hardware().key, tmp_path / "baselines", tmp_path / "results"
    folder.mkdir()
    args = ("perf", "-p", "no:cacheprovider", "--profile", "full", "--variant", "eager", "--limit", "2",
            "--rounds", "1", "--max-new-tokens", "8", "--baselines", str(folder), "--results-dir", str(results),
            "--busy-threshold", "off", "-k", "not test_diagnostics")
    path_for(folder, key).write_text(BaselineFile(key, "cpu", batched=Batched(3, "chosen by hand")).to_json())
    too_few = _run(*args)  # 2 utterances cannot fill a batch of 3: said, and nothing follows
    assert too_few.returncode == 0, too_few.stdout[-3000:] + too_few.stderr[-2000:]
    assert "no batched measurement at batch 3" in too_few.stdout and "give --limit 3 or more" in too_few.stdout
    assert len(list((results / key).glob("*.json"))) == 1

    path_for(folder, key).write_text(BaselineFile(key, "cpu", batched=Batched(2, "chosen by hand")).to_json())
    both = _run(*args)
    assert both.returncode == 0, both.stdout[-3000:] + both.stderr[-2000:]
    assert "the full profile's batched measurement: the same run at --batch 2" in both.stdout
    runs = [json.loads(p.read_text()) for p in sorted((results / key).glob("*.json"))]
    assert sorted(r["options"]["batch_size"] for r in runs[1:]) == [1, 2]
    assert all(r["measurements"][0]["setup"]["batch_size"] == r["options"]["batch_size"] for r in runs[1:])
    # one key's batch-1 and batched runs merge as two series, each named with its batch size
    merged = _run("merge", str(results), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr
    rows = [line.split(" | ")[4] for line in (tmp_path / "merged" / "merged.md").read_text().splitlines()
            if line.startswith("| 2")]
    assert sorted(rows) == ["eager", "eager", "eager (batch 2)"], rows
    # a recording records both: entries of batch 1 and batch 2, the file's choice kept
    recorded = _run("record", "--processes", "1", *args[1:])
    assert recorded.returncode == 0, recorded.stdout[-3000:] + recorded.stderr[-2000:]
    stored = json.loads(path_for(folder, key).read_text())
    assert sorted(e["protocol"]["batch_size"] for e in stored["entries"]) == [1, 2]
    assert stored["batched"] == {"batch_size": 2, "why": "chosen by hand"}


def test_the_batched_run_takes_its_batch_size_and_variants_and_writes_its_own_files():
    from whisper_perf.cli import batched_args

    given = ["--junitxml=results/junit.xml", "--variant", "pipeline", "--batch=1", "--variant=compiled", "-k", "x",
             "--benchmark-json", "out/b.json"]
    assert batched_args(given, 16, ("compiled",)) == [
        "--junitxml=results/junit-batch16.xml", "-k", "x", "--benchmark-json=out/b-batch16.json",
        "--batch", "16", "--variant", "compiled"]


def test_two_runs_end_with_the_graver_status():
    from whisper_perf.cli import graver

    assert graver(0, 1) == graver(1, 0) == 1  # a regression in either run
    assert graver(7, 1) == 1 and graver(0, 7) == 7 and graver(1, 5) == 1  # no tests in one hides nothing
    assert graver(1, 4) == 4 and graver(0, -9) == 2 and graver(6, 2) == 2  # killed by a signal: interrupted
