"""pytest plugin: the suite's command-line options, the hardware in the header and the
model x variant parametrization; every other hook is a call into the run's session.RunSession."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .build.variant_specs import COMPILED_VARIANTS, VARIANTS, slowed_twin, spec_for
from .config import RunConfig
from .errors import EXIT_ENVIRONMENT, EXIT_USAGE, EnvironmentUnavailable, SuiteError, UsageError
from .exiting import skip_final_collections
from .measure.contention import OTHERS_BUSY_CORES, STEAL_BUSY_FRACTION

if TYPE_CHECKING:
    from .session import RunSession


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("whisper_perf", "Whisper torch.compile performance suite")
    for add in (_what_to_run, _judging, _builds_and_diagnostics):
        add(group)


def _what_to_run(group) -> None:
    """The model, audio, device and amount of work."""
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
    group.addoption("--busy-threshold", default=str(OTHERS_BUSY_CORES), metavar="CORES|off",
                    help="a timed round counts as busy, and is set aside, when other processes used more than "
                         f"CORES cores during it or the hypervisor stole over {STEAL_BUSY_FRACTION:.0%}% (default "
                         f"{OTHERS_BUSY_CORES}); "
                         "off: no round is set aside, the load is only recorded (for plumbing checks on a shared "
                         "machine, never for a verdict that gates)")
    group.addoption("--limit", type=int, default=None, metavar="N",
                    help="use N utterances spread evenly over the set (default: the profile's; 0: all)")
    group.addoption("--max-new-tokens", type=int, default=128, help="generation budget per utterance (default 128)")
    group.addoption("--batch", type=int, default=1, metavar="N",
                    help="utterances per short-form generate() call, padded to 30 s as the feature extractor "
                         "does (default 1: the latency protocol); the last batch is topped up from the set's "
                         "start so that every call has one shape; WER stays per utterance; pipelines take one "
                         "clip per call. whisper-perf perf / record follow a full-profile batch-1 run with the "
                         "batch size baselines/<key>.json chooses (whisper-perf batch-sweep --write)")
    group.addoption("--fixed-work", action="store_true",
                    help="min_new_tokens == max_new_tokens: every call generates the full budget, so timing "
                         "does not depend on what the model transcribes")


def _judging(group) -> None:
    """Baselines, results and how verdicts are reached."""
    group.addoption("--baselines", default=None, metavar="DIR",
                    help="folder of baseline files, one per hardware key (default: baselines/ in the project)")
    group.addoption("--record", action="store_true",
                    help="measure and write this run's results as the baseline of this hardware key "
                         "(nothing is judged)")
    group.addoption("--results-dir", default=None, metavar="DIR",
                    help="where each run writes its results file, one new file per run (default: results/runs)")
    group.addoption("--strict-gate", action="store_true",
                    help="release gating: a speed check that could not be judged (no baseline, machine busy, "
                         "machine speed changed) fails the run with exit status 7, instead of passing as a skip")
    group.addoption("--confidence", type=float, default=0.95,
                    help="confidence level of the intervals that verdicts use (default 0.95)")

    group.addoption("--detect", type=float, default=None, metavar="FRACTION",
                    help="adaptive rounds: keep timing (from 5 rounds on) until the variant's speedup and time checks "
                         "could each detect a slowdown of FRACTION (e.g. 0.05; a check whose tolerance alone lets "
                         "nearly that through: its tolerance plus FRACTION/2), or --max-minutes ends; intervals then "
                         "stay valid however many rounds it took (whisper_perf.judge.sequential)")
    group.addoption("--max-minutes", type=float, default=None, metavar="M",
                    help="with --detect: the timing budget per variant in minutes (default 4)")
    group.addoption("--inject-slowdown", type=float, default=0.0, metavar="FRACTION",
                    help="sensitivity check only: beside each compiled variant, time a twin '<variant>+slowed' "
                         "made this much slower and judge it against the variant's baseline (needs "
                         "WHISPER_PERF_SENSITIVITY_CHECK=1)")
    group.addoption("--inject-on", default="host", choices=["host", "device"],
                    help="where --inject-slowdown slows the twin: host = a busy-wait after each decode step "
                         "(default), device = one extra GPU kernel per decode step, a fraction of the step's "
                         "device time (CUDA only), for the device-time check")


def _builds_and_diagnostics(group) -> None:
    """How compiled variants are built, and what their diagnostics measure."""
    group.addoption("--compile-latency", default="auto", choices=["auto", "always", "never"],
                    help="cold/warm compile latency in fresh processes (about a minute per compiled variant on a "
                         "CPU): auto = when no earlier run measured it with these versions here, one variant per "
                         "run unless recording (default)")
    group.addoption("--isolate-builds", default="auto", choices=["auto", "always", "never"],
                    help="build and warm up each compiled variant first in a fresh process, so that a build that "
                         "crashes the interpreter (a segmentation fault while torch records CUDA graphs, say) fails "
                         "that variant alone: auto = on a GPU (default)")
    group.addoption("--memory-bandwidth", type=float, default=None, metavar="GBPS",
                    help="memory bandwidth in GB/s for the roofline (default: the data-sheet figure of a known "
                         "GPU, or measured on a CPU)")

def _refuse_parallel_workers(config: pytest.Config) -> None:
    """``-n`` (pytest-xdist) on the suite: its workers would time variants side by side, each
    distorting the other's timings, and pytest-benchmark turns its timing off under xdist.  (The
    harness's own tests in tests/ do run under -n: the plugin is loaded there too.)"""
    if not config.getoption("numprocesses", None):
        return
    suite = config.rootpath / "perf_tests"
    targets = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    if any(t == suite or suite in t.parents or t in suite.parents for t in targets):
        raise pytest.UsageError("-n (pytest-xdist) would time variants side by side in parallel workers, each "
                                "distorting the other's timings, and pytest-benchmark turns its timing off under "
                                "xdist: run the suite without -n")


def pytest_configure(config: pytest.Config) -> None:
    skip_final_collections()
    _refuse_parallel_workers(config)
    try:
        run_config = RunConfig.from_options(config.getoption, config.rootpath, _gpu_run)
    except SuiteError as exc:
        raise pytest.UsageError(str(exc)) from exc
    from .session import RunSession  # after the check: it loads the judging stack (scipy)

    _install_sigterm_as_interrupt(config)
    config.whisper_perf = RunSession(run_config, progress=_live_lines(config))


def _live_lines(config: pytest.Config):
    """``say(text)``: one line in pytest's terminal as a stage happens, past output capture (as
    pytest's live logging writes), so that a cold run does not sit silent for minutes; nothing
    under ``-q``."""
    if config.get_verbosity() < 0:
        return lambda text: None

    def say(text: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(f"whisper_perf: {text}")

    return say


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
    """Before any model is loaded: the hardware asked for must be here (else exit 6), this
    hardware's baseline file valid and the results folder writable (else exit 4)."""
    run: RunSession = getattr(session.config, "whisper_perf", None)
    if run is None or not _runs_the_suite(session.config):
        return
    try:
        run.start()
    except EnvironmentUnavailable as exc:
        pytest.exit(f"EnvironmentUnavailable: {exc}", returncode=EXIT_ENVIRONMENT)
    except UsageError as exc:
        pytest.exit(f"{type(exc).__name__}: {exc}", returncode=EXIT_USAGE)


def _runs_the_suite(config: pytest.Config) -> bool:
    """Whether this pytest session runs the benchmark suite (not only the harness's own tests)."""
    return any(Path(arg.split("::")[0]).resolve().is_relative_to(config.rootpath / "perf_tests")
               or Path(arg).resolve() == config.rootpath for arg in config.args) or not config.args


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    run: RunSession = getattr(item.config, "whisper_perf", None)
    if run is not None and report.failed:
        run.test_failed(call.excinfo.value if call.excinfo is not None else None, _variant_of(item))
    return report


def _variant_of(item) -> tuple | None:
    """(model, variant) a test belongs to: its ``variant`` fixture, or, when that never resolved
    because the variant failed to build, its model and ``variant_name`` parameter."""
    funcargs = getattr(item, "funcargs", {})
    if funcargs.get("variant") is not None:
        return funcargs["variant"].model_name, funcargs["variant"].name
    source = funcargs.get("model_source")  # resolved before the variant's build
    name = getattr(getattr(item, "callspec", None), "params", {}).get("variant_name")
    if source is not None and name is not None and item.config.whisper_perf.failed_build(source.name, name):
        return source.name, name
    return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    import torch
    import transformers

    from .inputs.hardware import detect_hardware
    from .measure.contention import sample_idle

    run: RunConfig = config.whisper_perf.config
    try:
        hw = detect_hardware(run.device)
        where = hw.describe()
    except SuiteError as exc:
        where = f"unavailable: {exc}"
    lines = [f"whisper_perf: hardware {where}",
             f"whisper_perf: torch {torch.__version__}, transformers {transformers.__version__}"]
    if not _runs_the_suite(config):  # the harness's own tests: nothing is timed against a baseline
        return lines
    idle = sample_idle(1.0, run.busy_threshold)
    quiet = ("busy check off (--busy-threshold off): no round is set aside" if run.busy_threshold is None else
             "BUSY: timings will be distorted; stop other work first" if idle.busy else "quiet")
    return lines + [f"whisper_perf: profile {run.profile}: variants {', '.join(run.variants)}; "
                    f"{run.limit or 'all'} utterances, {run.rounds} rounds",
                    f"whisper_perf: machine before timing: {quiet} ({idle.evidence()})"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run: RunConfig = metafunc.config.whisper_perf.config
    if "model_spec" in metafunc.fixturenames:
        metafunc.parametrize("model_spec", run.models, scope="session",
                             ids=[m.rstrip("/").split("/")[-1] for m in run.models])
    if "variant_name" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("variants")
        names = list(run.variants)
        if run.inject_slowdown:  # each compiled variant beside its deliberately slowed twin
            names += [slowed_twin(v) for v in run.variants if v in COMPILED_VARIANTS]
        wanted = [v for v in names if marker is None or spec_for(v).baseline_name in marker.args[0]]
        metafunc.parametrize("variant_name", wanted, scope="session")


def pytest_collection_modifyitems(session, config, items) -> None:
    """Timing first: every judging and diagnostic test reuses what test_generate measured, and the
    diagnostic calls must not run before the timed rounds they diagnose.  Then the verdicts on
    speed and WER, which need nothing more, before the diagnostics (whose cold / warm compile takes
    minutes per variant), so that a run cut short by a CI time limit still has its verdicts.  One
    model after the other (its variants are rebuilt when its session-scoped parameter comes back)."""
    models: dict[str, int] = {}  # model -> order of first appearance (keys are computed in item order)

    def stage(item) -> tuple[int, int, int]:
        if getattr(item, "originalname", "") == "test_generate":
            return 0, 0, 0
        model = getattr(getattr(item, "callspec", None), "params", {}).get("model_spec")
        verdicts = getattr(getattr(item, "module", None), "__name__", "").endswith("test_verdicts")
        return 1, models.setdefault(model, len(models)), 1 if verdicts else 2
    items.sort(key=stage)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the run sets out to time (after -k and deselection), so that its results name what it
    never reached when cut short."""
    run: RunSession = getattr(session.config, "whisper_perf", None)
    if run is None or session.config.option.collectonly:
        return
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if getattr(item, "originalname", "") == "test_generate" and "variant_name" in params:
            run.planned.append((params.get("model_spec"), params["variant_name"]))


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    run: RunSession = getattr(config, "whisper_perf", None)
    if run is not None:
        run.terminal_summary(terminalreporter)


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """The documented exit code; the results file and reports; with --record, the baseline."""
    run: RunSession = getattr(session.config, "whisper_perf", None)
    if run is None or not _runs_the_suite(session.config):
        return
    if session.config.option.collectonly:
        return  # nothing was run: no results file
    status = run.exit_status(int(exitstatus))
    session.exitstatus = run.finish(status, session.config.get_terminal_writer().line)


def pytest_exception_interact(node, call, report) -> None:
    # A SuiteError's message says what is wrong and what to do; its traceback adds nothing.
    if call.excinfo is not None and isinstance(call.excinfo.value, SuiteError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
