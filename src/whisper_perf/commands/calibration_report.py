"""The Markdown report of a calibration (commands/calibrate.py) from its analysis
(calibration_analysis.py)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..record.report import md_table

if TYPE_CHECKING:
    from .calibrate import Calibration


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
        *_stated_power_rows(a.get("stated_power"), slowdown),
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
         f"speedup {_pct(suggested['speedup'])}, time {_pct(suggested['compiled_time'])}"
         + (f", device time {_pct(suggested['device_time'])}" if "device_time" in suggested else "")
         + _kept_text(a.get("kept_for_lack_of_runs"))),
        ("slowed runs caught with the suggested speedup tolerance", f"{a['detected_with_suggested']}"),
    ] + _default_run_rows(a["default_run_detectable"])


def _kept_text(kept: list[str] | None) -> str:
    from .calibration_analysis import MIN_AA_RUNS

    return (f" ({', '.join(kept)}: the tolerance in effect, since fewer than {MIN_AA_RUNS} judged A/A runs show "
            "no run-to-run spread)") if kept else ""


def _stated_power_rows(power: dict | None, slowdown: float) -> list[tuple[str, str]]:
    if not power:
        return []
    return [(f"slowed runs whose speedup verdict said it could detect {slowdown:.0%}: caught",
             f"{power['caught_of_could']} of {power['could']}"),
            ("slowed runs whose verdict said it could not: caught anyway",
             f"{power['caught_of_could_not']} of {power['could_not']}")]


def _default_run_rows(detectable: dict | None) -> list[tuple[str, str]]:
    if not detectable:
        return [("smallest detectable slowdown, default run",
                 "no default run found in results/runs: run `nox -s perf` once and calibrate again")]
    return [(f"smallest detectable slowdown, default run ({variant}, {d['utterances']} utterances, "
             f"{d['rounds']} rounds; {d['file']}), suggested tolerance", _pct(d["with_suggested"]))
            for variant, d in detectable.items()]


def _rounds_text(args, adaptive: dict | None) -> str:
    if adaptive is None:
        return f"{args.rounds} rounds per measurement"
    budget = getattr(args, "max_minutes", None)
    return (f"at least {max(args.rounds, 5)} rounds per measurement, then adaptive rounds until each speed check "
            f"could detect {_pct(adaptive['asked'])}" + (f" or {budget:g} min of timing ended" if budget else ""))


def adaptive_rows(summaries: dict) -> list[tuple[str, ...]]:
    """One row per figure, one column per group (A/A, slowed) of the adaptive measurements."""
    groups = [summaries.get("A/A"), summaries.get("slowed")]

    def row(label: str, cell) -> tuple[str, ...]:
        return (label, *["-" if s is None else cell(s) for s in groups])

    return [
        row("measurements that reached the target", lambda s: f"{s['met']} of {s['measurements']}"),
        row("rounds judged (min-max)", lambda s: f"{min(s['rounds'])}-{max(s['rounds'])}" if s["rounds"] else "-"),
        row("minutes of timing (min-max)", lambda s: f"{min(s['minutes']):.1f}-{max(s['minutes']):.1f}"),
        row("detectable slowdown reached: median (min-max)",
            lambda s: f"{_pct(s['reached_median'])} ({_pct(min(s['reached']))}-{_pct(max(s['reached']))})"
            if s["reached"] else "-"),
    ]


def precision_lines(p: dict | None) -> list[str]:
    """The detectable slowdown by timing budget (calibration_analysis.precision)."""
    if p is None:
        return []
    noise, tol = p["noise"], p["tolerances"]
    speedup_sd = "-" if noise["speedup_log_sd"] is None else _pct(noise["speedup_log_sd"])
    rows = []
    for r in p["table"]:
        if r["rounds"] is None:
            rows.append((f"{r['minutes']:g} min", "fewer than 5 rounds fit", "-", "-", "-", "-"))
            continue
        alone, judged = r["noise_alone"], r["against_tolerances"] or {}
        rows.append((f"{r['minutes']:g} min", str(r["rounds"]), _pct(alone.get("speedup")), _pct(alone["time"]),
                     f"{_pct(judged.get('speedup'))} / {_pct(judged.get('time'))}", _pct(r["smallest_detect"])))
    return ["", "## Detectable slowdown by timing budget", "",
            f"Projected from the judged A/A measurements ({noise['measurements']}, {noise['rounds']} quiet rounds): "
            f"the round-to-round spread (standard deviation of the log) of the speedup {speedup_sd} and of the "
            f"summed time {_pct(noise['time_log_sd'])}; a round (the variant and its eager reference) lasts "
            f"{noise['round_seconds']:.1f} s. A run given that much timing per variant (`--max-minutes`) is judged "
            "on the last look that fits, with the sequential intervals of `--detect`; the last column is the "
            "smallest `--detect` it would reach there. Drift slower than these runs is not in the spread, so the "
            "longer budgets are optimistic.",
            "", md_table(("timing per variant", "rounds judged", "speedup: noise alone", "time: noise alone",
                          f"speedup / time with the tolerances ({_pct(tol['speedup'])}, {_pct(tol['compiled_time'])})",
                          "smallest --detect reached"), rows)]


def device_lines(d: dict | None, slowdown: float, inject_on: str) -> list[str]:
    """The device-time checks over the runs (calibration_analysis.device_time_analysis); none on a CPU."""
    if d is None:
        return []
    where = ("on the device (an extra kernel per decode step): the device-time checks should catch it"
             if inject_on == "device" else "on the host (a busy-wait per decode step): the GPU's own work is "
             "unchanged, so the device-time checks should not flag it")
    runs = len(d["aa_ms"])
    rows = [("false alarms (A/A runs with a failing device-time check)", f"{d['false_alarms']} of {runs}"),
            (f"{slowdown:.0%} slowdown caught by a device-time check", f"{d['caught']} of {len(d['slowed_ms'])}"),
            ("slowdown the twin's device busy shows (median slowed / median A/A; the encoder and generate()'s "
             "own work between steps are not slowed)", _pct(d.get("injected_measured"))),
            ("baseline device busy ms per call / device speedup",
             f"{d['baseline_ms']:.3f} ms / " + ("-" if d["baseline_speedup"] is None else f"{d['baseline_speedup']:.3f}x")),
            ("A/A device busy ms (min-max)", _min_max(d["aa_ms"], " ms")),
            ("slowed device busy ms (min-max)", _min_max(d["slowed_ms"], " ms")),
            ("A/A device speedups (min-max)", _min_max(d["aa_speedups"], "x")),
            ("run-to-run CV of device busy / of the device speedup",
             f"{_pct(d['run_to_run_cv_ms'])} / {_pct(d['run_to_run_cv_speedup'])}"),
            ("device-time interval lower half-width (median)", _pct(d["half_width_median"])),
            ("smallest detectable increase stated by the device-time check (median)", _pct(d["detectable_median"])),
            ("device-time tolerance: judged with / suggested", f"{_pct(d['tolerance'])} / {_pct(d['suggested_tolerance'])}"),
            ("slowed runs caught with the suggested device-time tolerance",
             f"{d['caught_with_suggested']} of {len(d['slowed_ms'])}")]
    return ["", "## Device time", "",
            f"The GPU's busy time per profiled call (several calls per build, apart from the timed rounds) and the "
            f"device speedup, judged against the baseline's. The slowdown was injected {where}.", "",
            md_table(("", "result"), rows)]


def render(a: dict, cal: Calibration, minutes: float) -> str:
    args = cal.args
    adaptive = a.get("adaptive") or {}
    extra = f" More pytest arguments: `{' '.join(args.pytest_args)}`." if getattr(args, "pytest_args", None) else ""
    lines = [
        f"# Calibration on {cal.hardware_key}", "",
        f"{a['runs']['A/A']} runs, each a separate pytest process that times `{args.variant}` unchanged (A/A) and "
        f"its twin slowed by {args.slowdown:.0%}, both judged against a baseline recorded first ("
        + (f"the median of {args.record_runs} recording processes" if args.record_runs > 1 else "one recording process")
        + f"); {args.limit} utterances, "
        f"{_rounds_text(args, adaptive.get('A/A') or adaptive.get('slowed'))}. Took {minutes:.1f} minutes.{extra}", "",
        *[f"{note}." for note in cal.notes], *([""] if cal.notes else []),
        md_table(("", "result"), result_rows(a, args.slowdown))]
    if adaptive.get("A/A") or adaptive.get("slowed"):
        lines += ["", "## Adaptive rounds", "", md_table(("", "A/A", "slowed"), adaptive_rows(adaptive))]
    lines += precision_lines(a.get("precision"))
    lines += device_lines(a.get("device_time"), args.slowdown, getattr(args, "inject_on", None) or "host")
    if a["false_alarm_details"]:
        lines += ["", "False alarms:", *[f"- {d}" for d in a["false_alarm_details"]]]
    failed = [r for r in cal.runs if not r.result]
    if failed:
        lines += ["", "Runs without results:", *[f"- {r.kind} {r.index}: exit {r.exit_code}, {r.error}" for r in failed]]
    lines += ["", "A/A: the unchanged build; any failing check (speedup, times, WER) counts as a false alarm. "
              "Detectable slowdown: the smallest slowdown the speedup verdict flags 95% of the time given the "
              "tolerance and the run's measured noise (see docs/trust.md; results "
              "written before 2026-11-27 state the half-power point)."]
    return "\n".join(lines) + "\n"
