"""pytest plugin: the suite's command-line options, the hardware in the header, the
model x variant parametrization, and the summary table at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .errors import EXIT_ENVIRONMENT, EXIT_REGRESSION, EXIT_USAGE, EnvironmentUnavailable, SuiteError, UsageError
from .generation import GenerationSettings
from .variants import COMPILED_VARIANTS, VARIANTS, slowed_twin

# What a run covers when --variant / --limit do not say.  On a GPU every variant over the whole
# audio set takes minutes; on a CPU the same would take half an hour (the 30-s-padded encoder
# costs about a second per utterance), so the CPU default is the two compiled variants (each
# timed against its eager build) over 6 utterances spread over the set.
PROFILES = {
    "quick": {"variants": ["compiled", "compiled-static"], "utterances": 6},
    "full": {"variants": list(VARIANTS), "utterances": None},
}


@dataclass
class SuiteOptions:
    models: list[str]
    variants: list[str]
    dataset: str | None
    long_dataset: str | None
    device: str
    rounds: int
    limit: int | None
    settings: GenerationSettings
    baselines: Path
    record: bool
    confidence: float
    inject_slowdown: float
    profile: str = "full"
    busy_retries: int | None = None
    results_dir: Path | None = None
    results_path: Path | None = None
    environment_errors: list = field(default_factory=list)  # messages of EnvironmentUnavailable
    usage_errors: list = field(default_factory=list)  # messages of UsageError raised by fixtures
    other_failures: int = 0  # failed or erroring tests for any other reason
    failed_variants: set = field(default_factory=set)  # (model, variant) of failed or erroring tests
    unattributed_failures: int = 0  # failed tests that belong to no model x variant
    measurements: dict = field(default_factory=dict)  # (model, variant) -> timing.Measurement
    diagnostics: dict = field(default_factory=dict)  # (model, variant) -> diagnostics.diagnose() data
    failures: list = field(default_factory=list)  # {model, variant, stage, error} of variants that failed
    failed_measurements: dict = field(default_factory=dict)  # (model, variant) -> error of its timing
    memory_bandwidth: float | None = None  # --memory-bandwidth (GB/s)
    compile_latency: str = "auto"  # --compile-latency
    cold_compiles_measured: int = 0  # variants whose cold/warm compile latency this run measured
    verdicts: list = field(default_factory=list)  # (model, variant, verdicts.Verdict)
    recorded: tuple | None = None  # (path, diff) once --record has written
    reports: dict = field(default_factory=dict)  # name -> path of the run's Markdown and charts
    results_data: dict | None = None  # what the results file holds
    summaries: dict = field(default_factory=dict)  # (model, variant) -> summary.Summary, at session end

    def record_command(self) -> str:
        """The command that re-records what this run measured."""
        args = [f"--model {m}" for m in self.models if m != "tiny.en"]
        if self.variants != PROFILES[self.profile]["variants"]:
            args += [f"--variant {v}" for v in self.variants]
        if self.dataset:
            args.append(f"--dataset {self.dataset}")
        if self.settings.fixed_work:
            args.append("--fixed-work")
        if self.settings.max_new_tokens != 128:
            args.append(f"--max-new-tokens {self.settings.max_new_tokens}")
        if self.limit != PROFILES[self.profile]["utterances"]:
            args.append(f"--limit {self.limit}" if self.limit else "--limit 0")
        if self.profile == "full":
            args.insert(0, "--profile full")
        return "nox -s record" + (" -- " + " ".join(args) if args else "")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("whisper_perf", "Whisper torch.compile performance suite")
    group.addoption("--model", action="append", default=None, metavar="ID",
                    help="Whisper to benchmark: tiny.en (embedded, default), a hub id such as "
                         "openai/whisper-large-v3-turbo, or a local folder. Repeat for several.")
    group.addoption("--profile", default="auto", choices=["auto", "quick", "full"],
                    help="what to run by default: quick = the compiled variants over 6 utterances, full = every "
                         "variant over the whole audio set (default auto: full on a GPU, quick on a CPU)")
    group.addoption("--variant", action="append", default=None, choices=list(VARIANTS),
                    help="variant(s) to run (default: the profile's)")
    group.addoption("--dataset", default=None, metavar="PATH|ID",
                    help="short-form audio set: a folder with metadata.jsonl, or a hub dataset id such as "
                         "hf-internal-testing/librispeech_asr_dummy (default: the committed set)")
    group.addoption("--long-dataset", default=None, metavar="PATH",
                    help="long-form audio set for the pipeline variants (default: the committed long clips)")
    group.addoption("--device", default="auto", choices=["auto", "cuda", "cpu"],
                    help="where to run (default: cuda when present)")
    group.addoption("--rounds", type=int, default=None,
                    help="timed rounds over the audio set per variant (default 3; 6 with --record, so that a "
                         "baseline is more precise than the runs judged against it)")
    group.addoption("--busy-retries", type=int, default=None, metavar="N",
                    help="extra rounds allowed to replace rounds timed while the machine was busy "
                         "(default: as many as --rounds)")
    group.addoption("--limit", type=int, default=None, metavar="N",
                    help="use N utterances spread evenly over the set (default: the profile's; 0: all)")
    group.addoption("--max-new-tokens", type=int, default=128, help="generation budget per utterance (default 128)")
    group.addoption("--fixed-work", action="store_true",
                    help="min_new_tokens == max_new_tokens: every call generates the full budget, so timing "
                         "does not depend on what the model transcribes")
    group.addoption("--baselines", default=None, metavar="DIR",
                    help="folder of baseline files, one per hardware key (default: baselines/ in the project)")
    group.addoption("--record", action="store_true",
                    help="measure and write this run's results as the baseline of this hardware key "
                         "(nothing is judged)")
    group.addoption("--inject-slowdown", type=float, default=0.0, metavar="FRACTION",
                    help="sensitivity check only: beside each compiled variant, time a twin '<variant>+slowed' "
                         "made this much slower and judge it against the variant's baseline (needs "
                         "WHISPER_PERF_SENSITIVITY_CHECK=1)")
    group.addoption("--results-dir", default=None, metavar="DIR",
                    help="where each run writes its results file, one new file per run (default: results/runs)")
    group.addoption("--compile-latency", default="auto", choices=["auto", "always", "never"],
                    help="cold/warm compile latency in fresh processes (about a minute per compiled variant on a "
                         "CPU): auto = when no earlier run measured it with these versions here, one variant per "
                         "run unless recording (default)")
    group.addoption("--memory-bandwidth", type=float, default=None, metavar="GBPS",
                    help="memory bandwidth in GB/s for the roofline (default: the data-sheet figure of a known "
                         "GPU, or measured on a CPU)")
    group.addoption("--confidence", type=float, default=0.95,
                    help="confidence level of the intervals that verdicts use (default 0.95)")


def pytest_configure(config: pytest.Config) -> None:
    get = config.getoption
    rounds, limit, budget = get("--rounds"), get("--limit"), get("--max-new-tokens")
    if rounds is None:
        rounds = 6 if get("--record") else 3
    if rounds < 1:
        raise pytest.UsageError(f"--rounds must be at least 1, not {rounds}")
    if (get("--busy-retries") or 0) < 0:
        raise pytest.UsageError(f"--busy-retries must be 0 or more, not {get('--busy-retries')}")
    if limit is not None and limit < 0:
        raise pytest.UsageError(f"--limit must be a positive count (0: all), not {limit}")
    if not 1 <= budget <= 440:
        raise pytest.UsageError(f"--max-new-tokens must be between 1 and 440 (Whisper's decoder holds 448 "
                                f"positions, the prompt takes some), not {budget}")
    bandwidth = get("--memory-bandwidth")
    if bandwidth is not None and not bandwidth > 0:
        raise pytest.UsageError(f"--memory-bandwidth must be a positive number of GB/s, not {bandwidth}")
    confidence = get("--confidence")
    if not 0.5 <= confidence < 1:
        raise pytest.UsageError(f"--confidence must be in [0.5, 1), not {confidence}")
    from .architectures import check_options as check_architectures

    try:  # --model arch:NAME: a known name, and --fixed-work (random weights stop at random points)
        check_architectures(get("--model") or [], get("--fixed-work"))
    except SuiteError as exc:
        raise pytest.UsageError(str(exc)) from exc
    from .sensitivity import check_allowed

    slowdown = get("--inject-slowdown")
    try:
        check_allowed(slowdown)
    except SuiteError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if slowdown and get("--record"):
        raise pytest.UsageError("--record with --inject-slowdown would store a deliberately slowed timing as "
                                "the baseline; use one or the other.")
    profile = get("--profile")
    if profile == "auto":
        profile = "full" if _gpu_run(get("--device")) else "quick"
    chosen = PROFILES[profile]
    results_dir = Path(get("--results-dir") or config.rootpath / "results" / "runs")
    from .results import check_writable

    try:
        check_writable(results_dir)
    except SuiteError as exc:
        raise pytest.UsageError(str(exc)) from exc
    _install_sigterm_as_interrupt(config)
    config.whisper_perf = SuiteOptions(
        models=list(dict.fromkeys(get("--model") or ["tiny.en"])),
        variants=list(dict.fromkeys(get("--variant") or chosen["variants"])),
        dataset=get("--dataset"), long_dataset=get("--long-dataset"), device=get("--device"),
        rounds=rounds, limit=chosen["utterances"] if limit is None else (limit or None),
        settings=GenerationSettings(max_new_tokens=budget, fixed_work=get("--fixed-work")),
        baselines=Path(get("--baselines") or config.rootpath / "baselines"), record=get("--record"),
        confidence=confidence, inject_slowdown=slowdown, profile=profile, results_dir=results_dir,
        busy_retries=get("--busy-retries"), memory_bandwidth=bandwidth, compile_latency=get("--compile-latency"),
    )


def _install_sigterm_as_interrupt(config: pytest.Config) -> None:
    """SIGTERM (a CI job cancelled, ``kill``) stops the run like Ctrl-C: pytest exits with 2, and
    every file being written is finished or removed on the way out (an untouched default
    handler would end the process at once, mid-write).  Earlier results and baselines are never
    at risk either way: they are replaced atomically or not at all."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    config._whisper_perf_sigterm = signal.signal(signal.SIGTERM, interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    import signal

    previous = getattr(config, "_whisper_perf_sigterm", None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _gpu_run(device: str) -> bool:
    if device == "cpu":
        return False
    import torch

    return device == "cuda" or torch.cuda.is_available()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Before any model is loaded: the hardware asked for must be here (else exit 6), and this
    hardware's baseline file must be valid (else exit 4, naming file, entry and field)."""
    from . import baselines
    from .hardware import detect_hardware

    options: SuiteOptions = getattr(session.config, "whisper_perf", None)
    if options is None or not _runs_the_suite(session.config):
        return
    try:
        hardware = detect_hardware(options.device)
    except EnvironmentUnavailable as exc:
        pytest.exit(f"EnvironmentUnavailable: {exc}", returncode=EXIT_ENVIRONMENT)
    try:
        baselines.load_for(options.baselines, hardware.key)
    except UsageError as exc:
        pytest.exit(f"{type(exc).__name__}: {exc}", returncode=EXIT_USAGE)


def _runs_the_suite(config: pytest.Config) -> bool:
    """Whether this pytest session runs the benchmark suite (not only the harness's own tests)."""
    return any(Path(arg.split("::")[0]).resolve().is_relative_to(config.rootpath / "perf_tests")
               or Path(arg).resolve() == config.rootpath for arg in config.args) or not config.args


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    options = getattr(item.config, "whisper_perf", None)
    if options is not None and report.failed:
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, EnvironmentUnavailable):
            options.environment_errors.append(str(error))
        elif isinstance(error, UsageError):
            options.usage_errors.append(str(error))
        else:
            options.other_failures += 1
        variant = getattr(item, "funcargs", {}).get("variant")
        if variant is not None:
            options.failed_variants.add((variant.model_name, variant.name))
        elif not _failure_of_a_variant(item, options):
            options.unattributed_failures += 1
    return report


def _failure_of_a_variant(item, options) -> bool:
    """Whether a failed test whose ``variant`` fixture never resolved belongs to a variant that
    failed to build (recorded in ``options.failures`` by the variant fixture)."""
    source = getattr(item, "funcargs", {}).get("model_source")  # resolved before the variant's build
    params = getattr(getattr(item, "callspec", None), "params", {})
    return source is not None and "variant_name" in params and any(
        (f["model"], f["variant"]) == (source.name, params["variant_name"]) for f in options.failures)


def pytest_report_header(config: pytest.Config) -> list[str]:
    import torch
    import transformers

    from .hardware import detect_hardware

    try:
        hw = detect_hardware(config.whisper_perf.device)
        where = f"{hw.key} ({hw.device_name}, {hw.threads} threads)"
    except SuiteError as exc:
        where = f"unavailable: {exc}"
    from .contention import sample_idle

    options: SuiteOptions = config.whisper_perf
    lines = [f"whisper_perf: hardware {where}",
             f"whisper_perf: torch {torch.__version__}, transformers {transformers.__version__}"]
    if not _runs_the_suite(config):  # the harness's own tests: nothing is timed against a baseline
        return lines
    idle = sample_idle(1.0)
    quiet = "BUSY: timings will be distorted; stop other work first" if idle.busy else "quiet"
    return lines + [f"whisper_perf: profile {options.profile}: variants {', '.join(options.variants)}; "
                    f"{options.limit or 'all'} utterances, {options.rounds} rounds",
                    f"whisper_perf: machine before timing: {quiet} ({idle.evidence()})"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    options: SuiteOptions = metafunc.config.whisper_perf
    if "model_spec" in metafunc.fixturenames:
        metafunc.parametrize("model_spec", options.models, scope="session",
                             ids=[m.rstrip("/").split("/")[-1] for m in options.models])
    if "variant_name" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("variants")
        names = list(options.variants)
        if options.inject_slowdown:  # each compiled variant beside its deliberately slowed twin
            names += [slowed_twin(v) for v in options.variants if v in COMPILED_VARIANTS]
        wanted = [v for v in names if marker is None or v.removesuffix("+slowed") in marker.args[0]]
        metafunc.parametrize("variant_name", wanted, scope="session")


def pytest_collection_modifyitems(session, config, items) -> None:
    """Timing first: every judging and diagnostic test reuses what test_generate measured, and the
    diagnostic calls must not run before the timed rounds they diagnose."""
    items.sort(key=lambda item: 0 if getattr(item, "originalname", "") == "test_generate" else 1)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    from .report import diagnostics_table, measurement_table, verdict_table
    from .summary import summarize

    options = getattr(config, "whisper_perf", None)
    if not options or not (options.measurements or options.failures):
        return
    if options.failures:
        terminalreporter.section("Variants that failed", red=True)
        for failure in options.failures:
            terminalreporter.write_line(f"{failure['stage']}: {failure['error']}", red=True)
    summaries = options.summaries or {k: summarize(m, options.confidence) for k, m in options.measurements.items()}
    items = [(m, summaries[k]) for k, m in options.measurements.items()]
    terminalreporter.section("Whisper generate(): eager vs compiled")
    terminalreporter.write_line(measurement_table(items))
    diagnostics = diagnostics_table(options.results_data["measurements"]) if options.results_data else ""
    if diagnostics:
        terminalreporter.section("Diagnostics (details: the run's .md report)")
        terminalreporter.write_line(diagnostics)
    if options.verdicts:
        terminalreporter.section("Verdicts against baselines")
        terminalreporter.write_line(verdict_table(options.verdicts))
    if options.recorded:
        path, diff = options.recorded
        terminalreporter.section(f"Recorded baseline {path}")
        terminalreporter.write_line(diff or "(no change)")
        terminalreporter.write_line("Review it with `git diff` and commit it.")
    if options.results_path:
        terminalreporter.write_line(f"whisper_perf: results written to {options.results_path}")
        for name, path in options.reports.items():
            terminalreporter.write_line(f"whisper_perf: {name} written to {path}")


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """Write this run's results file; with --record, also this hardware's baseline (atomically)."""
    from .hardware import detect_hardware
    from .results import run_record, write_run
    from .summary import summarize

    options: SuiteOptions = getattr(session.config, "whisper_perf", None)
    if options and exitstatus == EXIT_REGRESSION and not options.other_failures and _runs_the_suite(session.config):
        # nothing regressed: a bad input (exit 4) or something not reachable here (exit 6)
        if options.usage_errors:
            session.exitstatus = EXIT_USAGE
        elif options.environment_errors:
            session.exitstatus = EXIT_ENVIRONMENT
    if not options or not (options.measurements or options.failures):
        return
    hardware = detect_hardware(options.device)
    summaries = {key: summarize(m, options.confidence) for key, m in options.measurements.items()}
    options.summaries = summaries
    if options.record:
        options.recorded = _record(options, hardware, summaries, exitstatus, session.config.get_terminal_writer().line)
    data = run_record(options, hardware, summaries, int(session.exitstatus))
    options.results_data = data
    options.results_path = write_run(options.results_dir, hardware.key, data)
    from .report import write_reports

    options.reports = write_reports(options.results_path, data, _judged_against(options, hardware))


def _record(options: SuiteOptions, hardware, summaries: dict, exitstatus, write) -> tuple | None:
    """Write the baseline entries of every variant that passed; a variant whose build, timing or
    any test failed is left out with a message (its old entry, if any, stays as it was), so one
    failing variant does not block the others.  A failure that belongs to no variant, or a busy
    machine, records nothing."""
    import datetime

    from .baselines import entry_from, record
    from .hardware import software

    if exitstatus not in (0, pytest.ExitCode.OK) and (options.unattributed_failures or options.usage_errors
                                                      or options.environment_errors):
        write("Not recording: some tests failed or errored outside any variant; fix them and record again.", red=True)
        return None
    busy = [f"{m}/{v}" for (m, v), s in summaries.items() if s.unreliable]
    if busy:
        write(f"Not recording: the machine was busy while timing {', '.join(busy)}; record again on a quiet "
              "machine.", red=True)
        return None
    failed = options.failed_variants | {(f["model"], f["variant"]) for f in options.failures}
    for model, variant in sorted(failed):
        write(f"Not recorded: {model}/{variant} failed in this run (see above); its baseline entry is unchanged.",
              red=True)
    keep = [key for key in options.measurements if key not in failed]
    if not keep:
        return None
    provenance = {**software(), "device_name": hardware.device_name, "source": "measured by this suite",
                  "date": datetime.date.today().isoformat()}
    entries = [entry_from(options.measurements[key], summaries[key], provenance, options.diagnostics.get(key))
               for key in keep]
    return record(options.baselines, hardware, entries)


def _judged_against(options: SuiteOptions, hardware) -> dict:
    """(model, variant) -> (baseline speedup, tolerance) for the charts."""
    from . import baselines

    try:
        file = baselines.load_for(options.baselines, hardware.key)
    except SuiteError:
        return {}
    found = {}
    for (model, variant), m in options.measurements.items():
        name = variant.removesuffix("+slowed")
        entry = file and file.find(model, name, baselines.protocol_of(m.setup, m.audio_set, len(m.reference_texts)))
        if entry and entry.speedup:
            found[(model, name)] = (entry.speedup, file.tolerances_for(entry).speedup)
    return found


def pytest_exception_interact(node, call, report) -> None:
    # A SuiteError's message says what is wrong and what to do; its traceback adds nothing.
    if call.excinfo is not None and isinstance(call.excinfo.value, SuiteError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
