"""The device-time checks (CUDA): the GPU's busy time per call and the device speedup, each an
interval over the build's profiled calls (device_time) judged against the baseline with the
device-time tolerance, by the rules the time and speedup checks use (verdicts.judge_time,
judge_ratio).  On a CPU neither is judged, and each says why."""

from __future__ import annotations

from dataclasses import replace

from .baselines import Entry, Tolerances
from .device_time import device_speedup_interval, device_time_interval
from .verdicts import Outcome, Verdict, ci_text, judge_ratio, judge_time, not_judged


def _device_not_judged(check: str, on_cuda: bool, measured: object, profile_error: str | None) -> Verdict | None:
    """Why a device-time check is not judged (no device apart from the host, nothing measured), or None."""
    if not on_cuda:
        return Verdict(check, Outcome.NOT_APPLICABLE,
                       f"{check} not judged on a CPU: the host is the device here, and the time checks judge it")
    if measured is None:
        why = f"the profiler could not start ({profile_error})" if profile_error else \
            "the profiler recorded no device activity"
        return Verdict(check, Outcome.NOT_APPLICABLE, f"{check} not measured: {why}")
    return None


def judge_device_time(profile: dict | None, entry: Entry | None, tolerances: Tolerances, on_cuda: bool,
                      record_hint: str, confidence: float = 0.95, profile_error: str | None = None) -> Verdict:
    """The GPU's busy time per profiled call (kernel_profile.device_time_interval, an interval over
    its rounds) against the baseline's ``device_busy_ms``, by the time checks' rule with the
    device-time tolerance; never on a CPU, where there is no device apart from the host."""
    busy = device_time_interval(profile, confidence) if on_cuda else None
    not_judged_why = _device_not_judged("device time", on_cuda, busy, profile_error)
    if not_judged_why:
        return not_judged_why
    expected = entry.diagnostics.get("device_busy_ms") if entry else None
    if expected is None:
        return not_judged("device time", f"device time {ci_text(busy, ' ms')}: no baseline device time; record one: "
                          f"{record_hint}", speed=True)
    return judge_time(busy, expected, tolerances.device_time, record_hint, "device time", unit="ms")


def judge_device_speedup(profile: dict | None, reference_profile: dict | None, entry: Entry | None,
                         tolerances: Tolerances, on_cuda: bool, record_hint: str, confidence: float = 0.95,
                         profile_error: str | None = None) -> Verdict:
    """The speedup of the GPU's own work (kernel_profile.device_speedup_interval: eager device time /
    compiled device time, paired by round) against the baseline's ``device_speedup``, with the
    device-time tolerance: what the compiler changed on the device, whatever the host adds."""
    check = "device speedup"
    speedup = device_speedup_interval(profile, reference_profile, confidence) if on_cuda else None
    not_judged_why = _device_not_judged(check, on_cuda, speedup, profile_error)
    if not_judged_why:
        return not_judged_why
    expected = entry.diagnostics.get("device_speedup") if entry else None
    if expected is None:
        return not_judged(check, f"device speedup {ci_text(speedup, 'x')}: no baseline device speedup; record one: "
                          f"{record_hint}", speed=True)
    return replace(judge_ratio(check, speedup, expected, tolerances.device_time, record_hint), speed=True)


def device_verdicts(variant: dict | None, reference: dict | None, entry: Entry | None, tolerances: Tolerances, *,
                    on_cuda: bool, compiled: bool, record_hint: str, confidence: float = 0.95) -> list[Verdict]:
    """A results file's device-time checks (commands/judge.py; the suite runs them as their own tests):
    the variant's device time and, for a compiled variant, its device speedup, from the builds'
    diagnostics (diagnostics.diagnose's ``variant`` and ``reference``)."""
    mine, theirs = variant or {}, reference or {}
    error = mine.get("profile_error")
    verdicts = [judge_device_time(mine.get("profile"), entry, tolerances, on_cuda, record_hint, confidence, error)]
    if compiled:
        verdicts.append(judge_device_speedup(mine.get("profile"), theirs.get("profile"), entry, tolerances, on_cuda,
                                             record_hint, confidence, error))
    return verdicts
