"""Calibration: how often does the suite cry wolf here, and how small a slowdown does it catch?

``nox -s calibrate`` (``whisper-perf calibrate``) records a baseline (in ``--record-runs``
processes, keeping the median: see ``record_baseline``), then runs the suite ``--runs`` times, each a separate
pytest process judged against that baseline exactly as a user's run would be.  Each run times the
compiled variant unchanged (an A/A verdict) and, from the same compilation, its twin slowed by
``--inject-slowdown`` (a detection verdict): the two are measured minutes apart, so machine
drift hits both alike, and one compilation serves both.
It reports the false-alarm rate, the detection rate, the noise of the summed times (coefficient
of variation across runs and within runs) and the smallest slowdown the verdicts can detect, and
suggests tolerances for this hardware key; ``--write-tolerances`` stores them in
``baselines/<key>.json`` (review the printed diff and commit it, as with a recording), except a
tightened one that would have flagged an earlier default run of the same software here
(``tolerance_history``: the runs span more time than the calibration).

To fit an hour on a 2-core CPU, the calibration runs one compiled variant (``nox -s perf`` on a
CPU runs two) with the same utterances and rounds; the report says so and shows the detectable
slowdown of both the calibration runs and the latest default run found in ``results/runs``.

With ``--detect F`` the check runs take adaptive rounds (the suite's ``--detect``), and the report
says where they stopped and what they reached.  Every report also projects, from the runs'
round-to-round spread, the detectable slowdown after 1, 2, 4 and 8 minutes of timing per variant
(precision.py), to choose ``--detect`` by.  ``--report FOLDER`` measures nothing: it reports an
earlier calibration again with this version's analysis.

Exit status: 0 calibrated (false alarms and missed slowdowns are findings of the report, not
failures); 4 usage error (bad options, a malformed baseline file, ``--write-tolerances`` without
a baseline for this hardware key); 6 environment error (no GPU for ``--device cuda``); when a
recording fails, that recording's own exit status (errors.py), or 6 if it wrote no baseline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_ENVIRONMENT, EXIT_OK, UsageError
from ..files import replace_atomically
from ..judge import baselines
from ..judge.baselines import Entry, Tolerances
from ..judge.stats import Interval
from ..judge.verdicts import Outcome, Verdict
from ..judge.verdicts import time_checks as verdict_time_checks
from ..record.results import MeasurementRecord, RunResult, load_run
from . import Parser, run_command
from .calibration_analysis import analyse, latest_default_run
from .calibration_options import calibrated_batch, check_options, options_parser, with_device_defaults
from .calibration_report import render
from .tolerance_history import baseline_file, tolerances_to_write, write_tolerances


def time_checks(m: MeasurementRecord) -> set[str]:
    """The summed-time checks of a measurement (verdicts.time_checks).  They are also left
    unjudged when the machine's speed moved since the recording, which the speedup check is not."""
    return set(verdict_time_checks(m.setup.get("compile_mode") is not None, m.reference))


@dataclass
class Run:
    kind: str  # "record" or "check"
    index: int
    seconds: float
    exit_code: int
    result: RunResult | None = None
    error: str = ""

    def measurement(self, variant: str) -> MeasurementRecord | None:
        measurements = self.result.measurements if self.result else []
        return next((m for m in measurements if m.variant == variant), None)

    def verdicts(self, variant: str, check: str | None = None) -> list[Verdict]:
        m = self.measurement(variant)
        return self.result.verdicts_of(m.model, variant, check) if m else []

    def speedup(self, variant: str) -> Interval | None:
        m = self.measurement(variant)
        return m.summary.speedup if m else None

    def unreliable(self, variant: str, check: str = "speedup") -> bool:
        """Whether ``check`` of ``variant`` was not judged (machine busy)."""
        return any(v.outcome is Outcome.UNRELIABLE for v in self.verdicts(variant, check))

    def times_unreliable(self, variant: str) -> bool:
        m = self.measurement(variant)
        return m is not None and any(v.outcome is Outcome.UNRELIABLE and v.check in time_checks(m)
                                     for v in self.verdicts(variant))

    def probe_ms(self, variant: str) -> float | None:
        m = self.measurement(variant)
        return m.summary.machine_probe_ms if m else None

    def flagged(self, variant: str) -> list[str]:
        """The checks of ``variant`` that failed in this run (verdicts.Outcome.fails)."""
        return [f"{v.check}: {v.message}" for v in self.verdicts(variant) if v.outcome.fails]

    def stated_detectable(self, variant: str) -> float | None:
        """The smallest slowdown the speedup verdict of ``variant`` said it could detect."""
        return next((v.detectable for v in self.verdicts(variant, "speedup") if v.detectable is not None), None)

    def caught_by_speedup(self, variant: str) -> bool:
        return any(v.outcome.fails for v in self.verdicts(variant, "speedup"))


@dataclass
class Calibration:
    root: Path
    folder: Path
    args: argparse.Namespace
    hardware_key: str
    tolerances: Tolerances  # the tolerances the runs are judged with (the project's for this key)
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the report says of how the runs went (the budget)

    def pytest_args(self, results_dir: Path, extra: list[str], baselines_dir: Path | None = None) -> list[str]:
        a = self.args
        args = [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider", "-q",
                "--baselines", str(baselines_dir or self.folder / "baselines"), "--results-dir", str(results_dir),
                "--rounds", str(a.rounds), "--limit", str(a.limit), "--device", a.device]
        # speed verdicts only (on a GPU the device-time checks too, from their profiled calls): the other
        # diagnostic calls and the fresh-process compiles would lengthen every run
        device_checks = " or test_device" if self.hardware_key.startswith("cuda") else ""
        args += ["--variant", a.variant, "--compile-latency", "never", "-k", f"not test_diagnostics{device_checks}"]
        return args + list(a.pytest_args) + extra

    def run(self, kind: str, index: int, extra: list[str], env: dict | None = None,
            baselines_dir: Path | None = None) -> Run:
        results_dir = self.folder / "runs" / f"{kind}-{index:02d}"
        command = self.pytest_args(results_dir, extra, baselines_dir)
        start = time.perf_counter()
        log = (self.folder / "logs").joinpath(f"{kind}-{index:02d}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            proc = subprocess.run(command, cwd=self.root, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, **(env or {})})
        run = Run(kind, index, time.perf_counter() - start, proc.returncode)
        files = sorted(results_dir.glob("*/*.json"))
        if files:
            run.result = load_run(files[-1])
        else:
            run.error = f"no results file; see {log}"
        self.runs.append(run)
        return run


# ---- run ----

def record_baseline(cal: Calibration, say) -> Entry | None:
    """Record ``--record-runs`` baselines, each in its own process and folder, and keep the one
    with the median speedup as the baseline every check run is judged against.

    One recording carries its process's error (measured here: A/A speedups of separate runs
    spread with a coefficient of variation of 2.1% on the AMD host, calibration-20261203 under
    docs/measurements/), and every verdict of the calibration inherits
    it; the median of three halves the chance that the baseline itself sits in a tail."""
    from .record import median_index

    args, key = cal.args, cal.hardware_key
    recorded = []
    for i in range(args.record_runs):
        folder = cal.folder / "recordings" / f"{i:02d}"
        replace_atomically(baselines.path_for(folder, key), baselines.BaselineFile(key, tolerances=cal.tolerances).to_json())
        run = cal.run("record", i, ["--record"], baselines_dir=folder)
        if run.exit_code != 0 or not run.result or not run.result.recorded_baseline:
            say(f"recording {i + 1} failed (exit {run.exit_code}); see {cal.folder / 'logs'}")
            return None
        path = Path(run.result.recorded_baseline)
        entry = next(e for e in baselines.load(path, key).entries if e.variant == args.variant)
        say(f"recording {i + 1}/{args.record_runs} ({run.seconds:.0f} s): {entry.speedup:.3f}x")
        recorded.append((entry.speedup, i, path.read_text(encoding="utf-8"), entry))
    speedup, index, text, entry = recorded[median_index([r[0] for r in recorded])]  # as `record` keeps one
    replace_atomically(baselines.path_for(cal.folder / "baselines", key), text)
    say(f"baseline: recording {index + 1}, {speedup:.3f}x (all: {', '.join(f'{r[0]:.3f}x' for r in recorded)})")
    return entry


def _parser() -> Parser:
    return options_parser(__doc__.split("\n\n")[0])


def _start(args: argparse.Namespace) -> Calibration:
    """A new calibration folder, judged with the tolerances users of this hardware key are judged with."""
    from ..inputs.hardware import detect_hardware

    hardware_key = detect_hardware(args.device).key
    batch = calibrated_batch(args)
    if args.write_tolerances:
        baseline_file(args.root, hardware_key, batch)  # before an hour of runs, not after
    project_file = baselines.load_for(args.root / "baselines", hardware_key)
    tolerances = project_file.tolerances_of({"batch_size": batch}) if project_file else Tolerances()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = args.out or args.root / "results" / "calibration" / hardware_key / stamp
    folder.mkdir(parents=True, exist_ok=bool(args.out))  # --out: new or empty (checked before any run)
    return Calibration(args.root, folder, args, hardware_key, tolerances)


def _shown(run: Run, variant: str) -> str:
    speedup = run.speedup(variant)
    if speedup is None:
        return "no result"
    flag = " UNRELIABLE" if run.unreliable(variant) else " FLAGGED" if run.flagged(variant) else ""
    if not run.unreliable(variant) and run.times_unreliable(variant):
        flag += " (times not judged: machine speed changed)"
    return f"{speedup.estimate:.3f}x{flag}"


def budget_holds(args: argparse.Namespace, minutes_so_far: float, runs: list[Run]) -> bool:
    """Whether ``--budget-minutes`` holds another check run, taken to last as long as the longest
    run so far (the recordings included); the first check run always starts."""
    if args.budget_minutes is None or not any(r.kind == "check" for r in runs):
        return True
    return minutes_so_far + max(r.seconds for r in runs) / 60 <= args.budget_minutes


def check_runs(cal: Calibration, twin: str, say, start: float) -> None:
    args = cal.args
    for i in range(args.runs):
        if not budget_holds(args, (time.perf_counter() - start) / 60, cal.runs):
            cal.notes.append(f"{i} of {args.runs} check runs: --budget-minutes {args.budget_minutes:g} would not hold "
                             f"another (the longest run took {max(r.seconds for r in cal.runs):.0f} s)")
            say(cal.notes[-1])
            return
        run = cal.run("check", i, ["--inject-slowdown", str(args.slowdown), "--inject-on", args.inject_on,
                                   *_adaptive_args(args)],
                      {"WHISPER_PERF_SENSITIVITY_CHECK": "1"})
        say(f"run {i + 1}/{args.runs} ({run.seconds:.0f} s): A/A {_shown(run, args.variant)}, slowed "
            f"{_shown(run, twin)}; machine probe {run.probe_ms(args.variant) or float('nan'):.2f} ms")


def results_json(cal: Calibration, analysis: dict, minutes: float, twin: str) -> dict:
    variants = (cal.args.variant, twin)
    runs = [{"kind": r.kind, "index": r.index, "seconds": r.seconds, "exit_code": r.exit_code, "results": {
        v: {"speedup": r.speedup(v).as_dict() if r.speedup(v) else None, "flagged": r.flagged(v),
            "unreliable": r.unreliable(v), "times_unreliable": r.times_unreliable(v),
            "machine_probe_ms": r.probe_ms(v)} for v in variants}} for r in cal.runs]
    return {"hardware_key": cal.hardware_key, "minutes": minutes, "notes": cal.notes,
            "options": {k: v for k, v in vars(cal.args).items() if k != "root"}, "analysis": analysis, "runs": runs}


def _adaptive_args(args: argparse.Namespace) -> list[str]:
    """--detect and --max-minutes for the check runs (the recordings take their fixed rounds)."""
    if args.detect is None:
        return []
    return ["--detect", str(args.detect)] + (["--max-minutes", str(args.max_minutes)] if args.max_minutes else [])


def reopen(folder: Path, root: Path) -> tuple[Calibration, Entry, float, RunResult | None]:
    """A finished calibration from its folder (calibration.json, the kept baseline, every run's
    results file and the default run it reported, where that is still there), to be reported
    again with this version's analysis."""
    path = folder / "calibration.json"
    if not path.is_file():
        raise UsageError(f"--report {folder}: no calibration.json there; give the folder of a finished calibration "
                         "(results/calibration/<hardware key>/<time>)")
    data = json.loads(path.read_text(encoding="utf-8"))
    args = argparse.Namespace(**{**vars(_parser().parse_args([])), **data["options"], "root": root})
    key = data["hardware_key"]
    kept = baselines.load(baselines.path_for(folder / "baselines", key), key)
    entry = next(e for e in kept.entries if e.variant == args.variant)
    cal = Calibration(root, folder, args, key, kept.tolerances, notes=data.get("notes", []))
    for r in data["runs"]:
        files = sorted((folder / "runs" / f"{r['kind']}-{r['index']:02d}").glob("*/*.json"))
        cal.runs.append(Run(r["kind"], r["index"], r["seconds"], r["exit_code"],
                            load_run(files[-1]) if files else None, "" if files else "no results file"))
    default = next(iter((data["analysis"].get("default_run_detectable") or {}).values()), None)
    found = sorted((root / "results" / "runs").glob(f"*/{default['file']}")) if default else []
    return cal, entry, data["minutes"], load_run(found[0]) if found else None


def report(cal: Calibration, entry: Entry, minutes: float, default_run: RunResult | None, name: str = "calibration") -> dict:
    """Analyse the runs, write ``<name>.md`` and ``<name>.json`` into the calibration's folder, print the report."""
    from ..build.variant_specs import slowed_twin

    analysis = analyse(cal, cal.args.variant, entry, default_run)
    text = render(analysis, cal, minutes)
    replace_atomically(cal.folder / f"{name}.md", text)
    replace_atomically(cal.folder / f"{name}.json", json.dumps(
        results_json(cal, analysis, minutes, slowed_twin(cal.args.variant)), indent=1, default=str) + "\n")
    print(text)
    print(f"Written to {cal.folder / name}.md")
    return analysis


def measure(args: argparse.Namespace, start: float) -> tuple[Calibration, Entry, float] | int:
    """Record the baseline and run the checks; the exit status of a failed recording instead.
    ``start``: when the command started (perf_counter), which --budget-minutes counts from."""
    from ..build.variant_specs import slowed_twin

    cal = _start(args)

    def say(text: str) -> None:
        print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {text}", flush=True)

    say(f"calibrating {cal.hardware_key} with tolerances {cal.tolerances}: recording a baseline"
        + (f" in {args.record_runs} processes, keeping the median" if args.record_runs > 1 else ""))
    entry = record_baseline(cal, say)
    if entry is None:
        return cal.runs[-1].exit_code or EXIT_ENVIRONMENT  # the failed recording's own status says why
    check_runs(cal, slowed_twin(args.variant), say, start)
    return cal, entry, (time.perf_counter() - start) / 60


def _reported(args: argparse.Namespace, parser: Parser) -> tuple[Calibration, Entry, float, RunResult | None, str]:
    """--report: an earlier calibration, reported into report-<time>.md beside its own report."""
    measuring = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                 if k not in ("report", "root", "write_tolerances") and v not in (parser.get_default(k), [])]
    if measuring:
        parser.error(f"--report measures nothing: {', '.join(measuring)} would not apply; leave them out")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return (*reopen(args.report, args.root), f"report-{stamp}")


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.report:
        cal, entry, minutes, default_run, name = _reported(args, parser)
    else:
        from ..inputs.hardware import detect_hardware

        check_options(parser, args)
        with_device_defaults(args, detect_hardware(args.device).is_cuda)
        measured = measure(args, start)
        if isinstance(measured, int):
            return measured
        cal, entry, minutes = measured
        default_run, name = latest_default_run(args.root, cal.hardware_key, calibrated_batch(args)), "calibration"
    analysis = report(cal, entry, minutes, default_run, name)
    if args.write_tolerances:
        software, batch = next((r.result.software for r in cal.runs if r.result), {}), calibrated_batch(cal.args)
        written, held = tolerances_to_write(args.root, cal.hardware_key, analysis["suggested_tolerances"], software,
                                            batch)
        for line in held:
            print(line)
        print(write_tolerances(args.root, cal.hardware_key, written, batch) or "(no change)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_command(main))
