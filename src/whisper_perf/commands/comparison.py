"""The comparison of environments' runs of the same suite, side by side: per model x variant,
each environment's measurement (its runs merged), the change against the first environment with
its interval, and a verdict.  ``nox -s upgrade`` / ``matrix`` (commands/upgrade.py) report it;
``nox -s bisect`` (commands/bisect.py) uses one row of it as its oracle's answer.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import TYPE_CHECKING

from ..judge.stats import change_interval, speedup_interval, total_interval
from ..judge.verdicts import credible_change
from ..measure.kernel_profile import fingerprint_changes, fingerprint_of
from ..measure.machine_speed import MAX_ADJUSTMENT
from ..record.results import MeasurementRecord, RunResult

if TYPE_CHECKING:
    from .upgrade import Environment


def measured(envs: list[Environment]) -> list[tuple[str, str]]:
    """Every model x variant that any run measured or failed, in order of appearance."""
    keys = [(m.model, m.variant) for env in envs for run in env.runs for m in run.measurements]
    keys += [(f.model, f.variant) for env in envs for run in env.runs for f in run.failures]
    return list(dict.fromkeys(keys))


def records(runs: list[RunResult], model: str, variant: str) -> list[MeasurementRecord]:
    """One environment's measurements of model x variant, one per run that measured it."""
    return [m for run in runs if (m := run.measurement(model, variant))]


def merged(found: list[MeasurementRecord]) -> MeasurementRecord | None:
    """One environment's measurement over its runs: the latest, with the rounds of every run."""
    if not found:
        return None
    return dataclasses.replace(found[-1], samples=[p for m in found for p in m.samples],
                               reference_samples=[p for m in found for p in m.reference_samples])


def side(env: Environment, model: str, variant: str) -> tuple[dict, MeasurementRecord | None]:
    """What one environment measured of model x variant, as report data, and its merged measurement."""
    m = merged(records(env.runs, model, variant))
    if env.error or m is None:
        failures = [f.error for run in env.runs for f in run.failures if (f.model, f.variant) == (model, variant)]
        return {"error": env.error or "; ".join(failures) or "not measured"}, None
    compiled, eager = m.seconds_table(), m.seconds_table(reference=True)
    totals = m.diagnostics.compile
    data = {"seconds": total_interval(compiled).as_dict(), "wer": m.summary.wer, "rounds": len(compiled),
            "first_call_seconds": m.diagnostics.first_call_seconds, "machine_probe_ms": m.summary.machine_probe_ms,
            "compile": None if totals is None else {"graphs": totals.graphs, "graph_breaks": totals.graph_breaks,
                                                    "recompiles_timed": totals.recompiles_timed},
            "peak_memory_bytes": m.diagnostics.peak_memory_bytes(),
            "memory_rise_bytes": m.diagnostics.memory_rise_bytes(), "fingerprint": _fingerprint(m)}
    if eager:
        data["speedup"] = speedup_interval(eager, compiled).as_dict()
        data["reference_seconds"] = total_interval(eager).as_dict()
    return data, m


def _fingerprint(m: MeasurementRecord) -> dict | None:
    """The fingerprint of the code the variant ran (kernel_profile), where its diagnostics profiled it."""
    return fingerprint_of((m.diagnostics.variant or {}).get("profile"))


def kernels_text(changes: list[str] | None) -> str:
    """A side-by-side change of the code run, in words (upgrade's change column, bisect's probes)."""
    if changes is None:
        return "kernels not compared: a side has no fingerprint (its diagnostics did not run)"
    return f"kernels changed: {'; '.join(changes)}" if changes else "kernels unchanged"


def kernel_changes(before: dict, after: dict) -> list[str] | None:
    """What changed in the code run between two sides (kernel_profile.fingerprint_changes); None
    where a side has no fingerprint (its diagnostics did not run)."""
    if not before.get("fingerprint") or not after.get("fingerprint"):
        return None
    return fingerprint_changes(before["fingerprint"], after["fingerprint"])


# (key in the change, label, tolerance, higher is better): the changes judged against a tolerance;
# the eager reference's time too: a change that slows eager (what most users run) is a regression,
# not a "better speedup"
JUDGED = (("speedup", "speedup", "speedup", True), ("seconds", "time", "compiled_time", False),
          ("reference_seconds", "eager time", "compiled_time", False))


def _scaled(m: MeasurementRecord, factor: float) -> MeasurementRecord:
    scale = lambda passes: [[[u, seconds * factor, tokens] for u, seconds, tokens in p] for p in passes]  # noqa: E731
    return dataclasses.replace(m, samples=scale(m.samples), reference_samples=scale(m.reference_samples))


def at_one_speed(sides: list[list[MeasurementRecord]]) -> tuple[list[MeasurementRecord | None], str]:
    """Each side's runs merged for the time checks, every run's rounds brought to one machine speed:
    the median over all the runs of both sides of the torch-free probe (machine_speed), each run
    scaled by that median / its own probe.  Runs side by side alternate, so drift of the machine
    lands on both sides; scaling per run (not by one run's probe) keeps a slow spell in one run
    from moving the others.  On CUDA (the probe times the host, not the GPU) and for a run without a
    probe, the times are compared as measured.  A run whose probe is more than MAX_ADJUSTMENT from the median is left
    out of the times (its speedup, eager and compiled timed seconds apart, still counts); a side
    left with no run gets no time change.  Returns the merged sides and what was done, in words."""
    runs = [m for side_runs in sides for m in side_runs]
    probes = [m.summary.machine_probe_ms for m in runs]
    on_cuda = any(str(m.setup.get("device", "")).startswith("cuda") for m in runs)
    if on_cuda or not all(probes):  # the probe does not see the GPU; an old results file has none
        return [merged(side_runs) for side_runs in sides], ""
    speed = statistics.median(probes)
    factors = {id(m): speed / m.summary.machine_probe_ms for m in runs}
    kept = [[_scaled(m, factors[id(m)]) for m in side_runs if abs(1 / factors[id(m)] - 1) <= MAX_ADJUSTMENT]
            for side_runs in sides]
    left_out = [p for p in probes if abs(p / speed - 1) > MAX_ADJUSTMENT]
    used = [f for f in factors.values() if abs(1 / f - 1) <= MAX_ADJUSTMENT]
    note = f"at one machine speed (each run scaled to the median torch-free probe, {speed:.2f} ms"
    note += f": x{min(used):.3f} to x{max(used):.3f}" if used else ""
    if left_out:
        note += (f"; {len(left_out)} of {len(runs)} run(s) left out, their probe more than {MAX_ADJUSTMENT:.0%} "
                 f"from it: {', '.join(f'{p:.2f} ms' for p in left_out)}")
    note += ")"
    if not all(kept):
        return [None] * len(sides), (f"not compared: machine speed changed between the runs; {note[:-1]}, so a "
                                     "side has no run at a comparable speed; the speedup still is compared. Run "
                                     "again when the machine is steady)")
    return [merged(side_runs) for side_runs in kept], note


def _time_intervals(before: list[MeasurementRecord], after: list[MeasurementRecord],
                    confidence: float) -> tuple[dict, str]:
    """The change of the variant's and its reference's summed time, both sides' runs at one
    machine speed (at_one_speed); none when the speed moved too far to adjust for, with why."""
    (slow, fast), note = at_one_speed([before, after])
    if slow is None or fast is None:
        return {}, note
    intervals = {"seconds": change_interval(slow.seconds_table(), fast.seconds_table(), confidence)}
    if slow.reference_samples and fast.reference_samples:
        intervals["reference_seconds"] = change_interval(slow.seconds_table(True), fast.seconds_table(True),
                                                         confidence)
    return intervals, note


def change(runs: tuple[list[MeasurementRecord], list[MeasurementRecord]], wer: tuple[float, float], recompiles: int,
           tolerances, confidence: float = 0.95) -> dict:
    """The runs of after against those of before: the change of speedup and times with
    intervals, and a verdict."""
    before, after = merged(runs[0]), merged(runs[1])
    intervals, speed_note = _time_intervals(*runs, confidence)
    if before.reference_samples and after.reference_samples:
        intervals["speedup"] = change_interval((before.seconds_table(True), before.seconds_table()),
                                               (after.seconds_table(True), after.seconds_table()), confidence)
    worse, better = [], []
    for key, label, tolerance, higher_is_better in JUDGED:
        if key in intervals:
            found = credible_change(intervals[key], 1.0, getattr(tolerances, tolerance), higher_is_better)
            shown = f"{label} {100 * (intervals[key].estimate - 1):+.1f}%"
            if found == "worse":
                worse.append(shown)
            elif found == "better":
                better.append(shown)
    if abs(wer[1] - wer[0]) > tolerances.wer:
        worse.append(f"WER {100 * wer[0]:.2f}% -> {100 * wer[1]:.2f}%")
    if recompiles:
        worse.append(f"{recompiles} recompile(s) while timed")
    verdict = "regression" if worse else "improved" if better else "no credible change"
    detail = "; ".join(worse or better) or (
        f"within tolerances (speedup {tolerances.speedup:.0%}, time {tolerances.compiled_time:.0%})")
    detail += f"; times {speed_note}" if speed_note else ""
    return {**{k: v.as_dict() for k, v in intervals.items()}, "verdict": verdict, "detail": detail}


def compare_row(envs: list[Environment], model: str, variant: str, tolerances, confidence: float = 0.95,
                criterion: str = "speed") -> dict:
    base = envs[0]
    sides = {env.name: side(env, model, variant) for env in envs}
    (reference, before) = sides[base.name]
    row = {"model": model, "variant": variant, "sides": {name: data for name, (data, _) in sides.items()},
           "changes": {}}
    for env in envs[1:]:
        data, after = sides[env.name]
        if before is None or after is None:
            row["changes"][env.name] = {"verdict": "failed", "detail": data.get("error") or
                                        f"{base.name}: {reference.get('error')}"}
            continue
        recompiles = (data["compile"] or {}).get("recompiles_timed", 0)
        runs = (records(base.runs, model, variant), records(env.runs, model, variant))
        found = {**change(runs, (reference["wer"], data["wer"]), recompiles, tolerances, confidence),
                 "kernels": kernel_changes(reference, data)}
        if criterion == "kernels" and found["kernels"] != [] and found["verdict"] != "regression":
            found["verdict"] = "kernels changed" if found["kernels"] else "kernels not compared"
        row["changes"][env.name] = found
    return row


def compare(envs: list[Environment], tolerances, criterion: str = "speed") -> dict:
    """Every environment against the first: rows of the report, as data.  ``criterion`` "kernels":
    a changed fingerprint of the code run fails the comparison too (otherwise it is reported)."""
    return {"criterion": criterion, "environments": [{"name": e.name, "spec": e.spec, "label": e.label, "error": e.error,
                              "runs": len(e.runs), "run_errors": e.run_errors} for e in envs],
            "tolerances": {"speedup": tolerances.speedup, "compiled_time": tolerances.compiled_time,
                           "wer": tolerances.wer},
            "rows": [compare_row(envs, model, variant, tolerances, criterion=criterion)
                     for model, variant in measured(envs)]}


# A change's verdicts that fail the comparison (the last two only under the criterion "kernels").
FAILING = ("regression", "failed", "kernels changed", "kernels not compared")


def failed(report: dict) -> bool:
    """Whether any environment failed to install or run, or any change regressed or failed (or,
    with the criterion "kernels", changed the code run)."""
    return any(e["error"] or e["run_errors"] for e in report["environments"]) or any(
        c["verdict"] in FAILING for row in report["rows"] for c in row["changes"].values())
