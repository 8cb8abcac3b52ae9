"""One run of the suite: what it accumulates and the work at its end.

The pytest plugin builds one ``RunSession`` per run and every hook is a call into it; the
fixtures and tests get narrow callbacks (``add_measurement``, ``add_verdict``...).  At the end
``finish`` records the baseline (with ``--record``), writes the results file and the reports,
and ``exit_status`` says which documented exit code the run ends with.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from .config import RunConfig
from .errors import (EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_NOT_JUDGED, EXIT_OK, EXIT_REGRESSION, EXIT_USAGE,
                     EnvironmentUnavailable, UsageError)
from .judge import baselines
from .measure.diagnostics_data import Diagnostics
from .judge.summary import Summary, summarize
from .judge.verdicts import Verdict, strict_gate_refuses
from .record import baseline_recording
from .record.results import Failure, RunResult, Skip, run_name, write_run

Key = tuple  # (model, variant)


@dataclass(frozen=True)
class BatchedPlan:
    """The full profile's batched measurement after a run (RunSession.batched_plan)."""

    batch_size: int | None  # None: none follows, and ``note`` says why
    variants: tuple[str, ...]
    note: str  # what the run's terminal says of it


@dataclass
class TestFailures:
    """Why the run's tests failed, so that the exit code says it: a bad input (4) and an
    unavailable model or GPU (6) are not regressions (1)."""

    usage: list[str] = field(default_factory=list)  # messages of UsageError
    environment: list[str] = field(default_factory=list)  # messages of EnvironmentUnavailable
    other: int = 0  # failed or erroring tests for any other reason
    variants: set = field(default_factory=set)  # (model, variant) of failed or erroring tests
    unattributed: int = 0  # failed tests that belong to no model x variant

    def add(self, error: BaseException | None, key: Key | None) -> None:
        if isinstance(error, EnvironmentUnavailable):
            self.environment.append(str(error))
        elif isinstance(error, UsageError):
            self.usage.append(str(error))
        else:
            self.other += 1
        if key is None:
            self.unattributed += 1
        else:
            self.variants.add(key)


def exit_status_of(status: int, failed: TestFailures, strict: bool, verdicts: list) -> int:
    """The exit status a run ends with, from pytest's ``status``: a run whose only failures were bad
    input (4) or something unavailable here (6) ends with that code, not with 1 (regression); with
    --strict-gate (``strict``), a run in which nothing failed but a speed check was not judged, or no
    speed check was (every variant skipped...), ends with 7."""
    if status == EXIT_OK and strict and strict_gate_refuses(verdicts):
        return EXIT_NOT_JUDGED
    if status != EXIT_REGRESSION or failed.other:
        return status
    if failed.usage:
        return EXIT_USAGE
    if failed.environment:
        return EXIT_ENVIRONMENT
    return status


def recording_refused(exit_status: int, failed: TestFailures, busy: list[str]) -> str | None:
    """Why a --record run writes nothing at all, or None: it was interrupted, a test failed outside
    any variant or for bad input or a missing environment, or the machine was busy while timing
    (``busy``: "model/variant" of the unreliable measurements).  A variant that failed on its own is
    left out of the recording, not this."""
    if exit_status == EXIT_INTERRUPTED:
        return ("Not recording: the run was interrupted (Ctrl-C, SIGTERM, a time limit); the baseline is unchanged, "
                "and the results file keeps what was measured.")
    if exit_status != EXIT_OK and (failed.unattributed or failed.usage or failed.environment):
        return "Not recording: some tests failed or errored outside any variant; fix them and record again."
    if busy:
        return (f"Not recording: the machine was busy while timing {', '.join(busy)}; record again on a quiet "
                f"machine (exit {EXIT_NOT_JUDGED} where nothing else failed).")
    return None


class RunSession:
    def __init__(self, config: RunConfig, progress=None):
        self.config = config
        self.progress = progress or (lambda text: None)  # progress(text): a live line per stage
        self.input_changes: list[str] = []  # what the suite changed about the input (resampled audio...)
        self.hardware = None  # hardware.Hardware, once start() found it
        self.baseline_file: baselines.BaselineFile | None = None
        self.measurements: dict[Key, object] = {}  # -> timing.Measurement
        self.diagnostics: dict[Key, Diagnostics] = {}  # -> diagnostics.diagnose()
        self.failures: list[Failure] = []  # variants that failed to build or be timed
        self.skipped: list[Skip] = []  # variants that cannot run here, and why
        self.planned: list[Key] = []  # (model as given, variant) of every timing test collected
        self.model_names: dict[str, str] = {}  # model as given -> its short name, once resolved
        self.started = False  # the hardware and its baseline file were found: the run's results are written
        self.build_setups: dict[Key, object] = {}  # -> bug_report.BuildSetup, taken before each first build
        self.verdicts: list[tuple[str, str, Verdict]] = []
        self.test_failures = TestFailures()
        self.cold_compiles_measured = 0  # variants whose cold/warm compile latency this run measured
        self._summaries: dict[Key, Summary] = {}
        self.recorded: tuple | None = None  # (path, diff) once --record has written
        self.results: RunResult | None = None
        self.results_path = None
        self.reports: dict = {}

    # ---- start: before any model is loaded ----

    def start(self) -> None:
        """The hardware asked for must be here (EnvironmentUnavailable), and its baseline file valid
        (UsageError naming file, entry and field)."""
        from .inputs.hardware import detect_hardware

        self.hardware = detect_hardware(self.config.device)
        self.baseline_file = baselines.load_for(self.config.baselines, self.hardware.key)
        self.started = True

    def baseline(self, model: str, variant: str, protocol: dict):
        """(entry or None, tolerances) of a model x variant (its baseline name) x protocol."""
        return baselines.lookup(self.baseline_file, model, variant, protocol)

    # ---- callbacks of fixtures and tests ----

    def add_measurement(self, key: Key, measurement) -> None:
        self.measurements[key] = measurement
        self._summaries.pop(key, None)

    def summary(self, key: Key) -> Summary:
        """The measurement's summary, computed once (its bootstrap takes a while)."""
        if key not in self._summaries:
            self._summaries[key] = summarize(self.measurements[key], self.config.confidence,
                                             sequential_intervals=self.config.detect is not None)
        return self._summaries[key]

    def add_skip(self, model: str, variant: str, reason: str) -> None:
        """A variant that cannot run here: named, with why, in the results file and the headline."""
        if not any((s.model, s.variant) == (model, variant) for s in self.skipped):
            self.skipped.append(Skip(model, variant, reason))

    def add_failure(self, model: str, variant: str, stage: str, error: str) -> None:
        self.failures.append(Failure(model, variant, stage, error))

    def failure_of(self, key: Key, stage: str) -> str | None:
        return next((f.error for f in self.failures if (f.model, f.variant) == key and f.stage == stage), None)

    def cold_compile(self, variant, model_spec: str, audio_source: str) -> dict | str | None:
        """Cold and warm compile latency of a compiled variant, measured in fresh processes
        (coldstart), or taken from the latest earlier run on the same hardware, software and
        protocol (``--compile-latency auto``: then at most one variant is measured per run, except
        when recording).  None where it does not apply; a string: why it was not measured."""
        from .build.coldstart import measure_cold_and_warm
        from .inputs.hardware import software
        from .record.results import latest_cold_compile

        config = self.config
        if not variant.spec.compiles_itself or config.compile_latency == "never":
            return None
        versions = {k: software()[k] for k in ("torch", "transformers")}
        if config.compile_latency == "auto":
            earlier = latest_cold_compile(config.results_dir, self.hardware.key, versions, variant.model_name,
                                          variant.name, variant.settings.max_new_tokens)
            if earlier is not None:
                return earlier
            if self.cold_compiles_measured and not config.record:
                return (f"compile latency of {variant.name} not measured in this run: --compile-latency auto "
                        "measures one compiled variant per run (about 80 s each on a 2-core CPU, so a first run "
                        "stays short); the next run measures it, or pass --compile-latency always")
        self.cold_compiles_measured += 1
        self.progress(f"{variant.name}: cold and warm compile latency in two fresh processes (about a minute "
                      "each on a 2-core CPU)")
        start = time.perf_counter()

        def elapsed() -> str:
            return f"{time.perf_counter() - start:.0f} s"

        measured = measure_cold_and_warm(
            model_spec, variant.name, self.hardware.device, audio_source, variant.settings.max_new_tokens,
            on_cold=lambda s: self.progress(f"{variant.name}: first call cold {s:.1f} s (fresh process: {elapsed()})"))
        self.progress(f"{variant.name}: first call warm {measured['warm_seconds']:.1f} s (both fresh processes: "
                      f"{elapsed()})")
        return {**measured, **versions, "source": "measured in this run"}

    def add_input_change(self, change: str) -> None:
        """Something the suite changed about the input (e.g. audio resampled): shown live and in the report."""
        if change not in self.input_changes:
            self.input_changes.append(change)
            self.progress(f"input: {change}")

    def add_verdict(self, model: str, variant: str, verdict: Verdict) -> None:
        self.verdicts.append((model, variant, verdict))

    def test_failed(self, error: BaseException | None, key: Key | None) -> None:
        """A failed or erroring test; ``key``: the model x variant it belongs to, if any."""
        self.test_failures.add(error, key)

    def failed_build(self, model: str, variant: str) -> bool:
        return any((f.model, f.variant) == (model, variant) for f in self.failures)

    # ---- end of the run ----

    def exit_status(self, status: int) -> int:
        """The run's documented exit status (exit_status_of)."""
        return exit_status_of(status, self.test_failures, self.config.strict, self.verdicts)

    def finish(self, exit_status: int, say) -> int:
        """Record (with --record), then write the results file and the reports, for every run that
        started (one that timed nothing too: it names what was skipped, failed or never reached).
        Returns the run's exit status: 7 where nothing else failed but a recording was refused
        because the machine was busy (a nightly ``nox -s record`` must not pass without writing its
        baseline)."""
        from .record.report import write_reports

        if not self.started:
            return exit_status
        if self.config.record:
            busy = self._busy()
            self.recorded = self._record(exit_status, say, busy)
            if self.recorded is None and exit_status == EXIT_OK:  # busy, or every variant skipped
                exit_status = EXIT_NOT_JUDGED
        self.results = self._results(exit_status)
        name = run_name()
        self.results.bug_reports = self._bug_reports(name, say)
        self.results_path = write_run(self.config.results_dir, self.hardware.key, self.results, name)
        self.reports = write_reports(self.results_path, self.results, self._judged_against())
        return exit_status

    def _bug_reports(self, name: str, say) -> dict[str, str]:
        """A folder to file upstream per variant that crashed, failed, recompiled or regressed
        (bug_report); where one cannot be written, the run says why and loses nothing else."""
        from .record.bug_report import write_bug_reports

        folder = self.config.results_dir / self.hardware.key / f"{name}-repro"
        try:
            written = write_bug_reports(self.results, self.build_setups, folder, name)
        except Exception as exc:  # noqa: BLE001  (a report is an extra: the results file must still be written)
            say(f"whisper_perf: bug-report folder not written ({type(exc).__name__}: {exc})", yellow=True)
            return {}
        for key, path in written.items():
            say(f"whisper_perf: {key}: bug report for upstream in {path}", yellow=True)
        return written

    def _busy(self) -> list[str]:
        """"model/variant" of every measurement whose timings are unreliable (a busy machine): a
        recording with any of them writes nothing, and exits 7 where nothing else failed."""
        return [f"{m}/{v}" for (m, v) in self.measurements if self.summary((m, v)).unreliable]

    def _results(self, exit_status: int) -> RunResult:
        from .inputs.hardware import software
        from .record.results import MeasurementRecord, VerdictRecord

        return RunResult(
            hardware=self.hardware.as_dict(), software=software(),
            finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            exit_status=exit_status, options=self.config.as_dict(),
            measurements=[MeasurementRecord.from_measurement(m, self.summary(key), self.diagnostics.get(key))
                          for key, m in self.measurements.items()],
            verdicts=[VerdictRecord(model, variant, v) for model, variant, v in self.verdicts],
            failures=list(self.failures), input_changes=list(self.input_changes),
            recorded_baseline=str(self.recorded[0]) if self.recorded else None, skipped=list(self.skipped),
            planned=[(self.model_names.get(model, model), variant) for model, variant in self.planned])

    def _record(self, exit_status: int, say, busy: list[str]) -> tuple | None:
        """Write the baseline entries of every variant that passed; a variant whose build, timing or
        any test failed is left out with a message (its old entry, if any, stays as it was), so one
        failing variant does not block the others.  An interrupted run, a failure that belongs to no
        variant, or a busy machine records nothing."""
        from .inputs.hardware import software

        failed = self.test_failures
        refused = recording_refused(exit_status, failed, busy)
        if refused:
            say(refused, red=True)
            return None
        skipped = failed.variants | {(f.model, f.variant) for f in self.failures}
        for model, variant in sorted(skipped):
            say(f"Not recorded: {model}/{variant} failed in this run (see above); its baseline entry is unchanged.",
                red=True)
        keep = [key for key in self.measurements if key not in skipped]
        if not keep:
            say(f"Not recording: no variant was measured ({len(self.skipped)} skipped, {len(self.failures)} failed); "
                f"the baseline is unchanged (exit {EXIT_NOT_JUDGED} where nothing else failed).", red=True)
            return None
        provenance = {**software(), "device_name": self.hardware.device_name, "source": "measured by this suite",
                      "date": datetime.date.today().isoformat()}
        if self.config.busy_threshold is None:  # a reviewer of the diff sees that no round was checked for load
            provenance["busy_threshold"] = "off"
            say("Recording with --busy-threshold off: no round was checked for load; the baseline's provenance "
                "says so.", yellow=True)
        entries = [baseline_recording.entry_from(self.measurements[key], self.summary(key), provenance,
                                        self.diagnostics.get(key)) for key in keep]
        path = baselines.path_for(self.config.baselines, self.hardware.key)
        if not path.exists():
            say(f"New hardware key {self.hardware.key} ({self.hardware.device_name}): no baseline recorded for it yet; "
                f"this recording starts {path}.", yellow=True)
        return baseline_recording.record(self.config.baselines, self.hardware.key, self.hardware.device_name, entries)

    def _judged_against(self) -> dict:
        """(model, variant) -> (speedup, tolerance) of the baseline entry it was judged against, for
        the charts (a sensitivity twin is judged against its original's)."""
        from .build.variant_specs import spec_for

        found = {}
        for (model, variant), m in self.measurements.items():
            protocol = baselines.protocol_of(m.setup, m.audio_set, len(m.reference_texts))
            entry, tolerances = self.baseline(model, spec_for(variant).baseline_name, protocol)
            if entry and entry.speedup:
                found[(model, variant)] = (entry.speedup, tolerances.speedup)
        return found

    def batched_plan(self) -> BatchedPlan | None:
        """The full profile's batched measurement, which ``whisper-perf perf`` and ``record`` run after
        this run (cli.run_suite): the batch size the hardware's baseline file chooses (``batched``),
        for this run's short-form variants (a pipeline takes one clip per call whatever the batch).
        None where this is not a full-profile run at batch 1."""
        from .build.variant_specs import spec_for

        config = self.config
        if not self.started or config.profile != "full" or config.settings.batch_size != 1:
            return None
        path = baselines.path_for(config.baselines, self.hardware.key)
        chosen = self.baseline_file.batched if self.baseline_file else None
        if chosen is None:
            where = f"{path} chooses no" if self.baseline_file else f"there is no {path} to choose a"
            return BatchedPlan(None, (), f"no batched measurement: {where} batch size for this hardware; "
                                         "nox -s batch-sweep -- --write chooses one")
        n, short = chosen.batch_size, tuple(v for v in config.variants if not spec_for(v).long_form)
        measured = max((len(m.reference_texts) for (_, v), m in self.measurements.items()
                        if not spec_for(v).long_form), default=0)
        if not short or measured < n:
            why = ("this run has no short-form variant" if not short else
                   f"this run measured {measured} short-form utterance(s); give --limit {n} or more (0: all)")
            return BatchedPlan(None, (), f"no batched measurement at batch {n} ({path}): {why}")
        return BatchedPlan(n, short, f"batched measurement at batch {n} ({path}) of {', '.join(short)}: whisper-perf "
                                     f"perf and record run it next (pytest alone: --batch {n})")

    def terminal_summary(self, reporter) -> None:
        """The run's last words in the terminal (record.terminal), once its results were written."""
        from .record.terminal import Written, write_summary

        if self.results:
            write_summary(reporter, self.results, Written(self.recorded, self.results_path, self.reports),
                          strict=self.config.strict, other_failures=bool(self.test_failures.other),
                          batched=(self.batched_plan() or BatchedPlan(None, (), "")).note or None)
