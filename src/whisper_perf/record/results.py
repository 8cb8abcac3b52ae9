"""One results file per run, and the typed record every reader of it uses.

``results/runs/<hardware key>/<UTC time>-<pid>.json`` holds the environment, the options, every
raw sample with the contention evidence of its round, each measurement's summary and
diagnostics, every verdict and what failed.  It is written once (``write_run``: never over an
earlier run's file, never half-written) and read back as a ``RunResult`` (``load_run``): the
report, charts, merge, history, calibration and upgrade comparison all read these types, never
raw keys.  ``SCHEMA_VERSION`` is the file format; a file of another version is refused by name.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SuiteError, UsageError
from ..files import write_new
from ..measure.diagnostics_data import Diagnostics
from ..judge.summary import Summary
from ..judge.verdicts import Outcome, Verdict, nothing_judged

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Failure:
    """A variant that failed to build or be timed."""

    model: str
    variant: str
    stage: str  # "build" or "timing"
    error: str

    def to_dict(self) -> dict:
        return {"model": self.model, "variant": self.variant, "stage": self.stage, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict) -> Failure:
        return cls(data["model"], data["variant"], data["stage"], data["error"])


@dataclass(frozen=True)
class Skip:
    """A variant that cannot run here (torch.compile unsupported on the platform...), and why."""

    model: str
    variant: str
    reason: str

    def to_dict(self) -> dict:
        return {"model": self.model, "variant": self.variant, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> Skip:
        return cls(data["model"], data["variant"], data["reason"])


@dataclass(frozen=True)
class VerdictRecord:
    model: str
    variant: str
    verdict: Verdict

    def to_dict(self) -> dict:
        return {"model": self.model, "variant": self.variant, **self.verdict.as_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> VerdictRecord:
        return cls(data["model"], data["variant"], Verdict.from_dict(data))


Samples = list  # per round: [[utterance, seconds, tokens], ...]


@dataclass
class MeasurementRecord:
    """One model x variant of a run: what was timed, every raw sample, its summary and diagnostics."""

    model: str
    variant: str
    reference: str | None
    audio_set: str
    utterances: int
    audio_seconds: float
    setup: dict  # variants.Variant.describe()
    summary: Summary
    diagnostics: Diagnostics
    rounds_requested: int = 0
    first_call_seconds: float | None = None
    warmup_seconds: float | None = None
    loads: list[dict] = field(default_factory=list)  # contention.Load.as_dict() per round
    machine_probe_ms: list[list[float]] = field(default_factory=list)
    samples: Samples = field(default_factory=list)
    reference_samples: Samples = field(default_factory=list)
    transcripts: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.model, self.variant

    @property
    def batch_size(self) -> int:
        return self.setup.get("batch_size", 1)

    @property
    def batch_text(self) -> str:
        """The utterances per call where it is not 1 (--batch): times, RTFx and per-token figures are per batch size."""
        return f", batch {self.batch_size}" if self.batch_size != 1 else ""

    @property
    def variant_shown(self) -> str:
        """The variant as reports across runs name it: with its batch size where that is not 1, since
        the batch-1 and the batched measurement of one variant are two series, never one."""
        return self.variant + (f" (batch {self.batch_size})" if self.batch_size != 1 else "")

    @property
    def protocol(self) -> dict:
        from ..judge.baselines import protocol_of

        return protocol_of(self.setup, self.audio_set, self.utterances)

    def seconds_table(self, reference: bool = False) -> list[list[float]]:
        """rounds x utterances seconds of the variant (or of its reference), as stats takes them."""
        return [[s[1] for s in p] for p in (self.reference_samples if reference else self.samples)]

    @classmethod
    def from_measurement(cls, m, summary: Summary, diagnostics: Diagnostics | None = None) -> MeasurementRecord:
        """From a timing.Measurement, its summary and its diagnostics (diagnostics.diagnose; without
        the diagnostic calls, the compile health of warm-up and timed rounds)."""
        passes = lambda ps: [[[s.utterance, s.seconds, s.tokens] for s in p.samples] for p in ps]  # noqa: E731
        diagnosed = diagnostics or Diagnostics(m.first_call_seconds, m.warmup_compile, m.timed_compile)
        return cls(model=m.model, variant=m.variant, reference=m.reference, audio_set=m.audio_set,
                   utterances=len(m.reference_texts), audio_seconds=m.audio_seconds, setup=m.setup,
                   summary=summary, diagnostics=diagnosed, rounds_requested=m.rounds_requested,
                   first_call_seconds=m.first_call_seconds, warmup_seconds=m.warmup_seconds,
                   loads=[load.as_dict() for load in m.loads],
                   machine_probe_ms=[[round(p, 3) for p in r] for r in m.probes],
                   samples=passes(m.passes), reference_samples=passes(m.reference_passes),
                   transcripts={u: t.text for u, t in m.passes[-1].transcripts.items()} if m.passes else {})

    def to_dict(self) -> dict:
        return {"model": self.model, "variant": self.variant, "reference": self.reference,
                "audio_set": self.audio_set, "utterances": self.utterances, "audio_seconds": self.audio_seconds,
                "setup": self.setup, "rounds_requested": self.rounds_requested,
                "first_call_seconds": self.first_call_seconds, "warmup_seconds": self.warmup_seconds,
                "summary": self.summary.as_dict(), "loads": self.loads, "machine_probe_ms": self.machine_probe_ms,
                "samples": self.samples, "reference_samples": self.reference_samples,
                "transcripts": self.transcripts, "diagnostics": self.diagnostics.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> MeasurementRecord:
        return cls(model=data["model"], variant=data["variant"], reference=data.get("reference"),
                   audio_set=data["audio_set"], utterances=data["utterances"], audio_seconds=data["audio_seconds"],
                   setup=data["setup"], summary=Summary.from_dict(data["summary"]),
                   diagnostics=Diagnostics.from_dict(data.get("diagnostics")),
                   rounds_requested=data.get("rounds_requested", 0),
                   first_call_seconds=data.get("first_call_seconds"), warmup_seconds=data.get("warmup_seconds"),
                   loads=data.get("loads", []), machine_probe_ms=data.get("machine_probe_ms", []),
                   samples=data.get("samples", []), reference_samples=data.get("reference_samples", []),
                   transcripts=data.get("transcripts", {}))


@dataclass(frozen=True)
class Tally:
    """Counts of verdicts by what they mean for a gate."""

    passed: int
    failed: int  # failing verdicts and variants that failed to build or be timed
    no_baseline: int
    unreliable: int
    not_applicable: int
    carried_over: int
    known_anomalies: int
    hardware_key: str
    changed: int = 0  # fingerprints that differ from the baseline's: reported, neither passed nor failed
    not_applicable_checks: tuple[str, ...] = ()  # which: device time on a CPU, WER of random weights

    @classmethod
    def of(cls, verdicts: list[Verdict], failed_variants: int, hardware_key: str) -> Tally:
        count = lambda *outcomes: sum(v.outcome in outcomes for v in verdicts)  # noqa: E731
        return cls(passed=count(Outcome.PASS, Outcome.IMPROVED, Outcome.KNOWN_ANOMALY),
                   failed=count(*(o for o in Outcome if o.fails)) + failed_variants,
                   no_baseline=count(Outcome.NO_BASELINE), unreliable=count(Outcome.UNRELIABLE),
                   not_applicable=count(Outcome.NOT_APPLICABLE), carried_over=count(Outcome.CARRIED_OVER),
                   known_anomalies=count(Outcome.KNOWN_ANOMALY),
                   hardware_key=hardware_key, changed=count(Outcome.CHANGED),
                   not_applicable_checks=tuple(sorted({v.check for v in verdicts if v.outcome is Outcome.NOT_APPLICABLE})))

    @property
    def not_judged(self) -> int:
        return self.no_baseline + self.unreliable + self.not_applicable + self.carried_over

    def text(self) -> str:
        """E.g. "3 checks passed, 0 failed, 9 not judged (9 without a baseline for KEY: record one with
        nox -s record)"; REGRESSION first when anything failed."""
        if not (self.passed or self.failed or self.not_judged or self.changed):
            return "nothing judged"
        why = [f"{self.no_baseline} without a baseline for {self.hardware_key}: record one with nox -s record"
               if self.no_baseline else "",
               f"{self.unreliable} unreliable: machine busy, or its speed changed since the recording"
               if self.unreliable else "",
               f"{self.not_applicable} not applicable here: {', '.join(self.not_applicable_checks)}"
               if self.not_applicable else "",
               f"{self.carried_over} carried over from an earlier run" if self.carried_over else ""]
        anomalies = f" ({self.known_anomalies} a known anomaly)" if self.known_anomalies else ""
        text = (f"{self.passed} check{'s' * (self.passed != 1)} passed{anomalies}, {self.failed} failed, "
                f"{self.not_judged} not judged" + (f" ({'; '.join(w for w in why if w)})" if self.not_judged else "")
                + (f"; {self.changed} fingerprint(s) changed (reported, not failed)" if self.changed else ""))
        return f"REGRESSION: {text}" if self.failed else text


@dataclass
class RunResult:
    """A run's results file."""

    hardware: dict  # hardware.Hardware.as_dict()
    software: dict  # hardware.software()
    finished: str  # UTC, ISO 8601
    exit_status: int
    options: dict  # config.RunConfig.as_dict()
    measurements: list[MeasurementRecord] = field(default_factory=list)
    verdicts: list[VerdictRecord] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    recorded_baseline: str | None = None
    input_changes: list[str] = field(default_factory=list)  # what the suite changed about the input
    skipped: list[Skip] = field(default_factory=list)  # variants that cannot run here
    planned: list[tuple[str, str]] = field(default_factory=list)  # (model, variant) the run set out to time
    bug_reports: dict[str, str] = field(default_factory=dict)  # "model/variant" -> its bug-report folder
    path: Path | None = None  # where it was read from

    @property
    def hardware_key(self) -> str:
        return self.hardware["key"]

    @property
    def on_cuda(self) -> bool:
        return self.hardware.get("device", self.hardware_key.split("-")[0]) == "cuda"

    def measurement(self, model: str, variant: str) -> MeasurementRecord | None:
        return next((m for m in self.measurements if m.key == (model, variant)), None)

    def verdicts_of(self, model: str, variant: str, check: str | None = None) -> list[Verdict]:
        return [v.verdict for v in self.verdicts
                if (v.model, v.variant) == (model, variant) and check in (None, v.verdict.check)]

    def tally(self, model: str | None = None, variant: str | None = None) -> Tally:
        """What was judged and what was not, for the run or for one model x variant."""
        mine = lambda r: model in (None, r.model) and variant in (None, r.variant)  # noqa: E731
        return Tally.of([v.verdict for v in self.verdicts if mine(v)], sum(mine(f) for f in self.failures),
                        self.hardware_key)

    def unreached(self) -> list[tuple[str, str]]:
        """(model, variant) the run set out to time but never measured, failed or skipped (it was
        interrupted before them)."""
        seen = {m.key for m in self.measurements} | {(f.model, f.variant) for f in self.failures} | {
            (s.model, s.variant) for s in self.skipped}
        return [key for key in self.planned if key not in seen]

    def nothing_judged(self) -> bool:
        """No speed check was judged: every variant skipped, failed or unreached, every round busy, or
        no baseline and no eager reference to compare with.  A gate never passes such a run."""
        return nothing_judged([(v.model, v.variant, v.verdict) for v in self.verdicts])

    def headline(self) -> str:
        """The run in one line (the report's title, the terminal's last line): never "no regression"
        where the checks were not judged; NOTHING MEASURED / NOTHING JUDGED where no speed check was."""
        if not self.verdicts and not self.failures and self.options.get("record") and self.measurements:
            return ("baseline recorded (nothing judged while recording)" if self.recorded_baseline
                    else "NOTHING RECORDED (the lines above say why; nothing judged while recording)")
        missing = self._missing_text()
        if not self.measurements:
            return "NOTHING MEASURED: " + (missing or "no variant was timed")
        text = self.tally().text() + (f"; {missing}" if missing else "")
        if self.nothing_judged() and not self.tally().failed and not self.options.get("record"):
            return f"NOTHING JUDGED: {text}"
        return text

    def _missing_text(self) -> str:
        """What the run did not time, counted by why: skipped (with the reasons), failed, unreached."""
        reasons = sorted({s.reason for s in self.skipped})
        parts = [f"{len(self.skipped)} variant(s) skipped ({'; '.join(reasons)})" if self.skipped else "",
                 f"{len(self.failures)} failed to build or be timed" if self.failures and not self.measurements else "",
                 f"{len(self.unreached())} never reached (the run was interrupted): "
                 + ", ".join(f"{m}/{v}" for m, v in self.unreached()) if self.unreached() else ""]
        return "; ".join(p for p in parts if p)

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "hardware": self.hardware, "software": self.software,
                "finished": self.finished, "exit_status": self.exit_status, "options": self.options,
                "measurements": [m.to_dict() for m in self.measurements],
                "verdicts": [v.to_dict() for v in self.verdicts],
                "failures": [f.to_dict() for f in self.failures], "recorded_baseline": self.recorded_baseline,
                "input_changes": self.input_changes, "skipped": [s.to_dict() for s in self.skipped],
                "planned": [list(key) for key in self.planned], "bug_reports": self.bug_reports}

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> RunResult:
        return cls(hardware=data["hardware"], software=data["software"], finished=data["finished"],
                   exit_status=data["exit_status"], options=data["options"],
                   measurements=[MeasurementRecord.from_dict(m) for m in data.get("measurements", [])],
                   verdicts=[VerdictRecord.from_dict(v) for v in data.get("verdicts", [])],
                   failures=[Failure.from_dict(f) for f in data.get("failures", [])],
                   recorded_baseline=data.get("recorded_baseline"), input_changes=data.get("input_changes", []),
                   skipped=[Skip.from_dict(s) for s in data.get("skipped", [])],
                   planned=[tuple(key) for key in data.get("planned", [])], bug_reports=data.get("bug_reports", {}),
                   path=path)


def run_name() -> str:
    """The name of a new run's results file, without ``.json``: its UTC time and process id."""
    return f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}-{os.getpid()}"


def write_run(folder: Path, hardware_key: str, run: RunResult, name: str | None = None) -> Path:
    """Write ``run`` as a new file under ``folder/hardware_key`` (named ``name``, or now); never
    replaces a file."""
    name = name or run_name()
    text = json.dumps(run.to_dict(), indent=1, sort_keys=True, default=str) + "\n"
    target = folder / hardware_key
    names = (target / f"{name}{'' if i == 0 else f'-{i}'}.json" for i in range(100))
    run.path = write_new(names, text)
    return run.path


def load_run(path: Path) -> RunResult:
    """A results file as a RunResult; UsageError naming the file when it cannot be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a readable results file ({exc})") from exc
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise UsageError(f"{path}: results schema_version {version!r}, this suite reads {SCHEMA_VERSION}")
    try:
        return RunResult.from_dict(data, Path(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: not a results file of this suite (missing or bad field {exc})") from exc


def runs_newest_first(folder: Path, hardware_key: str):
    """The readable results files of ``hardware_key`` under ``folder`` (RunResult), newest first;
    files of another schema, or damaged ones, are passed over."""
    for path in sorted((Path(folder) / hardware_key).glob("*.json"), reverse=True):
        try:
            yield load_run(path)
        except SuiteError:
            continue


def latest_cold_compile(folder: Path, hardware_key: str, versions: dict, model: str, variant: str,
                        max_new_tokens: int) -> dict | None:
    """The cold/warm compile latency an earlier run measured for the same hardware, torch and
    transformers versions, model, variant and token budget (newest first), marked with its file."""
    for run in runs_newest_first(folder, hardware_key):
        if any(run.software.get(k) != v for k, v in versions.items()):
            continue
        m = run.measurement(model, variant)
        cold = m.diagnostics.cold_compile if m else None
        if cold and m.setup.get("max_new_tokens") == max_new_tokens and cold.get("source") == "measured in this run":
            return {**cold, "source": f"measured by {run.path.name}"}
    return None
