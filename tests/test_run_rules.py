"""The run's exit-status and recording rules (session.exit_status_of, recording_refused) as the
pure functions they are, and the terminal summary rendered from a real results file (the H100's A/A
run) as the run itself renders it (record.terminal)."""

from pathlib import Path

from whisper_perf.errors import (EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_NOT_JUDGED, EXIT_OK, EXIT_REGRESSION,
                                 EXIT_USAGE)
from whisper_perf.judge.verdicts import Outcome, Verdict
from whisper_perf.record.results import load_run
from whisper_perf.record.terminal import Written, write_summary
from whisper_perf.session import TestFailures as Failures  # "Test..." is not a test class
from whisper_perf.session import exit_status_of, recording_refused

ROOT = Path(__file__).resolve().parents[1]
CUT = ROOT / "docs" / "measurements" / "cuda-sm_90-nvidia-h100-80gb-hbm3" / "20261127T044757.932220Z-2662.json"
JUDGED = [("m", "v", Verdict("speedup", Outcome.PASS, "", speed=True))]
OPEN = [("m", "v", Verdict("compiled time", Outcome.NO_BASELINE, "no baseline", speed=True))]


def _failures(usage=0, environment=0, other=0, unattributed=0) -> Failures:
    return Failures(usage=["bad"] * usage, environment=["no GPU"] * environment, other=other,
                        unattributed=unattributed)


def test_a_run_ends_with_the_documented_exit_status():
    assert exit_status_of(EXIT_OK, _failures(), False, OPEN) == EXIT_OK  # not judged is a skip...
    assert exit_status_of(EXIT_OK, _failures(), True, OPEN) == EXIT_NOT_JUDGED  # ...but not at a gate
    assert exit_status_of(EXIT_OK, _failures(), True, []) == EXIT_NOT_JUDGED  # nothing judged: never green
    assert exit_status_of(EXIT_OK, _failures(), True, JUDGED) == EXIT_OK
    # failures only of bad input or of a missing environment say so, not "regression"
    assert exit_status_of(EXIT_REGRESSION, _failures(usage=1), False, JUDGED) == EXIT_USAGE
    assert exit_status_of(EXIT_REGRESSION, _failures(environment=1), False, JUDGED) == EXIT_ENVIRONMENT
    assert exit_status_of(EXIT_REGRESSION, _failures(usage=1, other=1), False, JUDGED) == EXIT_REGRESSION
    assert exit_status_of(EXIT_INTERRUPTED, _failures(), True, OPEN) == EXIT_INTERRUPTED  # interrupted stays so


def test_a_recording_writes_nothing_when_it_cannot_be_trusted():
    assert recording_refused(EXIT_OK, _failures(), []) is None
    assert recording_refused(EXIT_REGRESSION, _failures(other=1), []) is None  # a variant's own failure: left out
    assert "interrupted" in recording_refused(EXIT_INTERRUPTED, _failures(), [])
    assert "outside any variant" in recording_refused(EXIT_REGRESSION, _failures(other=1, unattributed=1), [])
    assert "outside any variant" in recording_refused(EXIT_USAGE, _failures(usage=1), [])
    busy = recording_refused(EXIT_OK, _failures(), ["tiny.en/compiled"])
    assert "busy while timing tiny.en/compiled" in busy and f"exit {EXIT_NOT_JUDGED}" in busy


class _Reporter:
    """pytest's terminal reporter as the summary uses it: sections and lines, kept."""

    def __init__(self):
        self.lines: list[str] = []

    def section(self, title, **markup):
        self.lines.append(f"== {title} ==")

    def write_line(self, line, **markup):
        self.lines.append(line)


def test_the_terminal_summary_renders_from_the_results_file():
    run = load_run(CUT)
    reporter = _Reporter()
    write_summary(reporter, run, Written(results_path=CUT, reports={"report": CUT.with_suffix(".md")}),
                  strict=True, other_failures=False)
    text = "\n".join(reporter.lines)
    assert "== Whisper generate(): eager vs compiled ==" in text and "compiled-static-prebuilt" in text
    assert f"whisper_perf: results written to {CUT}" in text
    # its speed checks were never judged (a time limit stopped it): the gate says so, and why
    assert f"--strict-gate: no speed check was judged, exit {EXIT_NOT_JUDGED}" in text
    assert reporter.lines[-1] == f"whisper_perf: {run.headline()}"
