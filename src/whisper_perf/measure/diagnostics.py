"""Why a verdict is what it is: the diagnostics of one model x variant, as plain data.

Gathered after the variant's timed rounds (``measure``), from

* its compile health in warm-up and in the timed rounds (``compile_health``),
* diagnostic calls of the variant and of its eager reference: per-phase latency and peak memory
  (``phases``), the memory-bandwidth floor of a decode step (``roofline``), and one call under
  the profiler: device time on a GPU and the fingerprint of the code run (``kernel_profile``),

and stored in the results file, in a recorded baseline (record.baseline_recording.baseline_fields), and in the report.
"""

from __future__ import annotations

from .diagnostics_data import Diagnostics
from .kernel_profile import DEVICE_ROUNDS, profile_rounds, profile_summary
from .phases import measure_phases
from .roofline import Bandwidth, decode_step_bytes, missing_bandwidth, roofline

# Diagnostic calls per build: one; its phases are medians over every decode step of the call.
DIAGNOSTIC_UTTERANCES = 1


def _profiles(variant, reference, unit) -> tuple[dict | None, dict | None, str | None]:
    """(variant's, reference's profile_summary, why none): DEVICE_ROUNDS profiled calls of each build
    in alternation on a GPU, one each on a CPU (no device time to sample there, the fingerprint is
    exact)."""
    rounds = DEVICE_ROUNDS if variant.hardware.is_cuda else 1
    try:
        mine, theirs = profile_rounds(variant, reference, unit, rounds)
    except RuntimeError as exc:  # the profiler cannot start here (CUPTI in a container): the other diagnostics stand
        return None, None, f"{type(exc).__name__}: {exc}"
    return profile_summary(mine), profile_summary(theirs) if theirs else None, None


def _build(variant, utterances, bandwidth: Bandwidth | None, profile: dict | None, error: str | None) -> dict:
    """Phases and peak memory of one build, and its ``profile``; for a short-form build also its
    roofline, or, without a bandwidth (a GPU missing from the table), ``roofline: None`` and
    ``roofline_not_available``."""
    phases, memory = measure_phases(variant, utterances)
    data = {"phases": phases.as_dict(), "peak_memory": memory.as_dict() if memory else None, "profile": profile}
    if error:
        data["profile_error"] = error
    if variant.spec.long_form:
        return data
    if bandwidth is None:
        data["roofline"] = None
        data["roofline_not_available"] = missing_bandwidth(variant.hardware)
        return data
    step = decode_step_bytes(variant.model, phases.mean_position, variant.batch_size)
    data["roofline"] = roofline(step, bandwidth, phases.per_token_ms).as_dict()
    data["step_bytes"] = {"weights": step.weights, "cross_attention_cache": step.cross_attention_cache,
                          "self_attention_cache": step.self_attention_cache}
    return data


def diagnose(measurement, variant, reference, audio, bandwidth: Bandwidth | None) -> Diagnostics:
    """Diagnostics of ``variant`` (and its ``reference``, when it has one) after ``measurement``."""
    utterances = audio.units[:DIAGNOSTIC_UTTERANCES]  # as timed: an utterance, or a batch (--batch)
    mine, theirs, error = _profiles(variant, reference, utterances[0])
    builds = {"variant": _build(variant, utterances, bandwidth, mine, error)}
    if reference is not None:
        builds["reference"] = _build(reference, utterances, bandwidth, theirs, error)
    for build, timed in (("variant", measurement.passes), ("reference", measurement.reference_passes)):
        profile = builds.get(build, {}).get("profile")
        if profile:
            profile["host_ms_per_token"] = host_ms_per_token(profile, timed, utterances[0].id)
    return Diagnostics(first_call_seconds=measurement.first_call_seconds, warmup_compile=measurement.warmup_compile,
                       timed_compile=measurement.timed_compile, warmup_seconds=measurement.warmup_seconds,
                       bandwidth=bandwidth.as_dict() if bandwidth else None, variant=builds["variant"],
                       reference=builds.get("reference"))


def host_ms_per_token(profile: dict, passes, utterance: str) -> float | None:
    """The host's share of one call per generated token: the utterance's median timed seconds less
    the median time the device was busy in its profiled calls (CUDA only; on a CPU the host is the
    device)."""
    import statistics

    if not profile.get("device_busy_rounds_ms"):
        return None
    timed = [(s.seconds, s.tokens) for p in passes for s in p.samples if s.utterance == utterance]
    if not timed:
        return None
    seconds, tokens = statistics.median(t[0] for t in timed), max(timed[0][1], 1)
    busy = statistics.median(profile["device_busy_rounds_ms"]) / 1e3
    return round(1e3 * max(seconds - busy, 0.0) / tokens, 4)
