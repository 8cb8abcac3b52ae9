"""Calibration: how often does the suite cry wolf here, and how small a slowdown does it catch?

``nox -s calibrate`` (``python -m whisper_perf.calibrate``) records a baseline (in three
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

from .baselines import Tolerances
from .machine_speed import adjustment
from .results import load_run, runs_newest_first
from .stats import Interval, detectable_speedup_loss
from .variants import slowed_twin


@dataclass
class Run:
    kind: str  # "record" or "check"
    index: int
    seconds: float
    exit_code: int
    data: dict | None = None
    error: str = ""

    def verdicts(self, variant: str, check: str | None = None) -> list[dict]:
        return [v for v in (self.data or {}).get("verdicts", [])
                if v["variant"] == variant and (check is None or v["check"] == check)]

    def measurement(self, variant: str) -> dict | None:
        return next((m for m in (self.data or {}).get("measurements", []) if m["variant"] == variant), None)

    def unreliable(self, variant: str, check: str = "speedup") -> bool:
        """Whether ``check`` of ``variant`` was not judged (machine busy; for times also: machine
        speed changed since the recording)."""
        return any(v["outcome"] == "unreliable" for v in self.verdicts(variant, check))

    def times_unreliable(self, variant: str) -> bool:
        return any(v["outcome"] == "unreliable" and v["check"].endswith(("time", "(reference)"))
                   for v in self.verdicts(variant))

    def probe_ms(self, variant: str) -> float | None:
        m = self.measurement(variant)
        return m["summary"].get("machine_probe_ms") if m else None

    def flagged(self, variant: str) -> list[str]:
        """The checks of ``variant`` that failed (regressions) in this run."""
        return [f"{v['check']}: {v['message']}" for v in self.verdicts(variant) if v["outcome"] == "regression"]


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
            run.data = load_run(files[-1])
        else:
            run.error = f"no results file; see {log}"
        self.runs.append(run)
        return run


def _speedup(run: Run, variant: str) -> dict | None:
    m = run.measurement(variant)
    return m["summary"].get("speedup") if m else None


def _adjusted_seconds(run: Run, variant: str, baseline_probe: float | None) -> dict:
    """The run's summed seconds at the machine speed of the recording (as the time checks compare)."""
    summary = run.measurement(variant)["summary"]
    factor, _ = adjustment(summary.get("machine_probe_ms"), baseline_probe)
    return {k: summary["seconds"][k] * (factor or 1.0) for k in ("estimate", "low", "high")}


def _rel_sd(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else float("nan")


def _ceil_percent(x: float) -> float:
    return math.ceil(x * 100 - 1e-9) / 100


def analyse(cal: Calibration, variant: str, baseline: dict, default_results: dict | None) -> dict:
    """The numbers of the report, from the runs' results files: each check run holds one A/A
    measurement of ``variant`` and one of its slowed twin."""
    twin = slowed_twin(variant)
    checks = [r for r in cal.runs if r.kind == "check" and r.data]
    aa = [r for r in checks if r.measurement(variant)]
    slowed = [r for r in checks if r.measurement(twin)]
    judged_aa = [r for r in aa if not r.unreliable(variant)]
    judged_slowed = [r for r in slowed if not r.unreliable(twin)]
    false_alarms = [r for r in judged_aa if r.flagged(variant)]
    detected = [r for r in judged_slowed if any(v["outcome"] == "regression" for v in r.verdicts(twin, "speedup"))]
    detected_any = [r for r in judged_slowed if r.flagged(twin)]

    # time checks are also left unjudged when the machine's speed moved since the recording
    times_judged = [r for r in judged_aa if not r.times_unreliable(variant)]

    base_speedup, base_seconds = baseline["speedup"], baseline["seconds"]
    aa_speedups = [_speedup(r, variant) for r in judged_aa]
    aa_seconds = [r.measurement(variant)["summary"]["seconds"] for r in judged_aa]
    judged_seconds = [_adjusted_seconds(r, variant, baseline.get("machine_probe_ms")) for r in times_judged]
    probes = [p for p in (r.probe_ms(variant) for r in judged_aa) if p]
    within_cv = [r.measurement(variant)["summary"]["noise_cv"] for r in judged_aa]
    half_widths = [(s["high"] - s["estimate"]) / s["estimate"] for s in aa_speedups]
    time_half_widths = [(s["estimate"] - s["low"]) / s["estimate"] for s in aa_seconds]

    # Smallest tolerances under which no A/A run here would have failed, plus a margin of three
    # standard deviations of the run-to-run spread beyond the worst one seen (the baseline is one
    # run too, so its own error is part of what the tolerance must absorb).
    sd_speedup = _rel_sd([s["estimate"] for s in aa_speedups])
    sd_raw_seconds = _rel_sd([s["estimate"] for s in aa_seconds])
    sd_seconds = _rel_sd([s["estimate"] for s in judged_seconds])  # as the time checks compare them
    worst_speedup = max((1 - s["high"] / base_speedup for s in aa_speedups), default=0.0)
    worst_seconds = max((s["low"] / base_seconds - 1 for s in judged_seconds), default=0.0)
    # too few runs to see the run-to-run spread: keep what is in effect
    suggest_speedup, suggest_time = cal.tolerances.speedup, cal.tolerances.compiled_time
    if len(judged_aa) >= 3:
        suggest_speedup = _ceil_percent(max(0.02, worst_speedup + 0.01, 3 * sd_speedup - statistics.median(half_widths)))
    if len(times_judged) >= 3:
        suggest_time = _ceil_percent(max(0.05, worst_seconds + 0.02, 3 * sd_seconds - statistics.median(time_half_widths)))
    # With the suggested tolerance, would the slowed runs still have been caught?
    caught_with_suggested = [r for r in judged_slowed
                             if _speedup(r, twin)["high"] < base_speedup * (1 - suggest_speedup)]
    detectable_calibration = [v["detectable"] for r in judged_aa for v in r.verdicts(variant, "speedup")]

    default_detectable = None
    if default_results:
        default_detectable = {}
        for m in default_results["measurements"]:
            s = m["summary"].get("speedup")
            if s and not math.isnan(s["high"]):
                default_detectable[m["variant"]] = {
                    "with_suggested": detectable_speedup_loss(Interval(**s), suggest_speedup),
                    "utterances": m["utterances"], "rounds": m["summary"]["rounds_used"]}

    return {
        "runs": {"A/A": len(aa), "slowed": len(slowed), "unreliable_A/A": len(aa) - len(judged_aa),
                 "unreliable_slowed": len(slowed) - len(judged_slowed),
                 "time_checks_unjudged_A/A": len(judged_aa) - len(times_judged),
                 "failed_to_produce_results": len([r for r in cal.runs if not r.data])},
        "false_alarms": len(false_alarms), "false_alarm_rate": len(false_alarms) / max(len(judged_aa), 1),
        "false_alarm_details": [f"run {r.index}: " + "; ".join(r.flagged(variant)) for r in false_alarms],
        "detected_by_speedup": len(detected), "detected_by_any_check": len(detected_any),
        "detection_rate": len(detected) / max(len(judged_slowed), 1),
        "baseline": {"speedup": base_speedup, "seconds": base_seconds,
                     "machine_probe_ms": baseline.get("machine_probe_ms")},
        "machine_probe_ms": {"min": min(probes), "max": max(probes)} if probes else None,
        "aa_seconds": [s["estimate"] for s in aa_seconds],
        "aa_speedups": [s["estimate"] for s in aa_speedups],
        "slowed_speedups": [_speedup(r, twin)["estimate"] for r in judged_slowed],
        "noise": {"run_to_run_cv_seconds": sd_raw_seconds, "run_to_run_cv_adjusted_seconds": sd_seconds,
                  "run_to_run_cv_speedup": sd_speedup,
                  "within_run_cv_seconds_median": statistics.median(within_cv) if within_cv else None,
                  "speedup_half_width_median": statistics.median(half_widths) if half_widths else None},
        "detectable_slowdown_calibration_median": (statistics.median(detectable_calibration)
                                                   if detectable_calibration else None),
        "suggested_tolerances": {"speedup": suggest_speedup, "compiled_time": suggest_time},
        "detected_with_suggested": len(caught_with_suggested),
        "default_run_detectable": default_detectable,
    }


def _latest_default_results(root: Path, hardware_key: str) -> dict | None:
    for path, data in runs_newest_first(root / "results" / "runs", hardware_key):
        options = data.get("options", {})
        if options.get("profile") == "quick" and not options.get("inject_slowdown") \
                and not options.get("record") and data.get("measurements"):
            data["_path"] = str(path)
            return data
    return None


def _probe_text(a: dict) -> str:
    base, runs = a["baseline"].get("machine_probe_ms"), a.get("machine_probe_ms")
    if not base or not runs:
        return "-"
    return f"{base:.2f} ms / {runs['min']:.2f}-{runs['max']:.2f} ms (mean per call)"


def render(a: dict, cal: Calibration, minutes: float, default_results: dict | None) -> str:
    args = cal.args
    pct = lambda x: "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"  # noqa: E731
    lines = [
        f"# Calibration on {cal.hardware_key}",
        "",
        f"{a['runs']['A/A']} runs, each a separate pytest process that times `{args.variant}` unchanged (A/A) and "
        f"its twin slowed by {args.slowdown:.0%}, both judged against a baseline recorded first (the median "
        f"of {args.record_runs} recording processes); {args.limit} utterances and {args.rounds} rounds per measurement. "
        f"Took {minutes:.1f} minutes.",
        "",
        "| | result |", "|---|---|",
        f"| false alarms (A/A runs with any failing check) | {a['false_alarms']} of "
        f"{a['runs']['A/A'] - a['runs']['unreliable_A/A']} ({pct(a['false_alarm_rate'])}) |",
        f"| {args.slowdown:.0%} slowdown caught by the speedup verdict | {a['detected_by_speedup']} of "
        f"{a['runs']['slowed'] - a['runs']['unreliable_slowed']} ({pct(a['detection_rate'])}) |",
        f"| caught by any check | {a['detected_by_any_check']} |",
        f"| runs judged unreliable (machine busy), not counted | {a['runs']['unreliable_A/A']} A/A, "
        f"{a['runs']['unreliable_slowed']} slowed |",
        f"| A/A runs whose time checks were not judged (machine speed moved too far to adjust for) | "
        f"{a['runs']['time_checks_unjudged_A/A']} |",
        f"| machine-speed probe: baseline / A/A runs (min-max) | {_probe_text(a)} |",
        f"| baseline speedup / compiled seconds | {a['baseline']['speedup']:.3f}x / {a['baseline']['seconds']:.2f} s |",
        f"| A/A speedups (min-max) | {min(a['aa_speedups'], default=float('nan')):.3f}-"
        f"{max(a['aa_speedups'], default=float('nan')):.3f}x |",
        f"| slowed speedups (min-max) | {min(a['slowed_speedups'], default=float('nan')):.3f}-"
        f"{max(a['slowed_speedups'], default=float('nan')):.3f}x |",
        f"| run-to-run CV of summed compiled seconds: as measured / at the recording's machine speed | "
        f"{pct(a['noise']['run_to_run_cv_seconds'])} / {pct(a['noise']['run_to_run_cv_adjusted_seconds'])} |",
        f"| run-to-run CV of the speedup | {pct(a['noise']['run_to_run_cv_speedup'])} |",
        f"| within-run CV of pass totals (median) | {pct(a['noise']['within_run_cv_seconds_median'])} |",
        f"| speedup interval upper half-width (median) | {pct(a['noise']['speedup_half_width_median'])} |",
        f"| smallest detectable slowdown, calibration runs (median) | "
        f"{pct(a['detectable_slowdown_calibration_median'])} |",
        f"| suggested tolerances | speedup {pct(a['suggested_tolerances']['speedup'])}, time "
        f"{pct(a['suggested_tolerances']['compiled_time'])} |",
        f"| slowed runs caught with the suggested speedup tolerance | {a['detected_with_suggested']} |",
    ]
    if a["default_run_detectable"]:
        path = default_results.get("_path", "")
        for variant, d in a["default_run_detectable"].items():
            lines.append(f"| smallest detectable slowdown, default run ({variant}, {d['utterances']} utterances, "
                         f"{d['rounds']} rounds; {Path(path).name}), suggested tolerance | "
                         f"{pct(d['with_suggested'])} |")
    else:
        lines.append("| smallest detectable slowdown, default run | no default run found in results/runs: run "
                     "`nox -s perf` once and calibrate again |")
    if a["false_alarm_details"]:
        lines += ["", "False alarms:", *[f"- {d}" for d in a["false_alarm_details"]]]
    failed = [r for r in cal.runs if not r.data]
    if failed:
        lines += ["", "Runs without results:", *[f"- {r.kind} {r.index}: exit {r.exit_code}, {r.error}" for r in failed]]
    lines += ["", "A/A: the unchanged build; any failing check (speedup, times, WER) counts as a false alarm. "
              "Detectable slowdown: the smallest slowdown the speedup verdict flags given the tolerance and the "
              "run's measured noise (see README, \"How far to trust a verdict\")."]
    return "\n".join(lines) + "\n"


def write_tolerances(root: Path, hardware_key: str, suggested: dict) -> str:
    """Store the suggested tolerances in the hardware's baseline file; returns the diff."""
    from dataclasses import replace

    from . import baselines

    path = baselines.path_for(root / "baselines", hardware_key)
    if not path.exists():
        raise SystemExit(f"{path} does not exist: record a baseline first (nox -s record)")
    with baselines._locked(path):
        current = baselines.load(path, hardware_key)
        current.tolerances = replace(current.tolerances, **suggested)
        return baselines.write_with_diff(path, current)


def record_baseline(cal: Calibration, baselines, say) -> dict | None:
    """Record ``--record-runs`` baselines, each in its own process and folder, and keep the one
    with the median speedup as the baseline every check run is judged against.

    One recording carries its process's error (measured here: A/A speedups of separate runs
    spread with a standard deviation of about 2.5%), and every verdict of the calibration inherits
    it; the median of three halves the chance that the baseline itself sits in a tail."""
    args, key = cal.args, cal.hardware_key
    recorded = []
    for i in range(args.record_runs):
        folder = cal.folder / "recordings" / f"{i:02d}"
        baselines.write_atomic(baselines.path_for(folder, key),
                               baselines.BaselineFile(key, tolerances=cal.tolerances).to_json())
        run = cal.run("record", i, ["--record"], baselines_dir=folder)
        if run.exit_code != 0 or not run.data or not run.data.get("recorded_baseline"):
            say(f"recording {i + 1} failed (exit {run.exit_code}); see {cal.folder / 'logs'}")
            return None
        text = Path(run.data["recorded_baseline"]).read_text(encoding="utf-8")
        entry = next(e for e in json.loads(text)["entries"] if e["variant"] == args.variant)
        say(f"recording {i + 1}/{args.record_runs} ({run.seconds:.0f} s): {entry['speedup']:.3f}x")
        recorded.append((entry["speedup"], i, text, entry))
    recorded.sort()
    speedup, index, text, entry = recorded[len(recorded) // 2]
    baselines.write_atomic(baselines.path_for(cal.folder / "baselines", key), text)
    say(f"baseline: recording {index + 1}, {speedup:.3f}x (all: {', '.join(f'{r[0]:.3f}x' for r in recorded)})")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisper_perf.calibrate", description=__doc__.split("\n\n")[0])
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
    args = parser.parse_args(argv)
    from .variants import COMPILED_VARIANTS

    if args.variant not in COMPILED_VARIANTS:
        parser.error(f"--variant must be one of {COMPILED_VARIANTS}")
    if args.runs < 1 or args.record_runs < 1:
        parser.error("--runs and --record-runs must be at least 1")
    if not 0 < args.slowdown <= 5:
        parser.error("--slowdown must be in (0, 5]")

    from .hardware import detect_hardware

    hardware_key = detect_hardware(args.device).key
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = args.root / "results" / "calibration" / hardware_key / stamp
    folder.mkdir(parents=True, exist_ok=False)
    # Judge with the tolerances users of this hardware key are judged with.
    from . import baselines

    project_file = baselines.load_for(args.root / "baselines", hardware_key)
    tolerances = project_file.tolerances if project_file else baselines.Tolerances()
    cal = Calibration(args.root, folder, args, hardware_key, tolerances)
    start = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {text}", flush=True)

    say(f"calibrating {hardware_key} with tolerances {tolerances}: recording a baseline in "
        f"{args.record_runs} processes, keeping the median")
    entry = record_baseline(cal, baselines, say)
    if entry is None:
        return 1
    twin = slowed_twin(args.variant)
    for i in range(args.runs):
        run = cal.run("check", i, ["--inject-slowdown", str(args.slowdown)], {"WHISPER_PERF_SENSITIVITY_CHECK": "1"})

        def show(variant: str) -> str:
            speedup = _speedup(run, variant)
            if speedup is None:
                return "no result"
            flag = " UNRELIABLE" if run.unreliable(variant) else " FLAGGED" if run.flagged(variant) else ""
            if not run.unreliable(variant) and run.times_unreliable(variant):
                flag += " (times not judged: machine speed changed)"
            return f"{speedup['estimate']:.3f}x{flag}"

        say(f"run {i + 1}/{args.runs} ({run.seconds:.0f} s): A/A {show(args.variant)}, slowed {show(twin)}; "
            f"machine probe {run.probe_ms(args.variant) or float('nan'):.2f} ms")
    default_results = _latest_default_results(args.root, hardware_key)
    analysis = analyse(cal, args.variant, entry, default_results)
    minutes = (time.perf_counter() - start) / 60
    report = render(analysis, cal, minutes, default_results)
    (folder / "calibration.md").write_text(report, encoding="utf-8")
    (folder / "calibration.json").write_text(json.dumps(
        {"hardware_key": hardware_key, "minutes": minutes, "options": {k: v for k, v in vars(args).items()
                                                                      if k != "root"},
         "analysis": analysis, "runs": [{"kind": r.kind, "index": r.index, "seconds": r.seconds,
                                         "exit_code": r.exit_code, "results": {
                                             v: {"speedup": _speedup(r, v), "flagged": r.flagged(v),
                                                 "unreliable": r.unreliable(v),
                                                 "times_unreliable": r.times_unreliable(v),
                                                 "machine_probe_ms": r.probe_ms(v)} for v in (args.variant, twin)}}
                                        for r in cal.runs]},
        indent=1, default=str) + "\n", encoding="utf-8")
    print(report)
    print(f"Written to {folder}")
    if args.write_tolerances:
        print(write_tolerances(args.root, hardware_key, analysis["suggested_tolerances"]) or "(no change)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
