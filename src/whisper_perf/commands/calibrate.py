"""Calibration: how often does the suite cry wolf here, and how small a slowdown does it catch?

``nox -s calibrate`` (``python -m whisper_perf.commands.calibrate``) records a baseline (in three
processes, keeping the median: see ``record_baseline``), then runs the suite ``--runs`` times, each a separate
pytest process judged against that baseline exactly as a user's run would be.  Each run times the
compiled variant unchanged (an A/A verdict) and, from the same compilation, its twin slowed by
``--inject-slowdown`` (a detection verdict): the two are measured minutes apart, so machine
drift hits both alike, and one compilation serves both.
It reports the false-alarm rate, the detection rate, the noise of the summed times (coefficient
of variation across runs and within runs) and the smallest slowdown the verdicts can detect, and
suggests tolerances for this hardware key; ``--write-tolerances`` stores them in
``baselines/<key>.json`` (review the printed diff and commit it, as with a recording).

To fit an hour on a 2-core CPU, the calibration runs one compiled variant (``nox -s perf`` on a
CPU runs two) with the same utterances and rounds; the report says so and shows the detectable
slowdown of both the calibration runs and the latest default run found in ``results/runs``.

Exit status: 0 calibrated (false alarms and missed slowdowns are findings of the report, not
failures); 4 usage error (bad options, a malformed baseline file, ``--write-tolerances`` without
a baseline for this hardware key); 6 environment error (no GPU for ``--device cuda``); when a
recording fails, that recording's own exit status (errors.py), or 6 if it wrote no baseline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import baselines
from ..baselines import Entry, Tolerances
from ..errors import EXIT_ENVIRONMENT, EXIT_OK, UsageError
from ..files import replace_atomically
from ..machine_speed import adjustment
from ..report import md_table
from ..results import MeasurementRecord, RunResult, load_run, runs_newest_first
from ..stats import Interval, detectable_speedup_loss
from ..verdicts import Outcome, Verdict, credible_change
from ..verdicts import time_checks as verdict_time_checks
from . import Parser, run_command


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

    def pytest_args(self, results_dir: Path, extra: list[str], baselines_dir: Path | None = None) -> list[str]:
        a = self.args
        args = [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider", "-q",
                "--baselines", str(baselines_dir or self.folder / "baselines"), "--results-dir", str(results_dir),
                "--rounds", str(a.rounds), "--limit", str(a.limit), "--device", a.device]
        # speed verdicts only: the diagnostic calls and fresh-process compiles would lengthen every run
        args += ["--variant", a.variant, "--compile-latency", "never", "-k", "not test_diagnostics"]
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


# ---- analyse: the numbers of the report, from the runs' results files ----

@dataclass
class Groups:
    """The check runs, sorted by what they can tell."""

    aa: list[Run]  # measured the variant unchanged
    slowed: list[Run]  # measured its slowed twin
    judged_aa: list[Run]  # ... and the speedup was judged (machine quiet)
    judged_slowed: list[Run]
    times_judged: list[Run]  # judged A/A runs whose time checks were judged too (machine speed steady)

    @classmethod
    def of(cls, runs: list[Run], variant: str, twin: str) -> Groups:
        checks = [r for r in runs if r.kind == "check" and r.result]
        aa = [r for r in checks if r.measurement(variant)]
        slowed = [r for r in checks if r.measurement(twin)]
        judged_aa = [r for r in aa if not r.unreliable(variant)]
        return cls(aa, slowed, judged_aa, [r for r in slowed if not r.unreliable(twin)],
                   [r for r in judged_aa if not r.times_unreliable(variant)])


def _adjusted_seconds(run: Run, variant: str, baseline_probe: float | None) -> Interval:
    """The run's summed seconds at the machine speed of the recording (as the time checks compare)."""
    summary = run.measurement(variant).summary
    factor, _ = adjustment(summary.machine_probe_ms, baseline_probe)
    return summary.seconds.scaled(factor or 1.0)


def _rel_sd(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else float("nan")


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ceil_percent(x: float) -> float:
    return math.ceil(x * 100 - 1e-9) / 100


def suggest_tolerances(current: Tolerances, baseline: Entry, aa_speedups: list[Interval],
                       aa_seconds: list[Interval], adjusted_seconds: list[Interval]) -> dict:
    """The smallest tolerances under which no A/A run here would have failed, plus a margin of
    three standard deviations of the run-to-run spread beyond the worst one seen (the baseline is
    one run too, so its own error is part of what the tolerance must absorb).  With fewer than
    three runs the spread cannot be seen: the tolerances in effect stay."""
    speedup, compiled_time = current.speedup, current.compiled_time
    if len(aa_speedups) >= 3:
        half_widths = [(s.high - s.estimate) / s.estimate for s in aa_speedups]
        worst = max(1 - s.high / baseline.speedup for s in aa_speedups)
        spread = _rel_sd([s.estimate for s in aa_speedups])
        speedup = _ceil_percent(max(0.02, worst + 0.01, 3 * spread - statistics.median(half_widths)))
    if len(adjusted_seconds) >= 3:
        half_widths = [(s.estimate - s.low) / s.estimate for s in aa_seconds]
        worst = max(s.low / baseline.seconds - 1 for s in adjusted_seconds)
        spread = _rel_sd([s.estimate for s in adjusted_seconds])  # as the time checks compare them
        compiled_time = _ceil_percent(max(0.05, worst + 0.02, 3 * spread - statistics.median(half_widths)))
    return {"speedup": speedup, "compiled_time": compiled_time}


def _counts(g: Groups, cal: Calibration, variant: str, twin: str) -> dict:
    false_alarms = [r for r in g.judged_aa if r.flagged(variant)]
    detected = [r for r in g.judged_slowed if r.caught_by_speedup(twin)]
    return {
        "runs": {"A/A": len(g.aa), "slowed": len(g.slowed), "unreliable_A/A": len(g.aa) - len(g.judged_aa),
                 "unreliable_slowed": len(g.slowed) - len(g.judged_slowed),
                 "time_checks_unjudged_A/A": len(g.judged_aa) - len(g.times_judged),
                 "failed_to_produce_results": len([r for r in cal.runs if not r.result])},
        "false_alarms": len(false_alarms), "false_alarm_rate": len(false_alarms) / max(len(g.judged_aa), 1),
        "false_alarm_details": [f"run {r.index}: " + "; ".join(r.flagged(variant)) for r in false_alarms],
        "detected_by_speedup": len(detected),
        "detected_by_any_check": len([r for r in g.judged_slowed if r.flagged(twin)]),
        "detection_rate": len(detected) / max(len(g.judged_slowed), 1)}


def default_run_detectable(run: RunResult | None, speedup_tolerance: float) -> dict | None:
    """Per variant of the latest default run: the smallest slowdown it could flag with ``speedup_tolerance``."""
    if run is None:
        return None
    return {m.variant: {"with_suggested": detectable_speedup_loss(m.summary.speedup, speedup_tolerance),
                        "utterances": m.utterances, "rounds": m.summary.rounds_used, "file": run.path.name}
            for m in run.measurements if m.summary.speedup and not m.summary.speedup.single_round}


def analyse(cal: Calibration, variant: str, baseline: Entry, default_run: RunResult | None) -> dict:
    """Each check run holds one A/A measurement of ``variant`` and one of its slowed twin."""
    from ..variants import slowed_twin

    twin = slowed_twin(variant)
    g = Groups.of(cal.runs, variant, twin)
    aa_speedups = [r.speedup(variant) for r in g.judged_aa]
    aa_seconds = [r.measurement(variant).summary.seconds for r in g.judged_aa]
    adjusted = [_adjusted_seconds(r, variant, baseline.machine_probe_ms) for r in g.times_judged]
    probes = [p for p in (r.probe_ms(variant) for r in g.judged_aa) if p]
    suggested = suggest_tolerances(cal.tolerances, baseline, aa_speedups, aa_seconds, adjusted)
    # With the suggested tolerance, would the slowed runs still have been caught?
    caught = [r for r in g.judged_slowed
              if credible_change(r.speedup(twin), baseline.speedup, suggested["speedup"], True) == "worse"]
    detectable = [v.detectable for r in g.judged_aa for v in r.verdicts(variant, "speedup") if v.detectable is not None]
    return {
        **_counts(g, cal, variant, twin),
        "baseline": {"speedup": baseline.speedup, "seconds": baseline.seconds,
                     "machine_probe_ms": baseline.machine_probe_ms},
        "machine_probe_ms": {"min": min(probes), "max": max(probes)} if probes else None,
        "aa_seconds": [s.estimate for s in aa_seconds],
        "aa_speedups": [s.estimate for s in aa_speedups],
        "slowed_speedups": [r.speedup(twin).estimate for r in g.judged_slowed],
        "noise": {"run_to_run_cv_seconds": _rel_sd([s.estimate for s in aa_seconds]),
                  "run_to_run_cv_adjusted_seconds": _rel_sd([s.estimate for s in adjusted]),
                  "run_to_run_cv_speedup": _rel_sd([s.estimate for s in aa_speedups]),
                  "within_run_cv_seconds_median": _median([r.measurement(variant).summary.noise_cv
                                                           for r in g.judged_aa]),
                  "speedup_half_width_median": _median([(s.high - s.estimate) / s.estimate for s in aa_speedups])},
        "detectable_slowdown_calibration_median": _median(detectable),
        "suggested_tolerances": suggested,
        "detected_with_suggested": len(caught),
        "default_run_detectable": default_run_detectable(default_run, suggested["speedup"]),
    }


def latest_default_run(root: Path, hardware_key: str) -> RunResult | None:
    """The newest run of the default profile (quick, nothing injected, not a recording) under results/runs."""
    for run in runs_newest_first(root / "results" / "runs", hardware_key):
        options = run.options
        if options.get("profile") == "quick" and not options.get("inject_slowdown") \
                and not options.get("record") and run.measurements:
            return run
    return None


# ---- render ----

def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _probe_text(a: dict) -> str:
    base, runs = a["baseline"].get("machine_probe_ms"), a.get("machine_probe_ms")
    if not base or not runs:
        return "-"
    return f"{base:.2f} ms / {runs['min']:.2f}-{runs['max']:.2f} ms (mean per call)"


def _min_max(values: list[float], unit: str) -> str:
    return f"{min(values, default=float('nan')):.3f}-{max(values, default=float('nan')):.3f}{unit}"


def result_rows(a: dict, slowdown: float) -> list[tuple[str, str]]:
    runs, noise, suggested = a["runs"], a["noise"], a["suggested_tolerances"]
    return [
        ("false alarms (A/A runs with any failing check)",
         f"{a['false_alarms']} of {runs['A/A'] - runs['unreliable_A/A']} ({_pct(a['false_alarm_rate'])})"),
        (f"{slowdown:.0%} slowdown caught by the speedup verdict",
         f"{a['detected_by_speedup']} of {runs['slowed'] - runs['unreliable_slowed']} ({_pct(a['detection_rate'])})"),
        ("caught by any check", f"{a['detected_by_any_check']}"),
        ("runs judged unreliable (machine busy), not counted",
         f"{runs['unreliable_A/A']} A/A, {runs['unreliable_slowed']} slowed"),
        ("A/A runs whose time checks were not judged (machine speed moved too far to adjust for)",
         f"{runs['time_checks_unjudged_A/A']}"),
        ("machine-speed probe: baseline / A/A runs (min-max)", _probe_text(a)),
        ("baseline speedup / compiled seconds", f"{a['baseline']['speedup']:.3f}x / {a['baseline']['seconds']:.2f} s"),
        ("A/A speedups (min-max)", _min_max(a["aa_speedups"], "x")),
        ("slowed speedups (min-max)", _min_max(a["slowed_speedups"], "x")),
        ("run-to-run CV of summed compiled seconds: as measured / at the recording's machine speed",
         f"{_pct(noise['run_to_run_cv_seconds'])} / {_pct(noise['run_to_run_cv_adjusted_seconds'])}"),
        ("run-to-run CV of the speedup", _pct(noise["run_to_run_cv_speedup"])),
        ("within-run CV of pass totals (median)", _pct(noise["within_run_cv_seconds_median"])),
        ("speedup interval upper half-width (median)", _pct(noise["speedup_half_width_median"])),
        ("smallest detectable slowdown, calibration runs (median)", _pct(a["detectable_slowdown_calibration_median"])),
        ("suggested tolerances",
         f"speedup {_pct(suggested['speedup'])}, time {_pct(suggested['compiled_time'])}"),
        ("slowed runs caught with the suggested speedup tolerance", f"{a['detected_with_suggested']}"),
    ] + _default_run_rows(a["default_run_detectable"])


def _default_run_rows(detectable: dict | None) -> list[tuple[str, str]]:
    if not detectable:
        return [("smallest detectable slowdown, default run",
                 "no default run found in results/runs: run `nox -s perf` once and calibrate again")]
    return [(f"smallest detectable slowdown, default run ({variant}, {d['utterances']} utterances, "
             f"{d['rounds']} rounds; {d['file']}), suggested tolerance", _pct(d["with_suggested"]))
            for variant, d in detectable.items()]


def render(a: dict, cal: Calibration, minutes: float) -> str:
    args = cal.args
    lines = [
        f"# Calibration on {cal.hardware_key}", "",
        f"{a['runs']['A/A']} runs, each a separate pytest process that times `{args.variant}` unchanged (A/A) and "
        f"its twin slowed by {args.slowdown:.0%}, both judged against a baseline recorded first (the median "
        f"of {args.record_runs} recording processes); {args.limit} utterances and {args.rounds} rounds per measurement. "
        f"Took {minutes:.1f} minutes.", "",
        md_table(("", "result"), result_rows(a, args.slowdown))]
    if a["false_alarm_details"]:
        lines += ["", "False alarms:", *[f"- {d}" for d in a["false_alarm_details"]]]
    failed = [r for r in cal.runs if not r.result]
    if failed:
        lines += ["", "Runs without results:", *[f"- {r.kind} {r.index}: exit {r.exit_code}, {r.error}" for r in failed]]
    lines += ["", "A/A: the unchanged build; any failing check (speedup, times, WER) counts as a false alarm. "
              "Detectable slowdown: the smallest slowdown the speedup verdict flags given the tolerance and the "
              "run's measured noise (see README, \"How far to trust a verdict\")."]
    return "\n".join(lines) + "\n"


# ---- run ----

def baseline_file(root: Path, hardware_key: str) -> Path:
    """The project's baseline file of ``hardware_key``, which --write-tolerances changes."""
    path = baselines.path_for(root / "baselines", hardware_key)
    if not path.exists():
        raise UsageError(f"{path} does not exist: record a baseline first (nox -s record)")
    return path


def write_tolerances(root: Path, hardware_key: str, suggested: dict) -> str:
    """Store the suggested tolerances in the hardware's baseline file; returns the diff."""
    from dataclasses import replace

    path = baseline_file(root, hardware_key)
    with baselines._locked(path):
        current = baselines.load(path, hardware_key)
        current.tolerances = replace(current.tolerances, **suggested)
        return baselines.write_with_diff(path, current)


def record_baseline(cal: Calibration, say) -> Entry | None:
    """Record ``--record-runs`` baselines, each in its own process and folder, and keep the one
    with the median speedup as the baseline every check run is judged against.

    One recording carries its process's error (measured here: A/A speedups of separate runs
    spread with a standard deviation of about 2.5%), and every verdict of the calibration inherits
    it; the median of three halves the chance that the baseline itself sits in a tail."""
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
    recorded.sort(key=lambda r: r[:2])
    speedup, index, text, entry = recorded[len(recorded) // 2]
    replace_atomically(baselines.path_for(cal.folder / "baselines", key), text)
    say(f"baseline: recording {index + 1}, {speedup:.3f}x (all: {', '.join(f'{r[0]:.3f}x' for r in recorded)})")
    return entry


def _parser() -> Parser:
    parser = Parser(prog="python -m whisper_perf.commands.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20,
                        help="check runs, each one A/A and one slowed measurement (default 20)")
    parser.add_argument("--slowdown", type=float, default=0.15, help="injected slowdown (default 0.15)")
    parser.add_argument("--variant", default="compiled", help="the compiled variant to calibrate (default: compiled)")
    parser.add_argument("--limit", type=int, default=6, help="utterances per run (default 6, as nox -s perf on CPU)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (default 3, as nox -s perf)")
    parser.add_argument("--record-runs", type=int, default=3,
                        help="processes that record a baseline; the median one is kept (default 3)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--write-tolerances", action="store_true",
                        help="store the suggested tolerances in baselines/<key>.json (review the diff, commit it)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments for every run (after --)")
    return parser


def _check(parser: Parser, args: argparse.Namespace) -> None:
    from ..variants import COMPILED_VARIANTS

    if args.variant not in COMPILED_VARIANTS:
        parser.error(f"--variant must be one of {COMPILED_VARIANTS}")
    if args.runs < 1 or args.record_runs < 1:
        parser.error("--runs and --record-runs must be at least 1")
    if not 0 < args.slowdown <= 5:
        parser.error("--slowdown must be in (0, 5]")


def _start(args: argparse.Namespace) -> Calibration:
    """A new calibration folder, judged with the tolerances users of this hardware key are judged with."""
    from ..hardware import detect_hardware

    hardware_key = detect_hardware(args.device).key
    if args.write_tolerances:
        baseline_file(args.root, hardware_key)  # before an hour of runs, not after
    project_file = baselines.load_for(args.root / "baselines", hardware_key)
    tolerances = project_file.tolerances if project_file else Tolerances()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = args.root / "results" / "calibration" / hardware_key / stamp
    folder.mkdir(parents=True, exist_ok=False)
    return Calibration(args.root, folder, args, hardware_key, tolerances)


def _shown(run: Run, variant: str) -> str:
    speedup = run.speedup(variant)
    if speedup is None:
        return "no result"
    flag = " UNRELIABLE" if run.unreliable(variant) else " FLAGGED" if run.flagged(variant) else ""
    if not run.unreliable(variant) and run.times_unreliable(variant):
        flag += " (times not judged: machine speed changed)"
    return f"{speedup.estimate:.3f}x{flag}"


def check_runs(cal: Calibration, twin: str, say) -> None:
    args = cal.args
    for i in range(args.runs):
        run = cal.run("check", i, ["--inject-slowdown", str(args.slowdown)], {"WHISPER_PERF_SENSITIVITY_CHECK": "1"})
        say(f"run {i + 1}/{args.runs} ({run.seconds:.0f} s): A/A {_shown(run, args.variant)}, slowed "
            f"{_shown(run, twin)}; machine probe {run.probe_ms(args.variant) or float('nan'):.2f} ms")


def results_json(cal: Calibration, analysis: dict, minutes: float, twin: str) -> dict:
    variants = (cal.args.variant, twin)
    runs = [{"kind": r.kind, "index": r.index, "seconds": r.seconds, "exit_code": r.exit_code, "results": {
        v: {"speedup": r.speedup(v).as_dict() if r.speedup(v) else None, "flagged": r.flagged(v),
            "unreliable": r.unreliable(v), "times_unreliable": r.times_unreliable(v),
            "machine_probe_ms": r.probe_ms(v)} for v in variants}} for r in cal.runs]
    return {"hardware_key": cal.hardware_key, "minutes": minutes,
            "options": {k: v for k, v in vars(cal.args).items() if k != "root"}, "analysis": analysis, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    from ..variants import slowed_twin

    cal = _start(args)
    start = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {text}", flush=True)

    say(f"calibrating {cal.hardware_key} with tolerances {cal.tolerances}: recording a baseline in "
        f"{args.record_runs} processes, keeping the median")
    entry = record_baseline(cal, say)
    if entry is None:
        return cal.runs[-1].exit_code or EXIT_ENVIRONMENT  # the failed recording's own status says why
    twin = slowed_twin(args.variant)
    check_runs(cal, twin, say)
    analysis = analyse(cal, args.variant, entry, latest_default_run(args.root, cal.hardware_key))
    minutes = (time.perf_counter() - start) / 60
    report = render(analysis, cal, minutes)
    (cal.folder / "calibration.md").write_text(report, encoding="utf-8")
    (cal.folder / "calibration.json").write_text(
        json.dumps(results_json(cal, analysis, minutes, twin), indent=1, default=str) + "\n", encoding="utf-8")
    print(report)
    print(f"Written to {cal.folder}")
    if args.write_tolerances:
        print(write_tolerances(args.root, cal.hardware_key, analysis["suggested_tolerances"]) or "(no change)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_command(main))
