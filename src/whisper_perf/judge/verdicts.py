"""Judging a measurement against its baseline.

A verdict is only as strong as its statistics: a speedup is a regression when its whole
confidence interval lies below ``baseline x (1 - tolerance)``, an improvement when it lies above
``baseline x (1 + tolerance)``.  Compiled time is judged the same way (an upgrade that slows
eager and compiled alike keeps the speedup but is still a regression).  WER must match eager and
the baseline within absolute tolerances; there is no noise in greedy decoding to allow for.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from enum import Enum

from ..measure.machine_speed import adjustment
from .baselines import Entry, Tolerances
from .stats import DETECTION_POWER, Interval, detectable_speedup_loss, detectable_time_increase, interval_text


class Outcome(str, Enum):
    PASS = "pass"
    REGRESSION = "regression"
    IMPROVED = "improved"
    KNOWN_ANOMALY = "known anomaly"
    ANOMALY_GONE = "anomaly gone"
    NO_BASELINE = "no baseline"
    NOT_APPLICABLE = "not applicable"  # e.g. WER of random weights
    CARRIED_OVER = "carried over"  # a figure an earlier run measured: shown, not judged again
    CHANGED = "changed"  # the compiled code's fingerprint differs from the baseline's: reported, never failed
    UNRELIABLE = "unreliable"

    @property
    def fails(self) -> bool:
        return self in (Outcome.REGRESSION, Outcome.ANOMALY_GONE)

    @property
    def judged(self) -> bool:
        """Whether the check was judged in this run (passed or failed), not left open."""
        return self not in (Outcome.NO_BASELINE, Outcome.UNRELIABLE, Outcome.NOT_APPLICABLE, Outcome.CARRIED_OVER)


@dataclass(frozen=True)
class Verdict:
    check: str  # "speedup", "compiled time", "eager time", "wer"
    outcome: Outcome
    message: str
    # The smallest slowdown (fraction) this run would have flagged DETECTION_POWER of the time,
    # given its noise and tolerance (stats.detectable_speedup_loss).
    detectable: float | None = None
    speed: bool = False  # a speed check (speedup, compiled vs eager, times): what --strict-gate gates on

    def as_dict(self) -> dict:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Verdict:
        return cls(data["check"], Outcome(data["outcome"]), data["message"], data.get("detectable"),
                   data.get("speed", False))


def credible_change(interval: Interval, expected: float, tolerance: float, higher_is_better: bool) -> str:
    """The rule every comparison uses: "worse" when the whole interval lies beyond ``expected``
    x (1 -/+ ``tolerance``) on the bad side, "better" when it lies beyond on the good side,
    "within" otherwise.  A single round has no interval: its estimate stands for both bounds."""
    low, high = bounds(interval)
    floor, ceiling = expected * (1 - tolerance), expected * (1 + tolerance)
    if higher_is_better:
        return "worse" if high < floor else "better" if low > ceiling else "within"
    return "worse" if low > ceiling else "better" if high < floor else "within"


def worse_or_not(interval: Interval, expected: float, tolerance: float, higher_is_better: bool) -> str:
    """A bisection's question of a probe: "worse" when the whole interval lies beyond the
    tolerance on the bad side (credible_change), "not worse" when the whole interval lies on the
    good side of that bound (a slowdown beyond the tolerance is credibly excluded), "unsure" when
    the interval straddles the bound: measure more, never guess."""
    if credible_change(interval, expected, tolerance, higher_is_better) == "worse":
        return "worse"
    low, high = bounds(interval)
    if higher_is_better:
        return "not worse" if low >= expected * (1 - tolerance) else "unsure"
    return "not worse" if high <= expected * (1 + tolerance) else "unsure"


def detectable_by_check(seconds: Interval, speedup: Interval | None, tolerances: Tolerances | None) -> dict[str, float]:
    """The smallest slowdown of a variant that each of its speed checks would flag: the compiled
    time's and the speedup's detectable slowdowns against a baseline with ``tolerances``
    (stats.detectable_*); without a baseline (None), the intervals' width alone: the change this
    run's noise can tell apart."""
    time_tolerance, speedup_tolerance = (tolerances.compiled_time, tolerances.speedup) if tolerances else (0.0, 0.0)
    found = {"time": detectable_time_increase(seconds, time_tolerance)}
    if speedup is not None:
        found["speedup"] = detectable_speedup_loss(speedup, speedup_tolerance)
    return found


def adaptive_target(detect: float, floor: float) -> float:
    """The detectable slowdown --detect's rounds drive a check to: ``detect`` itself where the
    check's tolerance alone (``floor``, tolerance_floors) leaves at least half of it to the noise;
    otherwise the floor plus half of ``detect``.  What no number of rounds could reach is not
    chased until the budget ends, and a larger ``detect`` never asks for more."""
    return max(detect, floor + detect / 2)


def smallest_reachable_detect(found: dict[str, float], floors: dict[str, float]) -> float:
    """The smallest --detect whose targets (adaptive_target) the detectable slowdowns ``found``
    (detectable_by_check) already meet: per check, its detectable slowdown, or twice what its
    noise adds to its floor, whichever is smaller; the largest over the checks."""
    return max(min(value, 2 * (value - floors.get(check, 0.0))) for check, value in found.items())


def with_adaptive_note(verdict: Verdict, adaptive: dict | None) -> Verdict:
    """A speed verdict of an adaptive run (--detect; Summary.adaptive) says what it could detect
    and why its rounds ended there."""
    if not adaptive or not verdict.speed:
        return verdict
    return replace(verdict, message=f"{verdict.message}; {adaptive['note']}")


def tolerance_floors(tolerances: Tolerances | None, has_speedup: bool) -> dict[str, float]:
    """detectable_by_check of intervals with no width: what the tolerances alone let through."""
    point = Interval(1.0, 1.0, 1.0, 0.95)
    return detectable_by_check(point, point if has_speedup else None, tolerances)


def bounds(interval: Interval) -> tuple[float, float]:
    """(low, high); a single round has no interval, so its estimate is both."""
    if interval.single_round:
        return interval.estimate, interval.estimate
    return interval.low, interval.high


def share(fraction: float) -> str:
    """A detectable slowdown in a message: one decimal below 10%, where a GPU's checks work (2.4%
    is not 2%), whole percents above."""
    return f"{fraction:.1%}" if fraction < 0.1 else f"{fraction:.0%}"


def ci_text(interval: Interval, unit: str = "") -> str:
    """An interval in a verdict's message: the table form (stats.interval_text) and its level."""
    if interval.single_round:
        return f"{interval_text(interval, unit)} (one round: no interval)"
    return f"{interval_text(interval, unit)} ({interval.confidence:.0%} CI)"


def _speed_check(judge):
    """Marks the verdicts of ``judge`` as speed checks (Verdict.speed), which --strict-gate gates on."""
    @functools.wraps(judge)
    def judged(*args, **kwargs) -> Verdict:
        return replace(judge(*args, **kwargs), speed=True)

    return judged


def _unreliable(check: str, measured: str, why: str, detectable: float | None) -> Verdict:
    return Verdict(check, Outcome.UNRELIABLE, f"unreliable: {why}. Measured {check} {measured} (not judged)",
                   detectable)


@_speed_check
def judge_against_eager(speedup: Interval, unreliable: str | None = None) -> Verdict:
    """Judged on every machine, with or without a baseline: a compiled build must not be credibly
    slower than its own eager build timed beside it (its whole speedup interval below 1x)."""
    measured = ci_text(speedup, "x")
    if unreliable:
        return _unreliable("compiled vs eager", measured, unreliable, None)
    if credible_change(speedup, 1.0, 0.0, higher_is_better=True) == "worse":
        return Verdict("compiled vs eager", Outcome.REGRESSION,
                       f"compiled slower than eager: speedup {measured} lies wholly below 1x")
    return Verdict("compiled vs eager", Outcome.PASS, f"not slower than eager: speedup {measured}")


def not_judged(check: str, why: str, speed: bool = False) -> Verdict:
    """A check that needs a baseline this hardware does not have (``why`` says so, and how to record it)."""
    return Verdict(check, Outcome.NO_BASELINE, why, speed=speed)


def carried_over(check: str, shown: str, source: str) -> Verdict:
    """A figure an earlier run measured (``source``): shown for information, never judged again
    (a baseline recorded from that same figure would pass it every time)."""
    return Verdict(check, Outcome.CARRIED_OVER, f"{check} {shown}, {source}: carried over, not judged in this run "
                   "(--compile-latency always measures it again)")


@_speed_check
def judge_speedup(speedup: Interval, entry: Entry, tolerances: Tolerances, anomaly_applies: bool,
                  record_hint: str, unreliable: str | None = None) -> Verdict:
    measured = ci_text(speedup, "x")
    detectable = detectable_speedup_loss(speedup, tolerances.speedup)
    if unreliable:
        return _unreliable("speedup", measured, unreliable, detectable)
    if anomaly_applies and entry.anomaly is not None:
        ref = f" ({entry.anomaly.reference})" if entry.anomaly.reference else ""
        if credible_change(speedup, 1.0, 0.0, higher_is_better=True) == "worse":  # credibly below 1x
            return Verdict("speedup", Outcome.KNOWN_ANOMALY,
                           f"known anomaly reproduces: {measured}, compiled slower than eager. "
                           f"{entry.anomaly.reason}{ref}", detectable)
        return Verdict("speedup", Outcome.ANOMALY_GONE,
                       f"anomaly no longer reproduces: speedup {measured} is not credibly below 1x. "
                       f"Expected: {entry.anomaly.reason}{ref}. Review and re-record the baseline: "
                       f"{record_hint}", detectable)
    return judge_ratio("speedup", speedup, entry.speedup, tolerances.speedup, record_hint)


def judge_ratio(check: str, speedup: Interval, expected: float, tolerance: float, record_hint: str) -> Verdict:
    """A speedup against its baseline ``expected``: a regression when the whole interval lies below
    ``expected x (1 - tolerance)``, an improvement when above ``expected x (1 + tolerance)``."""
    measured, detectable = ci_text(speedup, "x"), detectable_speedup_loss(speedup, tolerance)
    against = (f"baseline {expected:.3f}x, tolerance {tolerance:.0%}; "
               f"could detect a slowdown of {share(detectable)} or more ({DETECTION_POWER:.0%} power)")
    change = credible_change(speedup, expected, tolerance, higher_is_better=True)
    if change == "worse":
        return Verdict(check, Outcome.REGRESSION,
                       f"{check} {measured} is below {expected * (1 - tolerance):.3f}x ({against})", detectable)
    if change == "better":
        return Verdict(check, Outcome.IMPROVED,
                       f"{check} {measured} is above {expected * (1 + tolerance):.3f}x ({against}); to make it the "
                       f"new baseline: {record_hint}", detectable)
    return Verdict(check, Outcome.PASS, f"{check} {measured} within {against}", detectable)


@_speed_check
def judge_time(seconds: Interval, baseline_seconds: float, tolerance: float, record_hint: str,
               check: str = "compiled time", unreliable: str | None = None,
               speed_factor: float | None = None, unit: str = "s") -> Verdict:
    """``speed_factor`` (machine_speed.adjustment): compare ``seconds x speed_factor``, this run's
    time at the machine speed of the recording.  ``unit``: that of ``seconds`` and the baseline."""
    as_measured = ci_text(seconds, f" {unit}")
    if speed_factor is not None:
        seconds = seconds.scaled(speed_factor)
    measured = ci_text(seconds, f" {unit}")
    if speed_factor is not None:
        measured += f" at the recording's machine speed (x{speed_factor:.3f}; as measured {as_measured})"
    detectable = detectable_time_increase(seconds, tolerance)
    if unreliable:
        return _unreliable(check, measured, unreliable, detectable)
    ceiling, floor = baseline_seconds * (1 + tolerance), baseline_seconds * (1 - tolerance)
    against = (f"baseline {baseline_seconds:.3f} {unit}, tolerance {tolerance:.0%}; "
               f"could detect an increase of {share(detectable)} or more ({DETECTION_POWER:.0%} power)")
    change = credible_change(seconds, baseline_seconds, tolerance, higher_is_better=False)
    if change == "worse":
        return Verdict(check, Outcome.REGRESSION, f"{check} {measured} is above {ceiling:.3f} {unit} ({against})",
                       detectable)
    if change == "better":
        return Verdict(check, Outcome.IMPROVED,
                       f"{check} {measured} is below {floor:.3f} {unit} ({against}); to make it the new "
                       f"baseline: {record_hint}", detectable)
    return Verdict(check, Outcome.PASS, f"{check} {measured} within {against}", detectable)


def absolute_terms(summary, entry: Entry, *, on_cuda: bool, device_name: str | None) -> tuple[float | None, str | None]:
    """(machine-speed factor, why not comparable) for every absolute figure of this run judged
    against ``entry``: the summed times and the compile latency.  Not comparable on a busy machine
    (summary.unreliable), against an entry recorded on another CPU model (its provenance's
    ``device_name``: the key names the family, not the model), or when the machine's speed moved
    beyond what is adjusted for (machine_speed.adjustment); on a CPU the figures are compared at
    the recording's machine speed (``factor``).  The speedup needs none of this."""
    if summary.unreliable:
        return None, summary.unreliable
    recorded_on = entry.provenance.get("device_name")
    if not on_cuda and device_name and recorded_on and recorded_on != device_name:
        return None, (f"recorded on another CPU model ({recorded_on}; this run: {device_name}), so absolute times "
                      "and compile latency are not comparable; the speedup still is. Record this machine's own "
                      "baseline (nox -s record)")
    return (None, None) if on_cuda else adjustment(summary.machine_probe_ms, entry.machine_probe_ms)


def judge_times(summary, entry: Entry, tolerances: Tolerances, record_hint: str, *, compiled: bool,
                reference: str | None, on_cuda: bool, device_name: str | None = None) -> list[Verdict]:
    """A variant's own summed time (summary.Summary) against its baseline, and its eager
    reference's (catches eager and compiled slowing alike, which the speedup cannot see), in the
    terms absolute_terms allows."""
    factor, unreliable = absolute_terms(summary, entry, on_cuda=on_cuda, device_name=device_name)
    own, of_reference = time_checks(compiled, reference)
    checks = [(own, summary.seconds, entry.seconds)]
    if summary.reference_seconds is not None and entry.reference_seconds is not None:
        checks.append((of_reference, summary.reference_seconds, entry.reference_seconds))
    return [judge_time(measured, base, tolerances.compiled_time, record_hint, check, unreliable, factor)
            for check, measured, base in checks]


def time_checks(compiled: bool, reference: str | None) -> tuple[str, str]:
    """The names of a variant's two time checks: its own summed time, and its reference's."""
    return "compiled time" if compiled else "eager time", f"{reference or 'eager'} time (reference)"


def judge_wer(wer: float, reference_wer: float | None, entry: Entry | None, tolerances: Tolerances,
              not_applicable: str | None = None, exact_match: float | None = None) -> Verdict:
    """WER parity: with the eager build of this run, and with the baseline's WER.  ``not_applicable``
    (why WER means nothing, e.g. random weights): not judged, shown as "n/a (random weights)", with
    the share of utterances whose token ids equal eager's (``exact_match``) for information."""
    if not_applicable:
        same = "" if exact_match is None else f"; token ids same as eager in {exact_match:.0%} of utterances"
        return Verdict("wer", Outcome.NOT_APPLICABLE, f"n/a (random weights): {not_applicable}{same}")
    problems = []
    if reference_wer is not None and abs(wer - reference_wer) > tolerances.wer_vs_eager:
        problems.append(f"WER {100 * wer:.2f}% differs from eager's {100 * reference_wer:.2f}% by more than "
                        f"{100 * tolerances.wer_vs_eager:.2f} points")
    if entry is not None and entry.wer is not None and abs(wer - entry.wer) > tolerances.wer:
        problems.append(f"WER {100 * wer:.2f}% differs from the baseline's {100 * entry.wer:.2f}% by more than "
                        f"{100 * tolerances.wer:.2f} points")
    if problems:
        return Verdict("wer", Outcome.REGRESSION, "; ".join(problems))
    if reference_wer is None and (entry is None or entry.wer is None):  # nothing it could have differed from
        return Verdict("wer", Outcome.NO_BASELINE, f"WER {100 * wer:.2f}%: nothing to compare with (no eager reference "
                       "in this run, no WER in a baseline entry); record one with nox -s record")
    parts = [f"WER {100 * wer:.2f}%"]
    if reference_wer is not None:
        parts.append(f"eager {100 * reference_wer:.2f}%")
    if entry is not None and entry.wer is not None:
        parts.append(f"baseline {100 * entry.wer:.2f}%")
    return Verdict("wer", Outcome.PASS, ", ".join(parts))


def nothing_judged(verdicts: list[tuple[str, str, Verdict]]) -> bool:
    """No speed check was judged (none given, or none could be): what --strict-gate fails on too."""
    return not any(v.speed and v.outcome.judged for _, _, v in verdicts)


def speed_not_judged(verdicts: list[tuple[str, str, Verdict]]) -> list[str]:
    """"model/variant: check" of every speed check that was not judged: what --strict-gate fails on."""
    return [f"{model}/{variant}: {v.check}" for model, variant, v in verdicts if v.speed and not v.outcome.judged]


def strict_gate_refuses(verdicts: list[tuple[str, str, Verdict]]) -> bool:
    """What --strict-gate fails on (exit 7), in a run and when judging one again: a speed check that
    was not judged, or none judged at all."""
    return bool(speed_not_judged(verdicts)) or nothing_judged(verdicts)


# ---- the verdicts of a measurement (perf_tests/test_verdicts.py, commands/judge.py) ----

def speedup_verdicts(summary, entry: Entry | None, tolerances: Tolerances, anomaly_applies: bool, record_hint: str,
                     missing: str) -> list[Verdict]:
    """A compiled variant's speed verdicts (summary.Summary): not credibly slower than its own eager
    build, on every machine; with a baseline entry, within its tolerance of the entry's speedup.  A
    known anomaly that applies to the versions judged replaces both (judge_speedup)."""
    if anomaly_applies:
        verdicts = [judge_speedup(summary.speedup, entry, tolerances, True, record_hint, summary.unreliable)]
    else:
        verdicts = [judge_against_eager(summary.speedup, summary.unreliable),
                    seeded_note(judge_speedup(summary.speedup, entry, tolerances, False, record_hint,
                                              summary.unreliable), entry)
                    if entry else not_judged("speedup", missing, speed=True)]
    return [with_adaptive_note(v, summary.adaptive) for v in verdicts]


def time_verdicts(summary, entry: Entry | None, tolerances: Tolerances, record_hint: str, missing: str, *,
                  compiled: bool, reference: str | None, on_cuda: bool, device_name: str | None = None) -> list[Verdict]:
    """The variant's own time and its reference's against the entry (judge_times); without an entry,
    one not-judged speed check that says what is missing."""
    if entry is None:
        return [not_judged(time_checks(compiled, reference)[0], missing, speed=True)]
    verdicts = judge_times(summary, entry, tolerances, record_hint, compiled=compiled, reference=reference,
                           on_cuda=on_cuda, device_name=device_name)
    return [seeded_note(with_adaptive_note(v, summary.adaptive), entry) for v in verdicts]


def wer_verdict(summary, entry: Entry | None, tolerances: Tolerances, model: str) -> Verdict:
    """WER parity (judge_wer); not applicable to random weights (``--model arch:NAME``)."""
    from ..inputs.architectures import is_random  # here: architectures imports torch, which this module does not need

    not_applicable = f"WER not applicable: {model} has random weights" if is_random(model) else None
    return seeded_note(judge_wer(summary.wer, summary.reference_wer, entry, tolerances, not_applicable,
                                 summary.exact_match), entry)


SEEDED_NOTE = "against published figures, not measured by this suite"


def seeded_note(verdict: Verdict, entry: Entry | None) -> Verdict:
    """A verdict judged against a seeded entry (its provenance's ``source`` says the figures are
    published ones) says so, in its message and so in the report."""
    source = (entry.provenance.get("source", "") if entry else "").lower()
    if not source.startswith("published") or not verdict.outcome.judged:
        return verdict
    return replace(verdict, message=f"{verdict.message} ({SEEDED_NOTE})")
