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


def test_the_full_profiles_batched_run_follows_only_where_the_file_chooses_a_size_the_run_can_fill(tmp_path):
    """RunSession.batched_plan on a finished run's state: none without a choice (the note says where
    one is made), none when the run's utterances cannot fill the batch, and never the pipelines."""
    from dataclasses import replace

    from whisper_perf.config import RunConfig
    from whisper_perf.inputs.generation import GenerationSettings
    from whisper_perf.inputs.hardware import cpu_hardware
    from whisper_perf.judge.baselines import Batched, BaselineFile, path_for
    from whisper_perf.measure.timing import Measurement
    from whisper_perf.session import RunSession

    config = RunConfig(models=("tiny.en",), variants=("eager", "compiled", "pipeline"), dataset=None,
                       long_dataset=None, device="cpu", rounds=1, limit=None, settings=GenerationSettings(),
                       baselines=tmp_path, results_dir=tmp_path, profile="full")
    run = RunSession(config)
    run.started, run.hardware = True, cpu_hardware()
    for variant, utterances in (("compiled", 4), ("pipeline", 1)):
        run.measurements[("tiny.en", variant)] = Measurement("tiny.en", variant, None, "short", 1.0, {},
                                                             {f"u{i}": "" for i in range(utterances)})
    path = path_for(tmp_path, run.hardware.key)
    assert run.batched_plan().note.startswith(f"no batched measurement: there is no {path} to choose a batch size")
    run.baseline_file = BaselineFile(run.hardware.key)
    assert run.batched_plan().note.startswith(f"no batched measurement: {path} chooses no batch size for this")
    run.baseline_file.batched = Batched(8, "by hand")
    too_few = run.batched_plan()
    assert too_few.batch_size is None and "measured 4 short-form utterance(s); give --limit 8 or more" in too_few.note
    run.baseline_file.batched = Batched(4, "by hand")
    assert (run.batched_plan().batch_size, run.batched_plan().variants) == (4, ("eager", "compiled"))
    run.config = replace(config, profile="quick")
    assert run.batched_plan() is None
