"""The one command line (whisper_perf.cli): ``whisper-perf <command>``, as the console script and as
``python -m whisper_perf``, in subprocesses as users and the nox sessions run it."""

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
                                                  "merge", "history"]


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
