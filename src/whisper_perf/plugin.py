"""pytest plugin: the suite's command-line options, the hardware in the header, the
model x variant parametrization, and the summary table at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .errors import SuiteError
from .generation import GenerationSettings
from .variants import VARIANTS


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
    measurements: dict = field(default_factory=dict)  # (model, variant) -> timing.Measurement
    verdicts: list = field(default_factory=list)  # (model, variant, verdicts.Verdict)
    recorded: tuple | None = None  # (path, diff) once --record has written

    def record_command(self) -> str:
        """The command that re-records what this run measured."""
        args = [f"--model {m}" for m in self.models]
        if self.dataset:
            args.append(f"--dataset {self.dataset}")
        if self.settings.fixed_work:
            args.append("--fixed-work")
        if self.settings.max_new_tokens != 128:
            args.append(f"--max-new-tokens {self.settings.max_new_tokens}")
        if self.limit:
            args.append(f"--limit {self.limit}")
        return "nox -s record -- " + " ".join(args)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("whisper_perf", "Whisper torch.compile performance suite")
    group.addoption("--model", action="append", default=None, metavar="ID",
                    help="Whisper to benchmark: tiny.en (embedded, default), a hub id such as "
                         "openai/whisper-large-v3-turbo, or a local folder. Repeat for several.")
    group.addoption("--variant", action="append", default=None, choices=list(VARIANTS),
                    help="variant(s) to run (default: all that this hardware supports)")
    group.addoption("--dataset", default=None, metavar="PATH|ID",
                    help="short-form audio set: a folder with metadata.jsonl, or a hub dataset id such as "
                         "hf-internal-testing/librispeech_asr_dummy (default: the committed set)")
    group.addoption("--long-dataset", default=None, metavar="PATH",
                    help="long-form audio set for the pipeline variants (default: the committed long clips)")
    group.addoption("--device", default="auto", choices=["auto", "cuda", "cpu"],
                    help="where to run (default: cuda when present)")
    group.addoption("--rounds", type=int, default=3, help="timed passes over the audio set per variant (default 3)")
    group.addoption("--limit", type=int, default=None, metavar="N", help="use only the first N utterances")
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
                    help="sensitivity check only: make compiled forwards this much slower (needs "
                         "WHISPER_PERF_SENSITIVITY_CHECK=1)")
    group.addoption("--confidence", type=float, default=0.95,
                    help="confidence level of the intervals that verdicts use (default 0.95)")


def pytest_configure(config: pytest.Config) -> None:
    get = config.getoption
    rounds, limit, budget = get("--rounds"), get("--limit"), get("--max-new-tokens")
    if rounds < 1:
        raise pytest.UsageError(f"--rounds must be at least 1, not {rounds}")
    if limit is not None and limit < 1:
        raise pytest.UsageError(f"--limit must be at least 1, not {limit}")
    if not 1 <= budget <= 440:
        raise pytest.UsageError(f"--max-new-tokens must be between 1 and 440 (Whisper's decoder holds 448 "
                                f"positions, the prompt takes some), not {budget}")
    confidence = get("--confidence")
    if not 0.5 <= confidence < 1:
        raise pytest.UsageError(f"--confidence must be in [0.5, 1), not {confidence}")
    from .sensitivity import check_allowed

    slowdown = get("--inject-slowdown")
    try:
        check_allowed(slowdown)
    except SuiteError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if slowdown and get("--record"):
        raise pytest.UsageError("--record with --inject-slowdown would store a deliberately slowed timing as "
                                "the baseline; use one or the other.")
    config.whisper_perf = SuiteOptions(
        models=list(dict.fromkeys(get("--model") or ["tiny.en"])),
        variants=list(dict.fromkeys(get("--variant") or VARIANTS)),
        dataset=get("--dataset"), long_dataset=get("--long-dataset"), device=get("--device"),
        rounds=rounds, limit=limit,
        settings=GenerationSettings(max_new_tokens=budget, fixed_work=get("--fixed-work")),
        baselines=Path(get("--baselines") or config.rootpath / "baselines"), record=get("--record"),
        confidence=confidence, inject_slowdown=slowdown,
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    import torch
    import transformers

    from .hardware import detect_hardware

    try:
        hw = detect_hardware(config.whisper_perf.device)
        where = f"{hw.key} ({hw.device_name}, {hw.threads} threads)"
    except RuntimeError as exc:
        where = f"unavailable: {exc}"
    return [f"whisper_perf: hardware {where}",
            f"whisper_perf: torch {torch.__version__}, transformers {transformers.__version__}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    options: SuiteOptions = metafunc.config.whisper_perf
    if "model_spec" in metafunc.fixturenames:
        metafunc.parametrize("model_spec", options.models, scope="session",
                             ids=[m.rstrip("/").split("/")[-1] for m in options.models])
    if "variant_name" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("variants")
        wanted = [v for v in options.variants if marker is None or v in marker.args[0]]
        metafunc.parametrize("variant_name", wanted, scope="session")


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    from .report import measurement_table, verdict_table
    from .summary import summarize

    options = getattr(config, "whisper_perf", None)
    if not options or not options.measurements:
        return
    items = [(m, summarize(m, options.confidence)) for m in options.measurements.values()]
    terminalreporter.section("Whisper generate(): eager vs compiled")
    terminalreporter.write_line(measurement_table(items))
    if options.verdicts:
        terminalreporter.section("Verdicts against baselines")
        terminalreporter.write_line(verdict_table(options.verdicts))
    if options.recorded:
        path, diff = options.recorded
        terminalreporter.section(f"Recorded baseline {path}")
        terminalreporter.write_line(diff or "(no change)")
        terminalreporter.write_line("Review it with `git diff` and commit it.")


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """With --record: write what was measured into this hardware's baseline file (atomically)."""
    import datetime

    from .baselines import entry_from, record
    from .hardware import detect_hardware, software
    from .summary import summarize

    options: SuiteOptions = getattr(session.config, "whisper_perf", None)
    if not options or not options.record or not options.measurements:
        return
    if exitstatus not in (0, pytest.ExitCode.OK):
        session.config.get_terminal_writer().line(
            "Not recording: some tests failed or errored; fix them and record again.", red=True)
        return
    hardware = detect_hardware(options.device)
    provenance = {**software(), "device_name": hardware.device_name, "source": "measured by this suite",
                  "date": datetime.date.today().isoformat()}
    entries = [entry_from(m, summarize(m, options.confidence), provenance) for m in options.measurements.values()]
    options.recorded = record(options.baselines, hardware, entries)


def pytest_exception_interact(node, call, report) -> None:
    # A SuiteError's message says what is wrong and what to do; its traceback adds nothing.
    if call.excinfo is not None and isinstance(call.excinfo.value, SuiteError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
