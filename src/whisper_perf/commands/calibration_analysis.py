"""The numbers of a calibration's report (commands/calibrate.py), from its runs' results files:
false alarms and detections, the noise within and between runs, suggested tolerances, where
adaptive runs (--detect) stopped, the detectable slowdown by timing budget (precision.py), and on
a GPU the same for the device-time checks (their profiled rounds)."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..judge.baselines import Entry, Tolerances
from ..judge.device_time import device_speedup_interval, device_time_interval
from ..judge.stats import Interval, detectable_speedup_loss
from ..judge.verdicts import bounds, credible_change
from ..measure.machine_speed import adjustment
from ..record.results import RunResult, runs_newest_first
from .precision import precision_table, round_noise

if TYPE_CHECKING:
    from .calibrate import Calibration, Run


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


MIN_AA_RUNS = 3  # judged A/A runs a tolerance is suggested from: fewer show no run-to-run spread


def _suggested(floor: float, margin: float, worst: float, estimates: list[float], half_widths: list[float]) -> float:
    """The calibration's rule for a tolerance: beyond the worst A/A run seen by ``margin``, and by
    three standard deviations of the run-to-run spread less the typical interval half-width,
    never below ``floor``; rounded up to a whole percent."""
    return _ceil_percent(max(floor, worst + margin, 3 * _rel_sd(estimates) - statistics.median(half_widths)))


def suggest_tolerances(current: Tolerances, baseline: Entry, aa_speedups: list[Interval],
                       aa_seconds: list[Interval], adjusted_seconds: list[Interval]) -> dict:
    """The smallest tolerances under which no A/A run here would have failed, plus a margin of
    three standard deviations of the run-to-run spread beyond the worst one seen (the baseline is
    one run too, so its own error is part of what the tolerance must absorb).  With fewer than
    MIN_AA_RUNS runs the spread cannot be seen: the tolerances in effect stay."""
    speedup, compiled_time = current.speedup, current.compiled_time
    if len(aa_speedups) >= MIN_AA_RUNS:
        speedup = _suggested(0.02, 0.01, max(1 - s.high / baseline.speedup for s in aa_speedups),
                             [s.estimate for s in aa_speedups],
                             [(s.high - s.estimate) / s.estimate for s in aa_speedups])
    if len(adjusted_seconds) >= MIN_AA_RUNS:
        compiled_time = _suggested(0.05, 0.02, max(s.low / baseline.seconds - 1 for s in adjusted_seconds),
                                   [s.estimate for s in adjusted_seconds],  # as the time checks compare them
                                   [(s.estimate - s.low) / s.estimate for s in aa_seconds])
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
    from ..build.variant_specs import slowed_twin

    twin = slowed_twin(variant)
    g = Groups.of(cal.runs, variant, twin)
    aa_speedups = [r.speedup(variant) for r in g.judged_aa]
    aa_seconds = [r.measurement(variant).summary.seconds for r in g.judged_aa]
    adjusted = [_adjusted_seconds(r, variant, baseline.machine_probe_ms) for r in g.times_judged]
    probes = [p for p in (r.probe_ms(variant) for r in g.judged_aa) if p]
    suggested = suggest_tolerances(cal.tolerances, baseline, aa_speedups, aa_seconds, adjusted)
    device = device_time_analysis(g, variant, twin, baseline, cal.tolerances)
    if device:
        suggested["device_time"] = device["suggested_tolerance"]
    runs_behind = {"speedup": len(aa_speedups), "time": len(adjusted), **({"device time": len(device["aa_ms"])}
                                                                            if device else {})}
    # With the suggested tolerance, would the slowed runs still have been caught?
    caught = [r for r in g.judged_slowed
              if credible_change(r.speedup(twin), baseline.speedup, suggested["speedup"], True) == "worse"]
    detectable = [d for d in (r.stated_detectable(variant) for r in g.judged_aa) if d is not None]
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
        # the tolerances left as they were: fewer than MIN_AA_RUNS judged A/A runs behind them
        "kept_for_lack_of_runs": [name for name, runs in runs_behind.items() if runs < MIN_AA_RUNS],
        "detected_with_suggested": len(caught),
        "default_run_detectable": default_run_detectable(default_run, suggested["speedup"]),
        "adaptive": {"A/A": adaptive_summary(g.judged_aa, variant), "slowed": adaptive_summary(g.judged_slowed, twin)},
        "precision": precision(g.judged_aa, variant, cal.tolerances),
        "stated_power": stated_power(g.judged_slowed, twin, cal.args.slowdown),
        "device_time": device,
    }


DEVICE_CHECKS = ("device time", "device speedup")


def _profiles(run: Run, variant: str) -> tuple[dict | None, dict | None]:
    """(variant's, reference's) profiled calls in ``run`` (diagnostics.diagnose)."""
    m = run.measurement(variant)
    if m is None:
        return None, None
    return (m.diagnostics.variant or {}).get("profile"), (m.diagnostics.reference or {}).get("profile")


def suggest_device_tolerance(current: float, expected_ms: float, aa_times: list[Interval]) -> float:
    """The device-time tolerance by suggest_tolerances' rule, with a 1% floor and a half-point
    margin (kernel durations are steadier than wall time); with fewer than MIN_AA_RUNS runs, the
    tolerance in effect."""
    if len(aa_times) < MIN_AA_RUNS:
        return current
    return _suggested(0.01, 0.005, max(bounds(t)[0] / expected_ms - 1 for t in aa_times),
                      [t.estimate for t in aa_times], [(t.estimate - bounds(t)[0]) / t.estimate for t in aa_times])


def device_time_analysis(g: Groups, variant: str, twin: str, baseline: Entry, current: Tolerances) -> dict | None:
    """The device-time checks over the check runs (CUDA): false alarms in the A/A runs, the slowed twin
    caught, the run-to-run spread of device time and device speedup, the stated detectable increase
    and the tolerance to write; None where no run measured device time (a CPU, or a baseline
    without device_busy_ms: nothing to judge against)."""
    expected = baseline.diagnostics.get("device_busy_ms")
    pairs = [_profiles(r, variant) for r in g.aa]
    times = [t for t in (device_time_interval(p) for p, _ in pairs) if t is not None]
    if not times or not expected:
        return None
    speedups = [s for s in (device_speedup_interval(p, ref) for p, ref in pairs) if s is not None]
    slowed = [t for t in (device_time_interval(_profiles(r, twin)[0]) for r in g.slowed) if t is not None]
    injected = (statistics.median(t.estimate for t in slowed) / statistics.median(t.estimate for t in times) - 1
                if slowed else None)  # what the twin's device busy rose by: the slowdown the checks had to see
    suggested = suggest_device_tolerance(current.device_time, expected, times)
    stated = [v.detectable for r in g.aa for v in r.verdicts(variant, "device time") if v.detectable is not None]
    return {
        "baseline_ms": expected, "baseline_speedup": baseline.diagnostics.get("device_speedup"),
        "aa_ms": [t.estimate for t in times], "slowed_ms": [t.estimate for t in slowed], "injected_measured": injected,
        "aa_speedups": [s.estimate for s in speedups],
        "false_alarms": sum(any(v.outcome.fails for c in DEVICE_CHECKS for v in r.verdicts(variant, c)) for r in g.aa),
        "caught": sum(any(v.outcome.fails for c in DEVICE_CHECKS for v in r.verdicts(twin, c)) for r in g.slowed),
        "run_to_run_cv_ms": _rel_sd([t.estimate for t in times]),
        "run_to_run_cv_speedup": _rel_sd([s.estimate for s in speedups]),
        "half_width_median": _median([(t.estimate - bounds(t)[0]) / t.estimate for t in times]),
        "detectable_median": _median(stated), "tolerance": current.device_time, "suggested_tolerance": suggested,
        "caught_with_suggested": sum(credible_change(t, expected, suggested, False) == "worse" for t in slowed),
    }


def is_default_run(run: RunResult) -> bool:
    """A run of the hardware's default profile (``nox -s perf``: full on a GPU, its batched run
    included, quick on a CPU), nothing injected, not a recording, something measured."""
    options = run.options
    return options.get("profile") == ("full" if run.on_cuda else "quick") and not options.get("inject_slowdown") \
        and not options.get("record") and bool(run.measurements)


def latest_default_run(root: Path, hardware_key: str, batch_size: int = 1) -> RunResult | None:
    """The newest default run (``is_default_run``) under results/runs at ``batch_size`` (on a GPU the
    full profile's batch-1 run and its batched run are both default runs)."""
    return next((run for run in runs_newest_first(root / "results" / "runs", hardware_key)
                 if is_default_run(run) and run.options.get("batch_size", 1) == batch_size), None)


def adaptive_summary(runs: list[Run], variant: str) -> dict | None:
    """Where the adaptive measurements (--detect) of ``variant`` stopped and what they reached;
    None when the runs took a fixed number of rounds."""
    records = [r.measurement(variant).summary.adaptive for r in runs]
    records = [a for a in records if a and a.get("looks") is not None]
    if not records:
        return None
    reached = [a["reached"] for a in records if a["reached"] is not None]
    return {"measurements": len(records), "asked": records[0]["asked"], "met": sum(a["met"] for a in records),
            "rounds": sorted(a["rounds"] for a in records if a["rounds"]),
            "minutes": sorted(a["seconds"] / 60 for a in records),
            "reached_median": _median(reached), "reached": sorted(reached)}


def stated_power(slowed: list[Run], twin: str, slowdown: float) -> dict:
    """Did the power each verdict states hold?  The slowed runs whose speedup verdict said it could
    detect the injected slowdown ("could detect a slowdown of d", d <= slowdown) should all have
    caught it; the others may or may not have."""
    could, could_not = [], []
    for r in slowed:
        said = r.stated_detectable(twin)
        (could if said is not None and said <= slowdown else could_not).append(r)
    return {"could": len(could), "caught_of_could": sum(r.caught_by_speedup(twin) for r in could),
            "could_not": len(could_not), "caught_of_could_not": sum(r.caught_by_speedup(twin) for r in could_not)}


def precision(runs: list[Run], variant: str, tolerances: Tolerances) -> dict | None:
    """The detectable slowdown after 1, 2, 4 and 8 minutes of timing, projected from the round-to-round
    spread of ``runs`` (precision.py)."""
    noise = round_noise([r.measurement(variant) for r in runs])
    if noise is None:
        return None
    return {"noise": asdict(noise), "tolerances": {"speedup": tolerances.speedup, "compiled_time": tolerances.compiled_time},
            "table": precision_table(noise, tolerances)}
