"""The device-time figures a judge compares (CUDA): a build's device-busy milliseconds per call and
the device speedup, as intervals over its profiled calls (measure.kernel_profile.profile_summary's
``device_busy_rounds_ms``), by the statistics the times use."""

from __future__ import annotations

from .stats import Interval, speedup_interval, total_interval


def device_time_interval(profile: dict | None, confidence: float = 0.95) -> Interval | None:
    """Device-busy milliseconds per call of a build (profile_summary), with the interval of its
    profiled rounds (stats.total_interval, one call per round); None where not measured."""
    rounds = (profile or {}).get("device_busy_rounds_ms")
    return total_interval([[ms] for ms in rounds], confidence) if rounds else None


def device_speedup_interval(profile: dict | None, reference_profile: dict | None,
                            confidence: float = 0.95) -> Interval | None:
    """The reference's device time / the variant's, paired by round (stats.speedup_interval): the
    speedup of the GPU's own work, whatever the host adds; None where either was not measured."""
    mine, theirs = ((p or {}).get("device_busy_rounds_ms") for p in (profile, reference_profile))
    if not mine or not theirs or len(mine) != len(theirs):
        return None
    return speedup_interval([[ms] for ms in theirs], [[ms] for ms in mine], confidence)
