"""The run's last words in the terminal (pytest's terminal summary), rendered from its RunResult as
the Markdown report is: what failed, what was not timed, the timings, the diagnostics, the verdicts,
what was recorded and written, and the headline."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import EXIT_NOT_JUDGED
from ..judge.verdicts import nothing_judged, speed_not_judged
from .report import diagnostics_table, measurement_table, verdict_table
from .results import RunResult


@dataclass(frozen=True)
class Written:
    """What the end of a run wrote: the recorded baseline ((path, diff) or None), the results file and
    the reports (name -> path)."""

    recorded: tuple | None = None
    results_path: object = None
    reports: dict = field(default_factory=dict)


def write_summary(reporter, run: RunResult, written: Written, *, strict: bool, other_failures: bool,
                  batched: str | None = None) -> None:
    """``reporter``: pytest's terminal reporter (section, write_line).  ``other_failures``: tests failed
    for a reason other than the gate (then --strict-gate's own line is not the news).  ``batched``: what
    the full profile's batched measurement will be (RunSession.batched_plan)."""
    _not_timed(reporter, run)
    if run.measurements:
        reporter.section("Whisper generate(): eager vs compiled")
        reporter.write_line(measurement_table(run.measurements))
    diagnostics = diagnostics_table(run.measurements)
    if diagnostics:
        reporter.section("Diagnostics (details: the run's .md report)")
        reporter.write_line(diagnostics)
    verdicts = [(r.model, r.variant, r.verdict) for r in run.verdicts]
    if verdicts:
        reporter.section("Verdicts against baselines")
        reporter.write_line(verdict_table(verdicts))
    _written(reporter, written)
    if strict and not other_failures:
        _strict_gate(reporter, verdicts)
    if batched:
        reporter.write_line(f"whisper_perf: {batched}", yellow=batched.startswith("no "))
    tally = run.tally()  # the last word: what was judged, and what was not
    unrecorded = bool(run.options.get("record")) and not written.recorded
    reporter.write_line(f"whisper_perf: {run.headline()}", red=bool(tally.failed),
                        yellow=not tally.failed and (bool(tally.not_judged or tally.changed) or unrecorded
                                                     or run.headline().startswith("NOTHING")),
                        bold=True)


def _not_timed(reporter, run: RunResult) -> None:
    if run.failures:
        reporter.section("Variants that failed", red=True)
        for failure in run.failures:
            reporter.write_line(f"{failure.stage}: {failure.error}", red=True)
    if run.skipped or run.unreached():
        reporter.section("Variants not timed", yellow=True)
        for skip in run.skipped:
            reporter.write_line(f"skipped: {skip.model}/{skip.variant}: {skip.reason}", yellow=True)
        for model, variant in run.unreached():
            reporter.write_line(f"never reached (the run was interrupted): {model}/{variant}", yellow=True)


def _written(reporter, written: Written) -> None:
    if written.recorded:
        path, diff = written.recorded
        reporter.section(f"Recorded baseline {path}")
        reporter.write_line(diff or "(no change)")
        reporter.write_line("Review it with `git diff` and commit it.")
    if written.results_path:
        reporter.write_line(f"whisper_perf: results written to {written.results_path}")
        for name, path in written.reports.items():
            reporter.write_line(f"whisper_perf: {name} written to {path}")


def _strict_gate(reporter, verdicts: list) -> None:
    """Why --strict-gate ends the run with exit 7 (verdicts.strict_gate_refuses), if it does."""
    not_judged = speed_not_judged(verdicts)
    if not_judged:
        reporter.write_line(f"whisper_perf: --strict-gate: speed checks not judged, exit {EXIT_NOT_JUDGED}: "
                            + "; ".join(not_judged), red=True)
    elif nothing_judged(verdicts):
        reporter.write_line(f"whisper_perf: --strict-gate: no speed check was judged, exit {EXIT_NOT_JUDGED}",
                            red=True)
