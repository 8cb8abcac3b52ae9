"""Why a verdict is what it is: compile health, compile time, peak memory, per-phase latency, the
roofline, device time (and its speedup) and the code's fingerprint of each variant, measured after
its timed rounds (see whisper_perf.measure.diagnostics) and judged against the diagnostics its baseline
recorded."""

import pytest

from whisper_perf.build.variant_specs import COMPILED_VARIANTS
from whisper_perf.judge.device_verdicts import judge_device_speedup, judge_device_time
from whisper_perf.judge.diagnostic_verdicts import (judge_ceiling, judge_compile_health, judge_compile_latency,
                                                    judge_fingerprint)
from whisper_perf.judge.verdicts import Outcome, carried_over
from whisper_perf.measure.kernel_profile import fingerprint_of


def _report(add_verdict, variant, verdict):
    add_verdict(variant, verdict)
    assert verdict.outcome is not Outcome.REGRESSION, verdict.message
    if not verdict.outcome.judged:
        pytest.skip(verdict.message)


def test_diagnose(diagnostics, cold_compile, variant):
    """The diagnostic calls ran and measured every phase (and, for a compiled variant, the cold
    and warm compile latency, unless --compile-latency never)."""
    if cold_compile is not None:
        assert cold_compile["cold_seconds"] > 0 and cold_compile["warm_seconds"] > 0
    mine = diagnostics.variant
    phases = mine["phases"]
    assert phases["first_token_ms"] > 0 and phases["steps"] >= 1
    if not variant.spec.long_form:
        assert phases["encoder_ms"] > 0
        if mine["roofline"] is not None:
            assert mine["roofline"]["floor_ms"] > 0
        else:  # no bandwidth (a GPU missing from the table): reported as not available, not a failure
            assert mine["roofline_not_available"].startswith("not available"), mine


@pytest.mark.variants(COMPILED_VARIANTS)
def test_compile_health(measured, baseline_or_none, variant, add_verdict):
    entry, _ = baseline_or_none
    verdict = judge_compile_health(measured.warmup_compile, measured.timed_compile,
                                   entry.diagnostics if entry else None, cuda=variant.hardware.is_cuda)
    _report(add_verdict, variant, verdict)


@pytest.mark.variants(COMPILED_VARIANTS)
@pytest.mark.parametrize("which", ["cold", "warm"])
def test_compile_time(cold_compile, baseline_or_none, summary, variant, which, record_hint, add_verdict):
    """The first compiled call (compile + one generate()) of a fresh process with an empty compile
    cache (cold) and with the cache it filled (warm), by the time checks' rules: at the recording's
    machine speed, never on a busy machine, across CPU models or beyond the speed change adjusted for."""
    if cold_compile is None:
        pytest.skip("compile latency not measured (--compile-latency never, or a sensitivity twin)")
    entry, tolerances = baseline_or_none
    check, seconds = f"{which} compile (first call)", cold_compile[f"{which}_seconds"]
    if cold_compile["source"] != "measured in this run":
        _report(add_verdict, variant, carried_over(check, f"{seconds:.3g} s", cold_compile["source"]))
    _report(add_verdict, variant, judge_compile_latency(check, seconds, entry, tolerances.compile_seconds, summary,
                                                       record_hint, on_cuda=variant.hardware.is_cuda,
                                                       device_name=variant.hardware.device_name))


def test_peak_memory(diagnostics, baseline_or_none, variant, record_hint, add_verdict):
    entry, tolerances = baseline_or_none
    memory = diagnostics.variant["peak_memory"]
    if memory is None or memory["bytes"] is None:
        pytest.skip("peak memory cannot be read on this platform")
    expected = entry.diagnostics.get("peak_memory_bytes") if entry else None
    verdict = judge_ceiling(f"peak memory ({memory['kind']})", memory["bytes"] / 2**20,
                            expected / 2**20 if expected else None, tolerances.peak_memory, "MiB", record_hint)
    _report(add_verdict, variant, verdict)


def test_fingerprint(diagnostics, baseline_or_none, record_hint, variant, add_verdict):
    """The code the build ran in its profiled call (aten ops and device kernels per decode step,
    the kernels inductor generated, CUDA-graph launches) against the baseline's: a change is
    reported (CHANGED, naming what was added and removed), never failed."""
    entry, _ = baseline_or_none
    found = fingerprint_of(diagnostics.variant.get("profile"))
    _report(add_verdict, variant, judge_fingerprint(found, entry.diagnostics.get("fingerprint") if entry else None,
                                                    record_hint))


def test_device_time(diagnostics, baseline_or_none, record_hint, variant, run_config, add_verdict):
    """The time the GPU was busy per profiled call, an interval over the build's profiled rounds,
    against the baseline's; on a CPU not judged, saying why (it never passes there)."""
    entry, tolerances = baseline_or_none
    mine = diagnostics.variant
    verdict = judge_device_time(mine.get("profile"), entry, tolerances, variant.hardware.is_cuda, record_hint,
                                run_config.confidence, mine.get("profile_error"))
    _report(add_verdict, variant, verdict)


@pytest.mark.variants(COMPILED_VARIANTS)
def test_device_speedup(diagnostics, baseline_or_none, record_hint, variant, run_config, add_verdict):
    """The speedup of the GPU's own work: the eager reference's device time / the variant's, paired by
    profiled round, against the baseline's; on a CPU not judged, saying why."""
    entry, tolerances = baseline_or_none
    mine, reference = diagnostics.variant, diagnostics.reference or {}
    verdict = judge_device_speedup(mine.get("profile"), reference.get("profile"), entry, tolerances,
                                   variant.hardware.is_cuda, record_hint, run_config.confidence,
                                   mine.get("profile_error"))
    _report(add_verdict, variant, verdict)
